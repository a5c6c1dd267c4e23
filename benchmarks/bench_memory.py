"""Worker memory over one big campaign: the worker must not grow with the campaign's size.

A private Redis, the provider mock and ONE worker process (started and ready before anything
is measured); one campaign of N recipients (default 1,000,000) is enqueued through
``Client.enqueue`` (streamed, in a thread of its own so the sampling never waits for it), and
the worker's RSS (``/proc/<pid>/status`` VmRSS) is sampled every second with the recipients
recorded so far, until every recipient has a send result.

Warm-up lasts until 10 % of the recipients are recorded; after it the RSS must stay flat:
(max − min) / min ≤ 0.10. The peak (the larger of the sampled maximum and the kernel's
VmHWM, which sees between samples) must stay ≤ 150 MB. The mock must have accepted exactly N
with none repeated. Prints FAILED lines and exits 1 if a bound is missed; writes the curve
and the figures as JSON under benchmarks/results/.

    python -m benchmarks.bench_memory [--recipients 1000000] [--provider cloudsms]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.bench_send import (
    ACCOUNTS,
    FIRST_NUMBER,
    SMPP_ACCOUNT,
    TEXT,
    mock_stats,
    numbers,
    start_worker,
    write_config,
)
from benchmarks.peers import proc_status_mb
from benchmarks.report import save
from dispatcher.client import CampaignNotFound, Client
from dispatcher.config import load_settings
from dispatcher.demo import start_mock, stop
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.model import Campaign, CampaignState, CampaignStatus, Enqueued
from dispatcher.runtime import connect

PEAK_LIMIT_MB = 150.0
FLATNESS_LIMIT = 0.10
WARMUP_SHARE = 0.10  # warm-up lasts until this share of the recipients is recorded
SAMPLE_S = 1.0
TIME_LIMIT_S = 1800.0


def enqueue_blocking(redis_url: str, config: Path, provider: str, n: int) -> Enqueued:
    """Enqueue on a loop of its own (run in a thread): validation is CPU work, and the
    sampler's ticks must not wait for it."""

    async def go() -> Enqueued:
        client = Client(settings=load_settings(config), redis=connect(redis_url))
        try:
            campaign = Campaign(provider, TEXT, [])
            return await client.enqueue(campaign, recipients=numbers(provider, n))
        finally:
            await client.redis.aclose()

    return uvloop.run(go())


async def follow(
    redis_url: str, config: Path, provider: str, n: int, *, worker: subprocess.Popen[str],
    limit_s: float,
) -> tuple[list[list[float]], float, CampaignStatus | None]:  # fmt: skip
    """Enqueue, then sample [seconds, RSS MB, recorded] every second until every recipient
    has a send result (or the campaign is paused, or ``limit_s`` passes); the curve, the
    enqueue's seconds and the last status."""
    client = Client(settings=load_settings(config), redis=connect(redis_url))
    started = time.monotonic()
    enqueue = asyncio.ensure_future(
        asyncio.to_thread(enqueue_blocking, redis_url, config, provider, n)
    )
    enqueue_s = 0.0
    campaign_id: str | None = None
    st: CampaignStatus | None = None
    curve: list[list[float]] = []
    try:
        for tick in range(int(limit_s / SAMPLE_S) + 1):
            if worker.poll() is not None:
                raise SystemExit(f"worker exited with {worker.returncode}")
            if campaign_id is None and enqueue.done():
                campaign_id = enqueue.result().id  # raises if the enqueue failed
                enqueue_s = time.monotonic() - started
            recorded = 0
            if campaign_id is not None:
                try:
                    st = await client.status(campaign_id)
                    recorded = st.recorded
                except CampaignNotFound:
                    pass
            now = time.monotonic() - started
            rss = proc_status_mb(worker.pid, "VmRSS")
            curve.append([round(now, 2), round(rss, 1), recorded])
            if st is not None and (st.sent or st.state == CampaignState.PAUSED):
                break
            await asyncio.sleep(max(0.0, started + (tick + 1) * SAMPLE_S - time.monotonic()))
    finally:
        await client.redis.aclose()
        if not enqueue.done():
            enqueue.cancel()  # the thread itself finishes the enqueue on its own
    return curve, enqueue_s, st


def figures(curve: list[list[float]], n: int) -> dict[str, Any]:
    """Peak, warm-up end and flatness of the RSS after warm-up, from the curve."""
    rss = [s[1] for s in curve]
    after = [s for s in curve if s[2] >= WARMUP_SHARE * n]
    steady = [s[1] for s in after] or [float("nan")]
    low, high = min(steady), max(steady)
    return {
        "peak_sampled_mb": max(rss),
        "warmup_seconds": after[0][0] if after else None,
        "rss_after_warmup_mb": after[0][1] if after else None,
        "min_after_warmup_mb": low,
        "max_after_warmup_mb": high,
        "flatness": round((high - low) / low, 4) if after else None,
        "samples_after_warmup": len(after),
    }


def run(n: int, provider: str, conc: int, limit_s: float) -> dict[str, Any]:
    """Start Redis, the mock and one worker; measure; stop them all whatever happens."""
    with tempfile.TemporaryDirectory(prefix="dispatcher-bench-memory-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis", free_port())
        redis.start()
        mock: subprocess.Popen[str] | None = None
        worker: subprocess.Popen[str] | None = None
        try:
            smpp = ["--smpp-port", "0", "--smpp-account",
                    f"{SMPP_ACCOUNT['system_id']}:{SMPP_ACCOUNT['api_key']}"]  # fmt: skip
            mock, mock_url = start_mock(smpp)
            assert mock.stdout is not None
            smpp_port = int(mock.stdout.readline().strip().rsplit(":", 1)[1])
            config = Path(tmp) / "bench.toml"
            write_config(config, mock_url, conc, smpp_port)
            env = {**os.environ, "REDIS_URL": redis.url, "DISPATCHER_CONFIG": str(config)}
            worker = start_worker(env)
            idle = proc_status_mb(worker.pid, "VmRSS")
            print(f"{provider}: {n:,} recipients, worker idle at {idle:.1f} MB …", flush=True)
            curve, enqueue_s, st = uvloop.run(
                follow(redis.url, config, provider, n, worker=worker, limit_s=limit_s)
            )
            hwm = proc_status_mb(worker.pid, "VmHWM")
            stats = mock_stats(mock_url, provider)
        finally:
            if worker is not None:
                stop(worker)
            if mock is not None:
                stop(mock)
            redis.stop()
    return {
        "idle_rss_mb": round(idle, 1),
        "hwm_rss_mb": round(hwm, 1),
        "enqueue_seconds": round(enqueue_s, 2),
        "seconds": curve[-1][0] if curve else None,
        "state": st.state if st is not None else None,
        "counts": st.counts if st is not None else {},
        "mock_accepted": stats["accepted"],
        "mock_repeated": stats["mobiles_repeated"],
        **figures(curve, n),
        "curve": curve,
    }


def check(r: dict[str, Any], n: int) -> list[str]:
    """The bounds missed, one line each."""
    failed = []
    if r["peak_rss_mb"] > PEAK_LIMIT_MB:
        failed.append(f"peak RSS {r['peak_rss_mb']:.1f} MB > {PEAK_LIMIT_MB:.0f} MB")
    if r["flatness"] is None or r["flatness"] > FLATNESS_LIMIT:
        failed.append(f"flatness after warm-up {r['flatness']} > {FLATNESS_LIMIT}")
    if r["counts"].get("accepted") != n:
        failed.append(f"dispatcher recorded {r['counts']} (state {r['state']}), not {n} accepted")
    if r["mock_accepted"] != n or r["mock_repeated"] != 0:
        failed.append(f"mock accepted {r['mock_accepted']}, repeated {r['mock_repeated']}")
    return failed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=1_000_000)
    p.add_argument("--provider", default="cloudsms", choices=sorted(ACCOUNTS))
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--time-limit", type=float, default=TIME_LIMIT_S, help="seconds")
    args = p.parse_args()
    n, provider = args.recipients, args.provider
    assert provider in FIRST_NUMBER
    r = run(n, provider, args.concurrency, args.time_limit)
    r["peak_rss_mb"] = round(max(r["peak_sampled_mb"], r["hwm_rss_mb"]), 1)
    failed = check(r, n)
    print(
        f"\n{n:,} recipients via {provider} in {r['seconds']} s (enqueue {r['enqueue_seconds']} s)"
        f"\nworker RSS: idle {r['idle_rss_mb']} MB, peak {r['peak_rss_mb']} MB"
        f" (sampled {r['peak_sampled_mb']}, VmHWM {r['hwm_rss_mb']})"
        f"\nafter warm-up ({r['warmup_seconds']} s): {r['rss_after_warmup_mb']} MB,"
        f" min {r['min_after_warmup_mb']}, max {r['max_after_warmup_mb']},"
        f" flatness {r['flatness']} over {r['samples_after_warmup']} samples"
        f"\nmock: accepted {r['mock_accepted']}, repeated {r['mock_repeated']}"
    )
    for line in failed:
        print(f"FAILED: {line}")
    summary = {
        "benchmark": "memory",
        "recipients": n,
        "provider": provider,
        "concurrency": args.concurrency,
        "limits": {"peak_rss_mb": PEAK_LIMIT_MB, "flatness": FLATNESS_LIMIT},
        "ok": not failed,
        **r,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"written to {save('memory', summary)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
