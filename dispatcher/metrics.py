"""Prometheus metrics of one dispatcher process (worker, webhooks or API).

Counters live in the process and count what *it* did since it started; Prometheus sums
them over processes. Queue depth, the age of the oldest entry and what is parked are not
counted but read from Redis when ``/metrics`` is scraped (:func:`queue_families`), so every
process shows the same values and dashboards take their ``max``.

The send path is hot (tens of thousands of requests a second across a pool), so the
per-request figures — requests, latency and rate-limit waits per provider account — are
plain integers and bucket lists on an :class:`AccountStats` kept by the account itself, and
become metric families only when scraped (:class:`_AccountCollector`): one ``bisect`` and
two additions a request, no lock, no label lookup. Everything else is counted per chunk or
per batch, with the chunk's counts, never per recipient.

================================================  =========  ==========================
metric                                            type       labels
================================================  =========  ==========================
``dispatcher_recipients_total``                   counter    provider, status
``dispatcher_provider_requests_total``            counter    provider, account, outcome
``dispatcher_provider_request_duration_seconds``  histogram  provider, account
``dispatcher_rate_limit_wait_seconds``            histogram  provider, account
``dispatcher_recipients_parked_total``            counter    provider, reason
``dispatcher_recipients_dead_total``              counter    provider
``dispatcher_unknown_resolved_total``             counter    provider, outcome
``dispatcher_takeovers_total``                    counter    provider
``dispatcher_webhook_pushes_total``               counter    provider, outcome, reason
``dispatcher_queue_entries``                      gauge      provider, lane, state
``dispatcher_queue_oldest_age_seconds``           gauge      provider, lane, state
``dispatcher_queue_delayed_overdue_seconds``      gauge      provider, lane
``dispatcher_parked_recipients``                  gauge      provider, account
``dispatcher_redis_up``                           gauge      (none)
``dispatcher_worker_chunks_in_flight``            gauge      (none; worker only)
================================================  =========  ==========================
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatcher.config import Settings
from dispatcher.keys import GROUP, Keys
from dispatcher.store import as_str

#: Seconds; provider answers take from a few ms (the mock) to minutes (a 50,000-number
#: Smsclouds campaign), so the buckets span both.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600)
#: Seconds a request waited for its account's concurrency and rate slots.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60)

RECIPIENTS = Counter(
    "dispatcher_recipients",
    "Send results recorded by this process (the campaigns' counts), by provider and status",
    ["provider", "status"],
)
PARKED = Counter(
    "dispatcher_recipients_parked",
    "Recipients parked with an unknown fate (a request that may have reached the provider)",
    ["provider", "reason"],
)
DEAD = Counter(
    "dispatcher_recipients_dead",
    "Recipients dead-lettered: transient failures outlasted every attempt",
    ["provider"],
)
RESOLVED = Counter(
    "dispatcher_unknown_resolved",
    "Parked recipients settled: found at the provider, sent again, or held for an operator",
    ["provider", "outcome"],
)
TAKEOVERS = Counter(
    "dispatcher_takeovers",
    "Chunks taken over from a worker that died or stalled",
    ["provider"],
)


class Buckets:
    """A histogram without locks or labels: one ``bisect`` and two additions a sample."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


class AccountStats:
    """What one provider account's requests did in this process (kept by sender.Account)."""

    __slots__ = ("latency", "outcomes", "wait")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = {}
        self.latency = Buckets(LATENCY_BUCKETS)
        self.wait = Buckets(WAIT_BUCKETS)

    def answered(self, outcome: str, seconds: float) -> None:
        """An answer came: counted by its transport's class of it (HTTP ``2xx``, ``4xx``…;
        SMPP ``esme_rok``, ``esme_rthrottled``…)."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.latency.observe(seconds)

    def failed(self, code: str, maybe_sent: bool, seconds: float) -> None:
        """No answer: ``timeout``, ``connection`` (lost after it may have left) or
        ``connect_error`` (it never left)."""
        outcome = code.lower() if maybe_sent else "connect_error"
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.latency.observe(seconds)


class _AccountCollector:
    """Turns every :class:`AccountStats` of the process into metric families at scrape."""

    def __init__(self) -> None:
        self.stats: dict[tuple[str, str], AccountStats] = {}

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "dispatcher_provider_requests",
            "HTTP requests sent to providers, by account and outcome (status class or error)",
            labels=["provider", "account", "outcome"],
        )
        latency = HistogramMetricFamily(
            "dispatcher_provider_request_duration_seconds",
            "Time from sending a request to its answer (or its failure), per provider account",
            labels=["provider", "account"],
        )
        wait = HistogramMetricFamily(
            "dispatcher_rate_limit_wait_seconds",
            "Time a request waited for its account's concurrency and rate slots",
            labels=["provider", "account"],
        )
        for (provider, account), s in sorted(self.stats.items()):
            for outcome, n in sorted(s.outcomes.items()):
                requests.add_metric([provider, account, outcome], n)
            latency.add_metric([provider, account], s.latency.cumulative(), s.latency.total)
            wait.add_metric([provider, account], s.wait.cumulative(), s.wait.total)
        return [requests, latency, wait]


_ACCOUNTS = _AccountCollector()
REGISTRY.register(_ACCOUNTS)


def account_stats(provider: str, account: str) -> AccountStats:
    """The process's stats object for one account (shared by every Sender in it)."""
    key = (provider, account)
    stats = _ACCOUNTS.stats.get(key)
    if stats is None:
        stats = _ACCOUNTS.stats[key] = AccountStats()
    return stats


def recorded(provider: str, tally: Mapping[str, int]) -> None:
    """Count a batch of recorded results: one increment per status (answers.tally)."""
    for status, n in tally.items():
        RECIPIENTS.labels(provider, str(status)).inc(n)


def parked(provider: str, reasons: Iterable[str]) -> None:
    for reason, n in Tally(reasons).items():
        PARKED.labels(provider, str(reason)).inc(n)


# -- webhooks --------------------------------------------------------------------------


def push_families(counts: Mapping[str, int]) -> list[Metric]:
    """The webhooks receiver's own counters (app.COUNTS, shown on its ``/healthz``) as one
    family, so that they are counted in one place: ``<provider>.<outcome>``,
    ``<provider>.refused.<reason>``, ``refused`` (a wrong secret, provider unknown) and
    ``redis_unavailable``."""
    family = CounterMetricFamily(
        "dispatcher_webhook_pushes",
        "Pushes received by the webhooks process, by provider, outcome and refusal reason",
        labels=["provider", "outcome", "reason"],
    )
    for key, n in sorted(counts.items()):
        parts = key.split(".", 2)
        if key == "refused":
            labels = ["", "refused", "wrong_secret"]
        elif len(parts) == 1:
            labels = ["", key, ""]
        elif len(parts) == 3 and parts[1] == "refused":
            labels = [parts[0], "refused", parts[2]]
        else:
            labels = [parts[0], key.split(".", 1)[1], ""]
        family.add_metric(labels, n)
    return [family]


# -- read from Redis at scrape ---------------------------------------------------------


async def queue_families(redis: Redis, settings: Settings, streams: Sequence[str]) -> list[Metric]:
    """Depth and age of each work stream and delayed set, and what is parked now.

    Two pipelined round trips for every stream at once. ``waiting`` entries are not read by
    any worker yet (the stream length less the group's pending ones: acknowledged entries
    are deleted), ``leased`` ones are pending in the group, ``delayed`` wait in the delayed
    set for their time. Ages are those of the oldest waiting and the oldest leased entry,
    from their stream ids; ``delayed_overdue`` says how long the earliest delayed entry has
    been due (not 0: nothing moves them back to work).
    """
    keys = Keys.of(settings, redis)
    entries = GaugeMetricFamily(
        "dispatcher_queue_entries",
        "Chunks in each work stream: waiting to be read, leased by a worker, or delayed",
        labels=["provider", "lane", "state"],
    )
    ages = GaugeMetricFamily(
        "dispatcher_queue_oldest_age_seconds",
        "Age of the oldest waiting and of the oldest leased entry of each work stream",
        labels=["provider", "lane", "state"],
    )
    overdue = GaugeMetricFamily(
        "dispatcher_queue_delayed_overdue_seconds",
        "How long the earliest delayed chunk of each lane has been due (0: none is due)",
        labels=["provider", "lane"],
    )
    parked_now = GaugeMetricFamily(
        "dispatcher_parked_recipients",
        "Recipients parked with an unknown fate now, per provider account",
        labels=["provider", "account"],
    )
    families: list[Metric] = [entries, ages, overdue, parked_now]
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.xlen(stream)
                pipe.xpending(stream, GROUP)
                pipe.xinfo_groups(stream)
                pipe.zcard(keys.delayed_for(stream))
                pipe.zrange(keys.delayed_for(stream), 0, 0, withscores=True)
            sets = _unknown_sets(settings, keys)
            for _provider, _account, key in sets:
                pipe.zrange(key, 0, 99)
            got = await pipe.execute(raise_on_error=False)
            now_ms = _redis_ms(await redis.time())
        cids_of = got[5 * len(streams) :]
        async with redis.pipeline(transaction=False) as pipe:
            for i, stream in enumerate(streams):
                last = _last_delivered(got[5 * i + 2])
                pipe.xrange(stream, f"({last}" if last else "-", "+", count=1)
            for (_p, _a, _k), cids in zip(sets, cids_of, strict=True):
                for cid in [] if isinstance(cids, Exception) else cids:
                    pipe.hlen(keys.parked(as_str(cid)))
            more = await pipe.execute(raise_on_error=False)
    except (RedisError, OSError):
        return redis_up(False)
    families.append(redis_up(True)[0])
    # With partitions a lane has a stream in each: counts add up, ages take the oldest.
    counted: dict[tuple[str, str], list[float]] = {}
    for i, stream in enumerate(streams):
        provider, lane = keys.parse_queue(stream)
        length, pending, _groups, delayed, first_due = got[5 * i : 5 * i + 5]
        length = 0 if isinstance(length, Exception) else int(length)
        info: Any = {} if isinstance(pending, Exception) else pending
        leased = int(info.get("pending") or 0)
        oldest = more[i]
        waiting_age = 0.0
        if not isinstance(oldest, Exception) and oldest:
            waiting_age = _age(now_ms, oldest[0][0])
        leased_age = _age(now_ms, info["min"]) if leased and info.get("min") else 0.0
        due = 0.0
        if not isinstance(first_due, Exception) and first_due:
            due = max(0.0, (now_ms - float(first_due[0][1])) / 1000)
        waiting_delayed = 0 if isinstance(delayed, Exception) else int(delayed)
        row = [max(0, length - leased), leased, waiting_delayed, waiting_age, leased_age, due]
        was = counted.get((provider, lane))
        counted[(provider, lane)] = row if was is None else [
            *(a + b for a, b in zip(was[:3], row[:3], strict=True)),
            *(max(a, b) for a, b in zip(was[3:], row[3:], strict=True)),
        ]  # fmt: skip
    for (provider, lane), (waiting, leased_n, delayed_n, w_age, l_age, due) in counted.items():
        entries.add_metric([provider, lane, "waiting"], waiting)
        entries.add_metric([provider, lane, "leased"], leased_n)
        entries.add_metric([provider, lane, "delayed"], delayed_n)
        ages.add_metric([provider, lane, "waiting"], w_age)
        ages.add_metric([provider, lane, "leased"], l_age)
        overdue.add_metric([provider, lane], due)
    lens = iter(more[len(streams) :])
    totals: dict[tuple[str, str], int] = {}
    for (provider, account, _k), cids in zip(sets, cids_of, strict=True):
        n = totals.get((provider, account), 0)
        for _ in [] if isinstance(cids, Exception) else cids:
            size = next(lens)
            n += 0 if isinstance(size, Exception) else int(size)
        totals[(provider, account)] = n
    for (provider, account), n in sorted(totals.items()):
        parked_now.add_metric([provider, account], n)
    return families


def _unknown_sets(settings: Settings, keys: Keys) -> list[tuple[str, str, str]]:
    """(provider, account, key) of every unknown set this configuration can fill, in
    every partition."""
    from dispatcher.providers import KINDS

    return [
        (name, account, part.unknown(keys.listed(name, kind), account))
        for (name, kind) in sorted(KINDS)
        if name in settings.providers
        for account in sorted(settings.providers[name].accounts)
        for part in keys.parts
    ]


def _last_delivered(groups: Any) -> str:
    """The group's last delivered id ("" if the stream or the group is missing)."""
    if isinstance(groups, Exception):
        return ""
    for group in groups or []:
        if as_str(group.get("name")) == GROUP:
            return as_str(group.get("last-delivered-id") or "")
    return ""


def _redis_ms(answer: Any) -> float:
    seconds, micros = answer
    return int(seconds) * 1000 + int(micros) / 1000


def _age(now_ms: float, entry_id: Any) -> float:
    """Seconds since the entry with this stream id was added."""
    return max(0.0, (now_ms - int(as_str(entry_id).split("-", 1)[0])) / 1000)


def redis_up(up: bool) -> list[Metric]:
    """``dispatcher_redis_up``: whether this scrape could read Redis."""
    family = GaugeMetricFamily("dispatcher_redis_up", "1 if Redis answered this scrape, else 0")
    family.add_metric([], 1 if up else 0)
    return [family]


def render(*extra: Iterable[Metric]) -> bytes:
    """The process's metrics, and ``extra`` families read at scrape, in the text format."""
    return generate_latest(_Both(list(extra)))


class _Both:
    """The process registry and the scrape's own families, as one collector."""

    def __init__(self, extra: list[Iterable[Metric]]) -> None:
        self.extra = extra

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        for families in self.extra:
            yield from families


Extra = Callable[[], Iterable[Metric]]


def in_flight(count: Callable[[], int]) -> Extra:
    """A worker's chunks in flight, read at scrape."""

    def families() -> list[Metric]:
        g = GaugeMetricFamily(
            "dispatcher_worker_chunks_in_flight", "Chunks this worker process is working on"
        )
        g.add_metric([], count())
        return [g]

    return families
