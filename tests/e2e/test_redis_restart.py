"""Redis killed (SIGKILL) and restarted mid-campaign under a running worker process: the
worker reconnects and the campaign completes with every recipient recorded once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.embedded import RedisProcess
from dispatcher.runtime import connect
from tests.e2e.conftest import System
from tests.e2e.test_cloudaten import enqueue, wait_for_chunks

N = 5000


@pytest.fixture
def redis_url(own_redis: RedisProcess) -> str:
    """This module's system uses a Redis of its own, which the test may kill."""
    return own_redis.url


async def test_redis_killed_and_restarted(
    system: System, own_redis: RedisProcess, redis: Redis, tmp_path: Path
) -> None:
    await system.mock_settings(latency_ms=3)
    cid = enqueue(system, tmp_path, N)
    system.worker()
    await wait_for_chunks(redis, system, cid, 5)
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGKILL)
    own_redis.process.wait()
    own_redis.start()  # same port, same folder: the AOF is replayed
    # The test's own connections died with the server: read through a reconnecting client.
    client = Client(settings=load_settings(system.config), redis=connect(own_redis.url))
    st = await client.wait(cid, 180)
    assert st.sent and st.counts == {"accepted": N}, st.as_dict()
    results = [r async for r in client.results(cid)]
    assert [r.index for r in results] == list(range(N))  # none lost, none twice
    stats = (await system.mock_get("/_mock/stats"))["providers"]["cloudaten"]
    print(f"\nredis restart: mock accepted {stats['accepted']}, repeated {stats['uids_repeated']}")
    assert stats["accepted"] == N + stats["uids_repeated"]
    await client.redis.aclose()
