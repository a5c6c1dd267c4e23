"""Delivery reports end to end, real processes: the mock pushes a mix of final statuses
through a flaky hop that fails the first attempt of 10% of pushes, to the webhooks process;
the mock retries on the seeds' schedule (scaled down). Every recipient must end in the
status the mock decided, each counted once."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.providers import cloudsms
from dispatcher.providers.cloudaten import STATUSES as CLOUDATEN
from dispatcher.providers.ycloud import STATUSES as YCLOUD
from tests.e2e.conftest import SECRET, System

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster

N = 10_000
FIRST = {"cloudaten": 447911000000, "ycloud": 447911000000, "cloudsms": 85261000000}


class FlakyHop:
    """Forwards pushes to the webhooks server, failing the first attempt of ~10% of them."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: set[bytes] = set()
        self.failed = 0
        self.forwarded = 0
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = hashlib.sha256(request.path_qs.encode() + body).digest()
        if key[0] % 10 == 0 and key not in self.seen:  # a tenth of all pushes, first try only
            self.seen.add(key)
            self.failed += 1
            return web.Response(status=503, text="try again")
        assert self.session is not None
        async with self.session.request(
            request.method, self.target + request.path_qs, data=body
        ) as resp:
            self.forwarded += 1
            return web.Response(
                status=resp.status, body=await resp.read(), content_type=resp.content_type
            )


@pytest.fixture
async def hop(system: System) -> AsyncIterator[tuple[FlakyHop, str]]:
    flaky = FlakyHop(system.webhooks())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", flaky.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with aiohttp.ClientSession() as session:
        flaky.session = session
        yield flaky, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def expected(provider: str, message: dict[str, object]) -> str:
    if provider == "cloudsms":
        # The mock's SMS_STATE for its decision, read the way our codec reads it.
        return cloudsms.STATES[int(str(message["final_status"]))].value
    table = CLOUDATEN if provider == "cloudaten" else YCLOUD
    return table[str(message["final_status"])].value


@pytest.mark.parametrize("provider", ["cloudaten", "ycloud", "cloudsms"])
async def test_10000_reports_with_failed_first_attempts(
    system: System, hop: tuple[FlakyHop, str], redis: Redis, tmp_path: Path, provider: str
) -> None:
    flaky, hop_url = hop
    system.write_config(webhooks={"public_url": hop_url}, cloudsms={"chunk_size": 1000})
    await system.mock_settings(
        dlr_delay_ms=300,
        retry_time_factor=0.001,  # 1 min → 60 ms, 10 min → 0.6 s, …
        cloudsms_callback_url=f"{hop_url}/hooks/{SECRET}/cloudsms/dlr",
    )
    numbers = tmp_path / "n.txt"
    numbers.write_text("".join(f"+{FIRST[provider] + i}\n" for i in range(N)))
    cid = system.cli(
        "enqueue", "--provider", provider, "--text", "hi", "--recipients", str(numbers)
    ).stdout.strip()
    system.worker()
    client = Client(settings=load_settings(system.config), redis=redis)
    st = await client.wait(cid, 240, final=True)
    assert st.done, st.as_dict()
    assert sum(st.finals.values()) == N  # each recipient counted once
    decided = {
        str(m["mobile"]): expected(provider, m)
        for m in await system.mock_get(f"/_mock/messages?provider={provider}")
    }
    got = {r.number: r.status async for r in client.results(cid)}
    assert got == decided
    assert len({s for s in got.values()}) >= 3  # a real mix of final statuses
    stats = (await system.mock_get("/_mock/stats"))["providers"][provider]
    assert stats["push_abandoned"] == 0 and stats["bad_answers"] == 0
    assert 0.05 * 2 * N < flaky.failed < 0.15 * 2 * N  # two pushes a message
    assert stats["push_retries"] == flaky.failed
    assert stats["pushes"] == 2 * N
    status = orjson.loads(system.cli("status", cid, "--json").stdout)
    assert status["done"] and status["open"] == 0
