"""The whole slice with real processes: CLI enqueue → Redis → worker → Cloud Aten mock."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.model import Result, Status
from dispatcher.rows import hmget
from tests.e2e.conftest import System

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster

N = 5000


async def mock_stats(system: System) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{system.mock_url}/_mock/stats") as r:
        stats: dict[str, Any] = orjson.loads(await r.read())["providers"]["cloudaten"]
        return stats


def numbers_file(tmp: Path, n: int = N) -> Path:
    path = tmp / "numbers.txt"
    path.write_text("".join(f"+4479112{i:05d}\n" for i in range(n)))
    return path


def enqueue(system: System, tmp: Path, n: int = N) -> str:
    done = system.cli(
        "enqueue",
        "--provider",
        "cloudaten",
        "--text",
        "e2e hello",
        "--recipients",
        str(numbers_file(tmp, n)),
        "--json",
    )
    answer = orjson.loads(done.stdout)
    assert (answer["valid"], answer["invalid"], answer["duplicates"]) == (n, 0, 0)
    return str(answer["id"])


async def all_results(client: Client, cid: str) -> list[Result]:
    return [r async for r in client.results(cid)]


async def wait_for_chunks(redis: Redis, system: System, cid: str, count: int) -> None:
    """Block on the events stream until ``count`` chunks of ``cid`` have been recorded."""
    key = system.keys.part(cid).events
    cursor: Any = "0-0"
    seen = 0
    deadline = time.monotonic() + 60
    while seen < count:
        assert time.monotonic() < deadline, f"only {seen} chunk(s) recorded"
        got: Any = await redis.xread({key: cursor}, count=100, block=1000)
        for _stream, entries in got:
            for entry_id, fields in entries:
                cursor = entry_id
                if fields[b"c"].decode() == cid and fields[b"e"] in (b"chunk", b"done"):
                    seen += 1


def check_exactly_one_result_each(results: list[Result], n: int = N) -> None:
    assert [r.index for r in results] == list(range(n))  # every recipient, once
    # Accepted, or further on where a list page brought its status already.
    assert all(r.status != Status.PENDING and r.message_id for r in results)


async def test_5000_recipients_one_result_each(
    system: System, redis: Redis, tmp_path: Path
) -> None:
    cid = enqueue(system, tmp_path)
    system.worker()
    client = Client(settings=load_settings(system.config), redis=redis)
    st = await client.wait(cid, 120)
    assert st.sent and st.counts == {"accepted": N}
    check_exactly_one_result_each(await all_results(client, cid))
    stored = await hmget(redis, system.keys.results(cid), range(N))
    assert None not in stored and len(stored) == N
    stats = await mock_stats(system)
    assert (stats["accepted"], stats["uids_repeated"]) == (N, 0)
    status = orjson.loads(system.cli("status", cid, "--json").stdout)
    assert status["sent"] and status["counts"] == {"accepted": N}


async def test_sigkill_mid_campaign_a_second_worker_finishes(
    system: System, redis: Redis, tmp_path: Path
) -> None:
    cid = enqueue(system, tmp_path)
    first = system.worker()
    await wait_for_chunks(redis, system, cid, 5)
    first.send_signal(signal.SIGKILL)
    assert first.wait(10) == -signal.SIGKILL
    client = Client(settings=load_settings(system.config), redis=redis)
    assert not (await client.status(cid)).sent
    system.worker()
    st = await client.wait(cid, 120)
    assert st.sent and st.counts == {"accepted": N}
    check_exactly_one_result_each(await all_results(client, cid))
    stats = await mock_stats(system)
    # What the dead worker may have sent was parked, and the list API said what arrived.
    assert (stats["accepted"], stats["uids_repeated"]) == (N, 0)
    assert st.parked == {}


async def test_sigterm_drains_and_exits_0(system: System, redis: Redis, tmp_path: Path) -> None:
    cid = enqueue(system, tmp_path)
    worker = system.worker()
    await wait_for_chunks(redis, system, cid, 3)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(10 + 5) == 0  # drain timeout 10 s, and a margin for start-up
    assert await system.pending(redis, "cloudaten") == 0
    client = Client(settings=load_settings(system.config), redis=redis)
    st = await client.status(cid)
    recorded = st.recorded
    assert recorded > 0 and st.counts == {"accepted": recorded}
    stats = await mock_stats(system)
    assert stats["accepted"] == recorded  # everything it sent is recorded
    system.worker()
    st = await client.wait(cid, 120)
    assert st.sent
    check_exactly_one_result_each(await all_results(client, cid))
    stats = await mock_stats(system)
    assert (stats["accepted"], stats["uids_repeated"]) == (N, 0)


async def test_sigint_behaves_like_sigterm(system: System, redis: Redis, tmp_path: Path) -> None:
    cid = enqueue(system, tmp_path, 1000)
    worker = system.worker("--processes", "2")
    await wait_for_chunks(redis, system, cid, 1)
    worker.send_signal(signal.SIGINT)
    assert worker.wait(20) == 0
    assert await system.pending(redis, "cloudaten") == 0


async def test_wrong_api_key_pauses_the_campaign(
    system: System, redis: Redis, tmp_path: Path
) -> None:
    done = system.cli(
        "enqueue",
        "--provider",
        "cloudaten",
        "--account",
        "wrong",
        "--text",
        "hi",
        "--recipients",
        str(numbers_file(tmp_path, 300)),
    )
    cid = done.stdout.strip()
    system.worker()
    client = Client(settings=load_settings(system.config), redis=redis)
    st = await client.wait(cid, 60)
    assert st.state == "paused" and st.pending == 300 and st.counts == {}
    status = orjson.loads(system.cli("status", cid, "--json").stdout)
    assert status["state"] == "paused"
    assert status["reason"].startswith("INVALID_API_KEY from cloudaten account wrong")
    assert "wrong-key" not in system.cli("status", cid).stdout  # the key itself never shows
    stats = await mock_stats(system)
    assert stats["accepted"] == 0 and stats["unauthorized"] >= 1
