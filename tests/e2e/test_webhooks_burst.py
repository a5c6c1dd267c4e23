"""A burst of 2,000 concurrent delivery reports to a real ``python -m dispatcher webhooks``
process, against the tests' real Redis: no answer is a 500 (the Redis pool used to run out
of connections and fail), and every report is applied exactly once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.keys import Keys
from dispatcher.rows import hmget
from tests.conftest import all_providers, start_server, subprocess_env
from tests.webhooks.support import SECRET, one_mobile_report, sent_campaign

PER_PROVIDER = 1_000  # two providers: 2,000 pushes at once
NUMBERS = {
    "cloudaten": [f"+4479110{i:05d}" for i in range(PER_PROVIDER)],
    "ycloud": [f"+4479220{i:05d}" for i in range(PER_PROVIDER)],
}


@pytest.fixture
async def webhooks(tmp_path: Path, redis_url: str, prefix: str) -> AsyncIterator[str]:
    """A webhooks process on a free loopback port; its base URL. Stopped by SIGTERM."""
    config = tmp_path / "dispatcher.toml"
    config.write_text(f'prefix = "{prefix}"\n')
    env = subprocess_env(
        REDIS_URL=redis_url, DISPATCHER_WEBHOOK_SECRET=SECRET, DISPATCHER_CONFIG=str(config)
    )
    proc, url = await asyncio.to_thread(start_server, env, "webhooks", stderr=subprocess.PIPE)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=30)
    assert "Too many connections" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    assert proc.returncode == 0, stderr[-3000:]


@pytest.mark.timeout(240)
async def test_2000_concurrent_pushes_are_each_applied_once(
    webhooks: str, redis: Redis, prefix: str
) -> None:
    settings = all_providers(
        prefix, "http://127.0.0.1:9",
        cloudaten={"chunk_size": PER_PROVIDER}, ycloud={"chunk_size": PER_PROVIDER},
    )  # fmt: skip
    cids = {p: await sent_campaign(redis, settings, p, numbers) for p, numbers in NUMBERS.items()}
    bodies = []
    for provider, cid in cids.items():
        for i, number in enumerate(NUMBERS[provider]):
            report = one_mobile_report(provider, cid, i, mobile=number)
            bodies.append((provider, orjson.dumps(report)))
    gate = asyncio.Event()  # every push waits here, then all go at once
    connector = aiohttp.TCPConnector(limit=0)  # one connection each: a real burst
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def push(provider: str, body: bytes) -> int:
            await gate.wait()
            url = f"{webhooks}/hooks/{SECRET}/{provider}/dlr"
            async with session.post(url, data=body) as r:
                await r.read()
                return r.status

        tasks = [asyncio.create_task(push(p, b)) for p, b in bodies]
        gate.set()
        statuses = Counter(await asyncio.gather(*tasks))
        async with session.get(f"{webhooks}/healthz") as r:
            counts = orjson.loads(await r.read())
    assert statuses == {200: 2 * PER_PROVIDER}, statuses
    assert counts["cloudaten.applied"] == counts["ycloud.applied"] == PER_PROVIDER, counts
    client = Client(settings=settings, redis=redis)
    k = Keys(prefix)
    for cid in cids.values():
        status = await client.status(cid)
        assert status.finals == {"delivered": PER_PROVIDER} and status.done
        assert None not in await hmget(redis, k.reports(cid), range(PER_PROVIDER))
        assert set(await hmget(redis, k.state(cid), range(PER_PROVIDER))) == {b"3"}
