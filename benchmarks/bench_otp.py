"""How long an OTP waits behind a huge bulk campaign: the otp lane against a bulk lane.

A bulk campaign of N recipients (1,000,000 by default) is enqueued and a worker starts
sending it through the Cloud Aten mock at the account's full rate; once the bulk campaign
is under way, single-recipient OTP campaigns are enqueued one after another (lane "otp"),
and for each the time from enqueue to the mock accepting it is measured. Target: about a
second. Prints the OTP latencies and writes them as JSON under benchmarks/results/.

    python -m benchmarks.bench_otp [--bulk 1000000] [--otps 20] [--rate 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import start_mock, stop
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.model import Campaign
from dispatcher.runtime import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script too
from benchmarks.bench_send import start_worker
from benchmarks.report import save

TIME_LIMIT_S = 900.0


async def mock_messages(mock_url: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{mock_url}/_mock/messages?provider=cloudaten") as r,
    ):
        data: list[dict[str, Any]] = orjson.loads(await r.read())
        return data


async def scenario(redis_url: str, config: Path, mock_url: str, bulk: int, otps: int) -> Any:
    client = Client(settings=load_settings(config), redis=connect(redis_url))
    try:
        print(f"enqueueing a bulk campaign of {bulk:,} …", flush=True)
        t0 = time.monotonic()
        numbers = [f"+{447400000000 + i}" for i in range(bulk)]
        big = await client.enqueue(Campaign("cloudaten", "bulk", numbers, lane="bulk"))
        print(f"  took {time.monotonic() - t0:.1f} s; {big.valid:,} valid", flush=True)
        while (await client.status(big.id)).recorded < 1000:  # the bulk campaign is under way
            await client.wait(big.id, 0.5)
        latencies = []
        for i in range(otps):
            started = time.time()
            otp = await client.enqueue(
                Campaign("cloudaten", f"Your code is {1000 + i}", [f"+44791100{i:04d}"], lane="otp")
            )
            st = await client.wait(otp.id, 60)
            assert st.sent, st.as_dict()
            latencies.append(time.time() - started)
        left = (await client.status(big.id)).pending
        await client.cancel(big.id)
        return latencies, left
    finally:
        await client.redis.aclose()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bulk", type=int, default=1_000_000)
    p.add_argument("--otps", type=int, default=20)
    p.add_argument("--rate", type=float, default=2000.0, help="the account's rate per second")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="dispatcher-otp-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis", free_port())
        redis.start()
        mock, mock_url = start_mock(["--latency-ms", "5"])
        worker: subprocess.Popen[str] | None = None
        try:
            config = Path(tmp) / "otp.toml"
            config.write_text(
                'prefix = "otp:"\n[providers.cloudaten]\n'
                f'base_url = "{mock_url}/cloudaten"\nrate_per_second = {args.rate}\n'
                "concurrency = 64\nchunk_size = 100\n"
                '[providers.cloudaten.accounts.default]\napi_key = "mock-cloudaten-key"\n'
            )
            env = {**os.environ, "REDIS_URL": redis.url, "DISPATCHER_CONFIG": str(config)}
            worker = start_worker(env)
            latencies, left = uvloop.run(
                scenario(redis.url, config, mock_url, args.bulk, args.otps)
            )
        finally:
            if worker is not None:
                stop(worker)
            stop(mock)
            redis.stop()
    report = {
        "benchmark": "otp_behind_bulk",
        "bulk_recipients": args.bulk,
        "bulk_left_when_done": left,
        "rate_per_second": args.rate,
        "otp_seconds": [round(x, 3) for x in latencies],
        "otp_median_s": round(statistics.median(latencies), 3),
        "otp_max_s": round(max(latencies), 3),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(
        f"\n{args.otps} OTPs behind a {args.bulk:,}-recipient bulk campaign "
        f"({left:,} still to send): median {report['otp_median_s']} s, "
        f"max {report['otp_max_s']} s (target ≈ 1 s)"
    )
    print(f"written to {save('otp', report)}")
    return 0 if report["otp_max_s"] < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
