"""Metrics counted by a worker in-process (real Redis, the real mock on loopback), and the
queue figures read from Redis at scrape.

Counters belong to the process, which other tests share: each test compares values before
and after what it does.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from dispatcher import metrics
from dispatcher.client import Client
from dispatcher.keys import GROUP, LANES, Keys
from dispatcher.model import Campaign
from dispatcher.store import ensure_group
from dispatcher.transport import Transport
from tests.conftest import RunningWorker, make_settings, repo_root
from tests.test_worker import NUMBERS, mock_post


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def by_status(provider: str, statuses: list[str]) -> dict[str, float]:
    return {s: value("dispatcher_recipients_total", provider=provider, status=s) for s in statuses}


def families(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) → value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
    }


async def test_results_requests_and_waits_are_counted(redis: Redis, prefix: str, mock: str) -> None:
    settings = make_settings(prefix, f"{mock}/cloudaten")
    await mock_post(mock, "/_mock/settings", {"unpriced_regions": ["JP"]})
    japan = [f"+8131234{i:04d}" for i in range(5)]
    statuses = ["accepted", "rejected", "failed"]
    acct = {"provider": "cloudaten", "account": "default"}
    before = by_status("cloudaten", statuses)
    requests_before = value("dispatcher_provider_request_duration_seconds_count", **acct)
    waits_before = value("dispatcher_rate_limit_wait_seconds_count", **acct)
    ok_before = value("dispatcher_provider_requests_total", outcome="2xx", **acct)
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", [*NUMBERS[:25], *japan]))
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.counts == {"accepted": 25, "rejected": 5}
    after = by_status("cloudaten", statuses)
    assert {s: after[s] - before[s] for s in statuses} == {"accepted": 25, "rejected": 5,
                                                           "failed": 0}  # fmt: skip
    # One request a recipient at Cloud Aten, each answered, timed, and waited for.
    assert value("dispatcher_provider_requests_total", outcome="2xx", **acct) - ok_before == 30
    assert value("dispatcher_provider_request_duration_seconds_count", **acct) == (
        requests_before + 30
    )
    assert value("dispatcher_rate_limit_wait_seconds_count", **acct) == waits_before + 30


async def test_failures_after_every_attempt_are_dead_lettered(redis: Redis, prefix: str) -> None:
    settings = make_settings(prefix)  # Cloud Aten at a port where nothing listens
    acct = {"provider": "cloudaten", "account": "default"}
    dead_before = value("dispatcher_recipients_dead_total", provider="cloudaten")
    refused_before = value("dispatcher_provider_requests_total", outcome="connect_error", **acct)
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", NUMBERS[:4]))
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.counts == {"failed": 4}
    assert value("dispatcher_recipients_dead_total", provider="cloudaten") - dead_before == 4
    attempts = settings.providers["cloudaten"].max_attempts
    refused = value("dispatcher_provider_requests_total", outcome="connect_error", **acct)
    assert refused - refused_before == 4 * attempts


async def test_a_chunk_left_by_a_dead_worker_counts_a_takeover(
    redis: Redis, prefix: str, mock: str
) -> None:
    settings = make_settings(prefix, f"{mock}/cloudaten")
    before = value("dispatcher_takeovers_total", provider="cloudaten")
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", NUMBERS[:10]))  # one chunk
    stream = Keys(prefix).at(0).queue("cloudaten")
    # A worker that reads the chunk and dies: its entry stays pending until the lease ends.
    got: Any = await redis.xreadgroup(GROUP, "ghost", {stream: ">"}, count=10)
    assert len(got[0][1]) == 1
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.counts == {"accepted": 10}
    assert value("dispatcher_takeovers_total", provider="cloudaten") == before + 1


async def test_queue_depth_and_ages_are_read_at_scrape(redis: Redis, prefix: str) -> None:
    settings = make_settings(prefix)
    k = Keys(prefix)
    stream = k.at(0).queue("cloudaten", "bulk")
    await ensure_group(redis, stream)
    now = int((await redis.time())[0]) * 1000
    for age_s in (30, 20, 10):  # entries added that long ago (their ids say when)
        await redis.xadd(stream, {"c": "x", "n": 0}, id=f"{now - age_s * 1000}-0")
    await redis.xreadgroup(GROUP, "somebody", {stream: ">"}, count=1)  # the 30 s one: leased
    await redis.zadd(k.at(0).delayed("cloudaten", "bulk"), {"a|0|1": now})
    await redis.zadd(k.at(0).delayed("cloudaten", "bulk"), {"b|0|1": now + 60_000})
    await redis.hset(k.parked("c1"), mapping={"1": "x", "2": "y"})
    await redis.zadd(k.at(0).unknown("cloudaten", "default"), {"c1": now})
    streams = [k.at(0).queue("cloudaten", lane) for lane in LANES]
    got = families(metrics.render(await metrics.queue_families(redis, settings, streams)))

    def at(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    where = {"provider": "cloudaten", "lane": "bulk"}
    assert at("dispatcher_redis_up") == 1
    assert at("dispatcher_queue_entries", state="waiting", **where) == 2
    assert at("dispatcher_queue_entries", state="leased", **where) == 1
    assert at("dispatcher_queue_entries", state="delayed", **where) == 2
    assert 20 <= at("dispatcher_queue_oldest_age_seconds", state="waiting", **where) < 30
    assert at("dispatcher_queue_oldest_age_seconds", state="leased", **where) >= 30
    assert at("dispatcher_queue_delayed_overdue_seconds", **where) >= 0
    assert at("dispatcher_parked_recipients", provider="cloudaten", account="default") == 2
    # A lane whose stream was never created: zeros, not an error.
    empty = {"provider": "cloudaten", "lane": "otp"}
    assert at("dispatcher_queue_entries", state="waiting", **empty) == 0
    assert at("dispatcher_queue_oldest_age_seconds", state="waiting", **empty) == 0


async def test_an_overdue_delayed_chunk_shows_how_long_it_has_been_due(
    redis: Redis, prefix: str
) -> None:
    settings = make_settings(prefix)
    k = Keys(prefix)
    now = int((await redis.time())[0]) * 1000
    await redis.zadd(k.at(0).delayed("cloudaten", "otp"), {"a|0|1": now - 90_000})
    streams = [k.at(0).queue("cloudaten", "otp")]
    got = families(metrics.render(await metrics.queue_families(redis, settings, streams)))
    key = (
        "dispatcher_queue_delayed_overdue_seconds",
        (("lane", "otp"), ("provider", "cloudaten")),
    )
    assert got[key] >= 90


def test_webhook_counts_become_pushes_by_outcome() -> None:
    counts = {
        "cloudaten.applied": 3,
        "cloudaten.refused.wrong_number": 2,
        "ycloud.inbound": 1,
        "refused": 4,
        "redis_unavailable": 5,
    }
    got = families(metrics.render(metrics.push_families(counts)))
    name = "dispatcher_webhook_pushes_total"

    def at(provider: str, outcome: str, reason: str) -> float:
        labels = (("outcome", outcome), ("provider", provider), ("reason", reason))
        return got[(name, labels)]

    assert at("cloudaten", "applied", "") == 3
    assert at("cloudaten", "refused", "wrong_number") == 2
    assert at("ycloud", "inbound", "") == 1
    assert at("", "refused", "wrong_secret") == 4
    assert at("", "redis_unavailable", "") == 5


def test_buckets_are_cumulative_with_prometheus_bounds() -> None:
    b = metrics.Buckets((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 3.0):
        b.observe(v)
    assert b.cumulative() == [("0.1", 2.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert b.total == 4.65


def test_request_outcomes_name_the_status_class_or_the_error() -> None:
    stats = metrics.AccountStats()
    stats.answered(Transport.outcome(200), 0.01)
    stats.answered(Transport.outcome(503), 0.02)
    stats.failed("TIMEOUT", True, 10.0)
    stats.failed("CONNECTION", True, 0.5)
    stats.failed("CONNECTION", False, 0.001)
    assert stats.outcomes == {"2xx": 1, "5xx": 1, "timeout": 1, "connection": 1,
                              "connect_error": 1}  # fmt: skip
    assert sum(stats.latency.counts) == 5


def expressions(node: Any) -> list[str]:
    """Every PromQL expression of a dashboard: targets' ``expr`` and variables' queries."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "definition") and isinstance(v, str)]
        return found + [e for v in node.values() for e in expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in expressions(v)]
    return []


async def test_the_grafana_dashboard_uses_only_metrics_the_code_defines(
    redis: Redis, prefix: str
) -> None:
    dashboard = orjson.loads((repo_root() / "deploy" / "grafana" / "dispatcher.json").read_bytes())
    exprs = expressions(dashboard["panels"]) + expressions(dashboard["templating"])
    assert len(exprs) >= 15
    used = {name for e in exprs for name in re.findall(r"\bdispatcher_[a-z0-9_]+", e)}
    # What a scrape of each process can show: the process's own metrics and those read at
    # scrape (queue, parked, Redis), the webhooks' pushes, the worker's chunks in flight.
    settings = make_settings(prefix)
    text = metrics.render(
        await metrics.queue_families(redis, settings, [Keys(prefix).at(0).queue("cloudaten")]),
        metrics.push_families({"cloudaten.applied": 1}),
        metrics.in_flight(lambda: 0)(),
    ).decode()
    defined: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (dispatcher_\w+) (\w+)$", text, re.M):
        suffixes = {"histogram": ("_bucket", "_count", "_sum")}.get(kind, ("",))
        defined.update(name + s for s in suffixes)
    assert used <= defined, sorted(used - defined)
    # And the dashboard shows each kind of figure the issue asks for.
    for wanted in (
        "dispatcher_recipients_total",
        "dispatcher_provider_request_duration_seconds_bucket",
        "dispatcher_queue_entries",
        "dispatcher_queue_oldest_age_seconds",
        "dispatcher_parked_recipients",
        "dispatcher_recipients_dead_total",
        "dispatcher_takeovers_total",
        "dispatcher_webhook_pushes_total",
    ):
        assert wanted in used, wanted
    assert all(p.get("datasource") for p in dashboard["panels"] if p["type"] != "row")
