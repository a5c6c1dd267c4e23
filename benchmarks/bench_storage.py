"""Redis bytes per recipient: after enqueue, after sending, and after delivery reports.

One campaign of N recipients (Cloud Aten, whose reports are pushed to the webhooks
process) goes through the whole system on loopback (benchmarks/rig.py). Redis's
``used_memory`` is read before the enqueue and at each stage, and the campaign's keys and
the shared indexes are sized with ``MEMORY USAGE``, so the figure is the campaign's own,
not the server's baseline. Prints the table and writes it as JSON under benchmarks/results/.

    python -m benchmarks.bench_storage [--recipients 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import uvloop
from redis.asyncio import Redis

from benchmarks.report import save
from benchmarks.rig import SECRET, Rig
from dispatcher.model import Campaign
from dispatcher.store import as_str

FIRST = 447911000000
TEXT = "Your parcel arrives today between 10:00 and 12:00."
TIME_LIMIT_S = 1800.0


async def used(redis: Redis) -> int:
    info: dict[str, Any] = await redis.info("memory")
    return int(info["used_memory"])


async def sizes(redis: Redis, prefix: str) -> dict[str, int]:
    """Bytes by key kind (the name with the campaign id cut out), from MEMORY USAGE."""
    by_kind: dict[str, int] = defaultdict(int)
    async for raw in redis.scan_iter(match=f"{prefix}*", count=1000):
        key = as_str(raw)
        kind = key.split("}", 1)[-1].lstrip(":") if "}" in key else key.removeprefix(prefix)
        by_kind[kind or key] += int(await redis.memory_usage(key, samples=0) or 0)
    return dict(sorted(by_kind.items(), key=lambda kv: -kv[1]))


async def run(rig: Rig, n: int) -> dict[str, Any]:
    client = rig.client()
    redis = client.redis
    stages: dict[str, dict[str, Any]] = {}

    async def stage(name: str, base: int) -> None:
        keys = await sizes(redis, "bench:")
        stages[name] = {
            "used_memory_delta": await used(redis) - base,
            "keys_bytes": sum(keys.values()),
            "by_kind": keys,
        }

    base = await used(redis)
    numbers = [f"+{FIRST + i}" for i in range(n)]
    answer = await client.enqueue(Campaign("cloudaten", TEXT, numbers))
    await stage("enqueued", base)
    rig.worker()
    st = await client.wait(answer.id, TIME_LIMIT_S)
    if not st.sent:
        raise SystemExit(f"not sent in time: {st.as_dict()}")
    await stage("sent", base)
    st = await client.wait(answer.id, TIME_LIMIT_S, final=True)
    if not st.done:
        raise SystemExit(f"reports incomplete: {st.as_dict()}")
    await stage("reported", base)
    await redis.aclose()
    return stages


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=100_000)
    args = p.parse_args()
    n = args.recipients
    with tempfile.TemporaryDirectory(prefix="dispatcher-storage-") as tmp:
        rig = Rig(Path(tmp), {"cloudaten": {"rate_per_second": 1_000_000, "chunk_size": 100}})
        try:
            # Reports are pushed to the webhooks process, which started after the config.
            callback = f"{rig.hooks_url}/hooks/{SECRET}/cloudaten/dlr"
            settings = {"rate_per_second": 1_000_000, "chunk_size": 100, "callback_url": callback}
            rig.write_config({"cloudaten": settings}, {})
            stages = uvloop.run(run(rig, n))
        finally:
            rig.close()
    print(f"\n{n:,} recipients, Cloud Aten, reports pushed")
    print(f"{'stage':<10}{'used_memory/recipient':>24}{'keys/recipient':>17}")
    for name, s in stages.items():
        print(f"{name:<10}{s['used_memory_delta'] / n:>24.1f}{s['keys_bytes'] / n:>17.1f}")
    print("largest key kinds after reports (bytes/recipient):")
    for kind, size in list(stages["reported"]["by_kind"].items())[:8]:
        print(f"  {kind:<28}{size / n:>8.1f}")
    summary = {
        "benchmark": "storage",
        "recipients": n,
        "stages": stages,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"written to {save('storage', summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
