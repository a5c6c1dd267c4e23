"""Four worker processes share each account's rate: the mock, which refuses and counts any
request above the configured rate in a sliding one-second window, counts none."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from tests.e2e.conftest import System

RATE = 60
N = 300


async def test_four_processes_never_exceed_the_rate(
    system: System, redis: Redis, tmp_path: Path
) -> None:
    limits = {"rate_per_second": RATE, "chunk_size": 10, "concurrency": 16}
    system.write_config(cloudaten=limits, ycloud=limits)
    await system.mock_settings(rate_limits=[["cloudaten", RATE], ["ycloud", RATE]])
    numbers = tmp_path / "n.txt"
    numbers.write_text("".join(f"+{447911000000 + i}\n" for i in range(N)))
    cids = [
        system.cli(
            "enqueue", "--provider", p, "--text", "hi", "--recipients", str(numbers)
        ).stdout.strip()
        for p in ("cloudaten", "ycloud")
    ]
    system.worker("--processes", "4")
    client = Client(settings=load_settings(system.config), redis=redis)
    for cid in cids:
        st = await client.wait(cid, 120)
        assert st.sent and st.counts == {"accepted": N}, st.as_dict()
    for provider in ("cloudaten", "ycloud"):
        stats = (await system.mock_get("/_mock/stats"))["providers"][provider]
        assert (stats["accepted"], stats["over_rate"]) == (N, 0), stats
