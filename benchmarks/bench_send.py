"""Dispatcher throughput against the bare-client ceiling, measured side by side in one run.

1. ceiling: a bare aiohttp client (uvloop, no queue, no Redis) sends N Cloud Aten requests
   (the same bodies the worker sends) to the mock with the same concurrency;
2. dispatcher: N recipients are enqueued and one worker process sends them to the same mock.

Both use one client process against the same mock process, so the ratio compares the cost of
the queue, the rate limiter and the result recording, not the machine. Prints recipients per
second and the ratio, and writes them as JSON under benchmarks/results/.

    python benchmarks/bench_send.py [--recipients 100000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import DEMO_KEY_ENV, MOCK_KEY, start_mock, stop
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.model import Campaign
from dispatcher.runtime import connect

RESULTS = Path(__file__).resolve().parent / "results"
TEXT = "Benchmark message from dispatcher."
TIME_LIMIT_S = 600.0  # each phase gives up after this long


def numbers(n: int) -> list[str]:
    return [f"+447911{i:06d}" for i in range(n)]


async def ceiling(mock_url: str, n: int, concurrency: int) -> float:
    """Recipients per second of a bare aiohttp client: the most any sender could reach."""
    url = f"{mock_url}/cloudaten/v1/sms/send_messages"
    headers = {"X-API-Key": MOCK_KEY, "Content-Type": "application/json;charset=utf-8"}
    bodies = [
        orjson.dumps({"mobile": m, "uid": f"bare.{i}", "text": TEXT})
        for i, m in enumerate(numbers(n))
    ]
    next_index = 0
    deadline = time.monotonic() + TIME_LIMIT_S

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < n and time.monotonic() < deadline:
            body = bodies[next_index]
            next_index += 1
            async with session.post(url, data=body) as resp:
                data = orjson.loads(await resp.read())
                assert data["code"] == 0, data

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.monotonic()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return n / elapsed


async def mock_call(mock_url: str, method: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, mock_url + path) as resp:
        return orjson.loads(await resp.read())


async def through_dispatcher(redis_url: str, config: Path, n: int) -> tuple[float, float]:
    """(enqueue seconds, recipients per second from the enqueue's commit to the last result)."""
    client = Client(settings=load_settings(config), redis=connect(redis_url))
    try:
        t0 = time.monotonic()
        answer = await client.enqueue(Campaign("cloudaten", TEXT, list(numbers(n))))
        t1 = time.monotonic()
        st = await client.wait(answer.id, TIME_LIMIT_S)
        t2 = time.monotonic()
        if not st.done or st.counts.get("accepted") != n:
            raise SystemExit(f"dispatcher run incomplete: {st.as_dict()}")
        return t1 - t0, n / (t2 - t1)
    finally:
        await client.redis.aclose()


def start_worker(env: dict[str, str], concurrency: int) -> subprocess.Popen[str]:
    """Start a worker and wait for its 'ready' log line, so start-up is not measured."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "worker", "--concurrency", str(concurrency)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.write(line)
        if " ready" in line:
            # Keep draining its log so a full pipe never blocks the worker.
            threading.Thread(target=_copy, args=(proc.stderr,), daemon=True).start()
            return proc
    raise SystemExit("worker did not start")


def _copy(stream: Any) -> None:
    for line in stream:
        sys.stderr.write(line)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=64)
    args = p.parse_args()
    n, conc = args.recipients, args.concurrency
    with tempfile.TemporaryDirectory(prefix="dispatcher-bench-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis", free_port())
        redis.start()
        mock, mock_url = start_mock([])
        worker: subprocess.Popen[str] | None = None
        try:
            config = Path(tmp) / "bench.toml"
            config.write_text(
                'prefix = "bench:"\n[worker]\nchunks_in_flight = 8\n'
                f'[providers.cloudaten]\nbase_url = "{mock_url}/cloudaten"\n'
                f"rate_per_second = 1000000\nconcurrency = {conc}\nchunk_size = 100\n"
                f'[providers.cloudaten.accounts.default]\napi_key_env = "{DEMO_KEY_ENV}"\n'
            )
            env = {
                **os.environ,
                "REDIS_URL": redis.url,
                "DISPATCHER_CONFIG": str(config),
                DEMO_KEY_ENV: MOCK_KEY,
            }
            print(f"ceiling: bare aiohttp client, {n:,} requests, concurrency {conc} …")
            bare = uvloop.run(ceiling(mock_url, n, conc))
            uvloop.run(mock_call(mock_url, "POST", "/_mock/reset"))
            print(f"dispatcher: enqueue {n:,} recipients, one worker process …")
            worker = start_worker(env, conc)
            enqueue_s, rate = uvloop.run(through_dispatcher(redis.url, config, n))
            stats = uvloop.run(mock_call(mock_url, "GET", "/_mock/stats"))["providers"]["cloudaten"]
        finally:
            if worker is not None:
                stop(worker)
            stop(mock)
            redis.stop()
    ratio = rate / bare
    print(f"\n  bare aiohttp client : {bare:10,.0f} recipients/s")
    print(f"  dispatcher worker   : {rate:10,.0f} recipients/s  (enqueue took {enqueue_s:.1f} s)")
    print(f"  ratio               : {ratio:10.2f}  (target ≥ 0.50)")
    print(f"  mock: {stats['accepted']:,} accepted, {stats['uids_repeated']} repeated uids")
    report = {
        "benchmark": "cloudaten_send",
        "recipients": n,
        "concurrency": conc,
        "bare_client_rps": round(bare, 1),
        "dispatcher_rps": round(rate, 1),
        "ratio": round(ratio, 3),
        "enqueue_seconds": round(enqueue_s, 2),
        "mock_accepted": stats["accepted"],
        "mock_uids_repeated": stats["uids_repeated"],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cloudaten-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"  written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 0 if stats["accepted"] == n and stats["uids_repeated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
