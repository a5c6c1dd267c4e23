"""Redis bytes per recipient: after enqueue, after sending, and after delivery reports.

One campaign of N recipients (Cloud Aten, whose reports are pushed to the webhooks
process) goes through the whole system on loopback (benchmarks/rig.py). Redis's
``used_memory`` is read before the enqueue and at each stage, and the campaign's keys and
the shared indexes are sized with ``MEMORY USAGE``, so the figure is the campaign's own,
not the server's baseline. Prints the table and writes it as JSON under benchmarks/results/.

Side by side in the same run, the same benchmark runs on the code of ``--baseline`` (a git
commit: by default the last one before the compact layout of rows.py), checked out in a
temporary worktree, and the ratio of the two is printed: how much smaller storage became.

    python -m benchmarks.bench_storage [--recipients 1000000] [--baseline REF | --no-baseline]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import uvloop
from redis.asyncio import Redis

from benchmarks.report import save
from benchmarks.rig import SECRET, Rig
from dispatcher.model import Campaign
from dispatcher.store import as_str

#: UK mobiles valid throughout the first million (+447911… turns invalid half way).
FIRST = 447900000000
TEXT = "Your parcel arrives today between 10:00 and 12:00."
TIME_LIMIT_S = 3600.0  # per stage: two runs side by side on two cores take a while
#: The layout before rows.py: a hash field per recipient, rows with their number.
BASELINE = "720def7d595f6ee9bd72d4557ff5461410b7fc33"
ROOT = Path(__file__).resolve().parent.parent


async def used(redis: Redis) -> int:
    info: dict[str, Any] = await redis.info("memory")
    return int(info["used_memory"])


async def sizes(redis: Redis, prefix: str) -> dict[str, int]:
    """Bytes by key kind (the name with the campaign id cut out), from MEMORY USAGE."""
    by_kind: dict[str, int] = defaultdict(int)
    async for raw in redis.scan_iter(match=f"{prefix}*", count=1000):
        key = as_str(raw)
        kind = key.split("}", 1)[-1].lstrip(":") if "}" in key else key.removeprefix(prefix)
        kind = re.sub(r":\d+$", ":<bucket>", kind)  # rows.py: the buckets of one hash
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


class Baseline:
    """This benchmark on the code of ``ref``, in a temporary git worktree (its own
    processes import that code: its folder comes first on their path). It runs beside this
    one, on its own Redis server: only bytes are compared, and the two halves of a
    million-recipient run take some twenty minutes each."""

    def __init__(self, ref: str, n: int) -> None:
        self.ref = ref
        self._tmp = tempfile.TemporaryDirectory(prefix="dispatcher-baseline-")
        self.tree = Path(self._tmp.name) / "tree"
        self.process: subprocess.Popen[bytes] | None = None
        add = ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.tree), ref]
        if subprocess.run(add, capture_output=True, text=True, check=False).returncode:
            print(f"baseline {ref[:12]} is not in this clone: no side-by-side figure")
            return
        # This very benchmark (same numbers, same sizing) on that commit's code.
        (self.tree / "benchmarks" / "bench_storage.py").write_bytes(Path(__file__).read_bytes())
        # Its run must not start a baseline of its own.
        env = {**os.environ, "PYTHONPATH": str(self.tree), "BENCH_STORAGE_NO_BASELINE": "1"}
        cmd = [sys.executable, "-m", "benchmarks.bench_storage", "--recipients", str(n)]
        print(f"baseline: the same run on {ref[:12]}, alongside …", flush=True)
        # Its own session: stopping it stops the servers and workers it started too.
        self.process = subprocess.Popen(cmd, cwd=self.tree, env=env, stdout=subprocess.DEVNULL,
                                        start_new_session=True)  # fmt: skip

    def result(self) -> dict[str, Any] | None:
        """Its figures, once it is done (None if it could not run)."""
        try:
            if self.process is None or self.process.wait(TIME_LIMIT_S * 2):
                return None
            found = sorted((self.tree / "benchmarks" / "results").glob("storage-*.json"))
            return orjson.loads(found[-1].read_bytes()) if found else None
        finally:
            self.close()

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # its children too
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.tree)],
                       check=False, capture_output=True)  # fmt: skip
        self._tmp.cleanup()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=1_000_000)
    p.add_argument("--baseline", default=BASELINE, help="git commit to compare with")
    p.add_argument("--no-baseline", action="store_true", help="measure this code only")
    args = p.parse_args()
    n = args.recipients
    skip = args.no_baseline or os.environ.get("BENCH_STORAGE_NO_BASELINE")
    side = None if skip else Baseline(args.baseline, n)
    try:
        stages = measure(n)
        before = side.result() if side is not None else None
    finally:
        if side is not None:
            side.close()
    report(n, stages, before, args.baseline)
    return 0


def measure(n: int) -> dict[str, Any]:
    """This code's figures."""
    with tempfile.TemporaryDirectory(prefix="dispatcher-storage-") as tmp:
        rig = Rig(Path(tmp), {"cloudaten": {"rate_per_second": 1_000_000, "chunk_size": 100}})
        try:
            # Reports are pushed to the webhooks process, which started after the config.
            callback = f"{rig.hooks_url}/hooks/{SECRET}/cloudaten/dlr"
            settings = {"rate_per_second": 1_000_000, "chunk_size": 100, "callback_url": callback}
            rig.write_config({"cloudaten": settings}, {})
            return uvloop.run(run(rig, n))
        finally:
            rig.close()


def report(n: int, stages: dict[str, Any], before: dict[str, Any] | None, ref: str) -> None:
    print(f"\n{n:,} recipients, Cloud Aten, reports pushed")
    print(f"{'stage':<10}{'used_memory/recipient':>24}{'keys/recipient':>17}")
    for name, s in stages.items():
        print(f"{name:<10}{s['used_memory_delta'] / n:>24.1f}{s['keys_bytes'] / n:>17.1f}")
    print("largest key kinds after reports (bytes/recipient):")
    for kind, size in list(stages["reported"]["by_kind"].items())[:8]:
        print(f"  {kind:<28}{size / n:>8.1f}")
    ratios: dict[str, float] = {}
    if before is not None:
        print(f"\nside by side with {ref[:12]} (this / baseline, used_memory):")
        for name, s in stages.items():
            old = before["stages"][name]["used_memory_delta"]
            ratios[name] = s["used_memory_delta"] / old if old else float("nan")
            print(f"{name:<10}{old / n:>10.1f} → {s['used_memory_delta'] / n:>7.1f} B/recipient"
                  f"{ratios[name]:>8.2f}×")  # fmt: skip
    summary = {
        "benchmark": "storage",
        "recipients": n,
        "stages": stages,
        "baseline": None if before is None else {"ref": ref, "stages": before["stages"]},
        "ratios": ratios,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"written to {save('storage', summary)}")


if __name__ == "__main__":
    sys.exit(main())
