"""Chaos: a campaign while worker processes are SIGKILLed at random moments, at least ten
times. Nothing may be lost. What a dead worker may have sent is parked; Cloud Aten and
YCloud settle it from their list API, so they must show no duplicate at all; CloudSMS
(no report receiver here) resends it after the wait, and Smsclouds holds the campaign
until it is resumed: their duplicates must stay within what was in flight at the kills —
the test prints them. (`make chaos` runs the larger acceptance version.)

``DISPATCHER_CHAOS_RECIPIENTS`` sets the campaign size (default 50,000; 20,000 for the two
providers sent a request per recipient, which take ten kills well within that).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from tests.e2e.conftest import System

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster

SIZE = os.environ.get("DISPATCHER_CHAOS_RECIPIENTS")
N_OF = {"cloudaten": 20_000, "ycloud": 20_000, "cloudsms": 50_000, "smsclouds": 50_000}
KILLS = 10
WORKERS = 2
CHUNKS_IN_FLIGHT = 4  # the e2e config
FIRST = {"cloudaten": 447911000000, "ycloud": 447911000000, "cloudsms": 85261000000,
         "smsclouds": 524498000000}  # fmt: skip
CHUNK = {"cloudaten": 100, "ycloud": 100, "cloudsms": 1000, "smsclouds": 2000}


async def chunk_events(redis: Redis, system: System, cid: str, cursor: Any, count: int) -> Any:
    """Block on the events stream until ``count`` more events of ``cid`` (chunks recorded,
    progress) or its pause."""
    key = system.keys.part(cid).events
    seen = 0
    deadline = time.monotonic() + 60
    while seen < count:
        assert time.monotonic() < deadline, "the campaign stopped moving"
        got: Any = await redis.xread({key: cursor}, count=100, block=1000)
        for _stream, entries in got:
            for entry_id, fields in entries:
                cursor = entry_id
                if fields[b"c"].decode() == cid:
                    seen += 1
                    if fields[b"e"] == b"paused":
                        return cursor
    return cursor


async def resume_if_held(client: Client, cid: str, provider: str) -> None:
    """Smsclouds holds what it cannot know: an operator reads the reason and resumes."""
    st = await client.status(cid)
    if st.state == "paused":
        assert provider == "smsclouds" and st.reason and "may or may not" in st.reason
        await client.resume(cid)


@pytest.mark.parametrize("provider", ["cloudaten", "ycloud", "cloudsms", "smsclouds"])
async def test_kill_workers_ten_times(
    system: System, redis: Redis, tmp_path: Path, provider: str
) -> None:
    # CloudSMS: without a report receiver here, parked packets are resent a second after
    # their window closes (the default waits 15 minutes for reports).
    n = int(SIZE) if SIZE else N_OF[provider]
    waits = {"cloudsms": {"unknown_wait_seconds": 1}}
    system.write_config(**{provider: {"chunk_size": CHUNK[provider], **waits.get(provider, {})}})
    await system.mock_settings(latency_ms=2)
    numbers = tmp_path / "n.txt"
    numbers.write_text("".join(f"+{FIRST[provider] + i}\n" for i in range(n)))
    cid = system.cli(
        "enqueue", "--provider", provider, "--text", "chaos", "--recipients", str(numbers)
    ).stdout.strip()
    rng = random.Random(f"chaos-{provider}")
    workers: list[subprocess.Popen[Any]] = [system.worker() for _ in range(WORKERS)]
    cursor: Any = "0-0"
    kills = 0
    client = Client(settings=load_settings(system.config), redis=redis)
    while kills < KILLS and not (await client.status(cid)).sent:
        await resume_if_held(client, cid, provider)
        cursor = await chunk_events(redis, system, cid, cursor, rng.randint(1, 4))
        victim = workers.pop(rng.randrange(len(workers)))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        kills += 1
        workers.append(system.worker())
    st = await client.wait(cid, 600)
    while st.state == "paused":
        await resume_if_held(client, cid, provider)
        st = await client.wait(cid, 600)
    assert st.sent and st.counts == {"accepted": n}, st.as_dict()
    results = [r async for r in client.results(cid)]
    assert [r.index for r in results] == list(range(n))  # none lost, none twice
    stats = (await system.mock_get("/_mock/stats"))["providers"][provider]
    repeats = (
        stats["uids_repeated"] if provider in ("cloudaten", "ycloud") else stats["mobiles_repeated"]
    )
    print(f"\nchaos {provider}: {n} recipients, {kills} kills, mock accepted "
          f"{stats['accepted']}, duplicates {repeats}")  # fmt: skip
    assert kills >= KILLS or n < 1000
    assert stats["accepted"] == n + repeats
    if provider in ("cloudaten", "ycloud"):
        assert repeats == 0
    else:
        assert repeats <= kills * CHUNKS_IN_FLIGHT * CHUNK[provider]
