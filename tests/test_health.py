"""/healthz, /readyz and /metrics (health.add_routes) served on loopback against a real
Redis: one of the tests' own, stopped and started again to see /readyz follow it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from dispatcher.embedded import RedisProcess
from dispatcher.health import add_routes, worker_port, worker_streams
from dispatcher.keys import Keys
from dispatcher.runtime import connect
from dispatcher.store import ensure_group
from dispatcher.webhooks.server import start as start_webhooks
from tests.conftest import all_providers, eventually, make_settings
from tests.webhooks.support import SECRET

WAIT_S = 30.0


class Served:
    """An aiohttp app on a loopback port, and a session to ask it."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base = base
        self.session = session

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.session.get(self.base + path) as r:
            return r.status, await r.read()

    async def json(self, path: str) -> tuple[int, Any]:
        status, body = await self.get(path)
        return status, orjson.loads(body)

    async def until(self, path: str, status: int) -> Any:
        """Ask until ``path`` answers ``status``; its JSON."""
        got = await eventually(
            lambda: self.json(path), lambda g: g[0] == status, what=f"{path} → {status}"
        )
        return got[1]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def served(own_redis: RedisProcess, prefix: str) -> AsyncIterator[tuple[Served, Redis]]:
    """add_routes on an app of its own, with the worker's client (it rides out restarts)."""
    settings = make_settings(prefix)
    redis = connect(own_redis.url)
    app = web.Application()
    add_routes(app, redis, settings, ready_streams=worker_streams(settings))
    runner, base = await serve(app)
    async with aiohttp.ClientSession() as session:
        yield Served(base, session), redis
    await runner.cleanup()
    await redis.aclose()


async def test_readyz_needs_the_workers_group_on_every_stream(
    served: tuple[Served, Redis], prefix: str
) -> None:
    http, redis = served
    settings = make_settings(prefix)
    assert await http.json("/healthz") == (200, {"status": "ok"})
    status, body = await http.json("/readyz")
    streams = worker_streams(settings)
    assert status == 503 and body == {"ready": False, "redis": "ok", "missing_groups": streams}
    for stream in streams[:-1]:
        await ensure_group(redis, stream)
    assert await http.json("/readyz") == (
        503, {"ready": False, "redis": "ok", "missing_groups": streams[-1:]}
    )  # fmt: skip
    await ensure_group(redis, streams[-1])
    assert await http.json("/readyz") == (
        200, {"ready": True, "redis": "ok", "missing_groups": []}
    )  # fmt: skip


async def test_readyz_fails_while_redis_is_down_and_passes_when_it_is_back(
    served: tuple[Served, Redis], own_redis: RedisProcess, prefix: str
) -> None:
    http, redis = served
    for stream in worker_streams(make_settings(prefix)):
        await ensure_group(redis, stream)
    await http.until("/readyz", 200)
    own_redis.stop()
    body = await http.until("/readyz", 503)
    assert body["ready"] is False and body["redis"] != "ok"
    # Still live: the process answers; and /metrics says Redis is down rather than failing.
    assert (await http.get("/healthz"))[0] == 200
    status, text = await http.get("/metrics")
    assert status == 200
    up = [
        s.value
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
        if s.name == "dispatcher_redis_up"
    ]
    assert up == [0]
    own_redis.start()  # the same port and data folder: the groups come back from the AOF
    assert (await http.until("/readyz", 200))["redis"] == "ok"


async def test_metrics_are_prometheus_text_with_the_queue_figures(
    served: tuple[Served, Redis], prefix: str
) -> None:
    http, redis = served
    stream = Keys(prefix).at(0).queue("cloudaten", "otp")
    await ensure_group(redis, stream)
    await redis.xadd(stream, {"c": "x", "n": 0})
    async with http.session.get(http.base + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    waiting = (("lane", "otp"), ("provider", "cloudaten"), ("state", "waiting"))
    assert samples[("dispatcher_queue_entries", waiting)] == 1
    assert samples[("dispatcher_redis_up", ())] == 1
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)


async def test_webhooks_keep_their_healthz_counts_and_add_readyz_and_metrics(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCHER_WEBHOOK_SECRET", SECRET)
    settings = all_providers(prefix, "http://127.0.0.1:9")
    runner, port = await start_webhooks(settings, redis_url, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            http = Served(f"http://127.0.0.1:{port}", session)
            async with session.post(f"{http.base}/hooks/not-the-secret-at-all/ycloud/dlr") as r:
                assert r.status == 404
            assert await http.json("/healthz") == (200, {"refused": 1})
            assert await http.json("/readyz") == (
                200, {"ready": True, "redis": "ok", "missing_groups": []}
            )  # fmt: skip
            _status, text = await http.get("/metrics")
    finally:
        await runner.cleanup()
    pushes = [
        (s.labels, s.value)
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
        if s.name == "dispatcher_webhook_pushes_total"
    ]
    assert pushes == [({"provider": "", "outcome": "refused", "reason": "wrong_secret"}, 1)]


def test_worker_ports_follow_the_process_number() -> None:
    assert [worker_port(9400, n) for n in ("1", "2", "3")] == [9400, 9401, 9402]
    assert worker_port(0, "3") == 0  # any free port, whichever process
    assert worker_port(9400, "") == 9400  # not started by a supervisor: the port itself
