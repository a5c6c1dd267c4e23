"""Dispatcher throughput against the bare-client ceiling, per provider, side by side in one run.

For each provider (Cloud Aten, YCloud, CloudSMS, Smsclouds, and Smsclouds over SMPP):

1. ceiling: a bare aiohttp client (uvloop, no queue, no Redis) sends the very requests our
   codec builds for N recipients to the mock, with the same concurrency; for SMPP, a bare
   SMPP client (smpp_client.py) sends the codec's ``submit_sm`` PDUs to the mock SMSC with
   the same window;
2. dispatcher: N recipients are enqueued and one worker process sends them to the same mock.

Both use one client process against the same mock process, so each ratio measures the cost
of the queue, the rate limiter and the result recording, not the machine. Prints recipients
per second and the ratios, and writes them as JSON under benchmarks/results/.

    python -m benchmarks.bench_send [--recipients 100000] [--concurrency 64] [--provider …]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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

from benchmarks.report import save
from benchmarks.smpp_client import ceiling as smpp_ceiling
from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import start_mock, stop
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.model import Campaign
from dispatcher.providers import CODECS
from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob, Verdict
from dispatcher.runtime import connect

TEXT = "Benchmark message from dispatcher."
TIME_LIMIT_S = 600.0  # each phase gives up after this long
FIRST_NUMBER = {
    "cloudaten": 447911000000,
    "ycloud": 447911000000,
    "cloudsms": 85261000000,
    "smsclouds": 524498000000,
    "smpp": 525512000000,
}
#: The Smsclouds account that sends over SMPP to the mock's SMSC (``smpp`` in the table).
SMPP_ACCOUNT = {"system_id": "smsclouds", "api_key": "smpppass", "sender_id": "MASMSJ"}
SMPP_WINDOW = 10
ACCOUNTS: dict[str, dict[str, Any]] = {
    "cloudaten": {"api_key": "mock-cloudaten-key"},
    "ycloud": {"api_key": "mock-ycloud-key"},
    "cloudsms": {"api_key": "mock-cloudsms-auth-key", "route_id": "VerifyCode_516"},
    "smsclouds": {"api_key": "mock-smsclouds-token", "route": 77, "country": 1},
}


def numbers(provider: str, n: int) -> list[str]:
    first = FIRST_NUMBER[provider]
    return [f"+{first + i}" for i in range(n)]


def toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def write_config(path: Path, mock_url: str, concurrency: int, smpp_port: int) -> None:
    lines = ['prefix = "bench:"', "[worker]", "chunks_in_flight = 8"]
    for name, account in ACCOUNTS.items():
        lines += [
            f"[providers.{name}]",
            f'base_url = "{mock_url}/{name}"',
            "rate_per_second = 1000000",
            f"concurrency = {concurrency}",
            f"[providers.{name}.accounts.default]",
            *(f"{k} = {toml_value(v)}" for k, v in account.items()),
        ]
    lines += [
        "[providers.smsclouds.accounts.smpp]",
        'transport = "smpp"',
        'smpp_host = "127.0.0.1"',
        f"smpp_port = {smpp_port}",
        f"window = {SMPP_WINDOW}",
        *(f"{k} = {toml_value(v)}" for k, v in SMPP_ACCOUNT.items()),
    ]
    path.write_text("\n".join(lines) + "\n")


async def ceiling(mock_url: str, provider: str, n: int, concurrency: int) -> float:
    """Recipients per second of a bare aiohttp client sending what the codec builds."""
    codec = CODECS[provider]
    account = ACCOUNTS[provider]
    options = {k: v for k, v in account.items() if k != "api_key"}
    serials = itertools.cycle(range(1, 65536))
    ctx = BuildContext(account["api_key"], lambda: next(serials), time.time())
    size = codec.max_chunk or n
    requests = []
    for start in range(0, n, size):
        members = [
            ChunkRecipient(start + i, number)
            for i, number in enumerate(numbers(provider, n)[start : start + size])
        ]
        job = SendJob("bare", start // size, TEXT, options=options)
        requests += codec.build(job, members, ctx).requests
    base = f"{mock_url}/{provider}"
    pending = iter(requests)
    deadline = time.monotonic() + TIME_LIMIT_S

    async def sender(session: aiohttp.ClientSession) -> None:
        for request in pending:
            if time.monotonic() > deadline:
                return
            async with session.request(request.method, base + request.path, data=request.body) as r:
                outcomes = codec.parse(request, r.status, await r.read())
                assert all(o.verdict is Verdict.OK for o in outcomes), outcomes[0]

    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = codec.headers(account["api_key"])
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        started = time.monotonic()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return n / elapsed


async def mock_call(mock_url: str, method: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, mock_url + path) as resp:
        return orjson.loads(await resp.read())


async def through_dispatcher(
    redis_url: str, config: Path, provider: str, n: int
) -> tuple[float, float]:
    """(enqueue seconds, recipients per second from the enqueue's commit to the last result)."""
    client = Client(settings=load_settings(config), redis=connect(redis_url))
    if provider == "smpp":
        campaign = Campaign("smsclouds", TEXT, numbers(provider, n), account="smpp")
    else:
        campaign = Campaign(provider, TEXT, numbers(provider, n))
    try:
        t0 = time.monotonic()
        answer = await client.enqueue(campaign)
        t1 = time.monotonic()
        st = await client.wait(answer.id, TIME_LIMIT_S)
        t2 = time.monotonic()
        if not st.sent or st.counts.get("accepted") != n:
            raise SystemExit(f"{provider}: dispatcher run incomplete: {st.as_dict()}")
        return t1 - t0, n / (t2 - t1)
    finally:
        await client.redis.aclose()


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    """Start a worker and wait for its 'ready' log line, so start-up is not measured."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "worker"], env=env, stderr=subprocess.PIPE, text=True
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


def bare_client(provider: str, n: int, conc: int, mock_url: str, smpp_port: int) -> float:
    if provider != "smpp":
        return uvloop.run(ceiling(mock_url, provider, n, conc))
    return uvloop.run(
        smpp_ceiling(
            "127.0.0.1", smpp_port, SMPP_ACCOUNT["system_id"], SMPP_ACCOUNT["api_key"],
            numbers(provider, n), text=TEXT, window=SMPP_WINDOW,
            sender_id=SMPP_ACCOUNT["sender_id"],
        )
    )  # fmt: skip


def mock_stats(mock_url: str, provider: str) -> dict[str, int]:
    """accepted, mobiles_repeated and largest_batch, from the provider's or the SMSC's."""
    stats = uvloop.run(mock_call(mock_url, "GET", "/_mock/stats"))
    if provider != "smpp":
        got: dict[str, int] = stats["providers"][provider]
        return got
    smsc = stats["smsc"]
    return {"accepted": smsc["messages"], "mobiles_repeated": smsc["duplicates"],
            "largest_batch": 1}  # fmt: skip


def measure(
    provider: str, n: int, conc: int, *, mock_url: str, redis_url: str, config: Path,
    smpp_port: int,
) -> dict[str, Any]:  # fmt: skip
    print(f"{provider}: bare client …", flush=True)
    bare = bare_client(provider, n, conc, mock_url, smpp_port)
    uvloop.run(mock_call(mock_url, "POST", "/_mock/reset"))
    print(f"{provider}: dispatcher …", flush=True)
    enqueue_s, rate = uvloop.run(through_dispatcher(redis_url, config, provider, n))
    stats = mock_stats(mock_url, provider)
    uvloop.run(mock_call(mock_url, "POST", "/_mock/reset"))
    return {
        "bare_client_rps": round(bare, 1),
        "dispatcher_rps": round(rate, 1),
        "ratio": round(rate / bare, 3),
        "enqueue_seconds": round(enqueue_s, 2),
        "mock_accepted": stats["accepted"],
        "mock_repeated": stats["mobiles_repeated"],
        "largest_batch": stats["largest_batch"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--provider", action="append", choices=sorted(FIRST_NUMBER))
    args = p.parse_args()
    n, conc = args.recipients, args.concurrency
    providers = args.provider or list(FIRST_NUMBER)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dispatcher-bench-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis", free_port())
        redis.start()
        smpp = ["--smpp-port", "0", "--smpp-account",
                f"{SMPP_ACCOUNT['system_id']}:{SMPP_ACCOUNT['api_key']}"]  # fmt: skip
        mock, mock_url = start_mock(smpp)
        worker: subprocess.Popen[str] | None = None
        try:
            assert mock.stdout is not None
            smpp_port = int(mock.stdout.readline().strip().rsplit(":", 1)[1])
            config = Path(tmp) / "bench.toml"
            write_config(config, mock_url, conc, smpp_port)
            env = {**os.environ, "REDIS_URL": redis.url, "DISPATCHER_CONFIG": str(config)}
            worker = start_worker(env)
            for provider in providers:
                report[provider] = measure(
                    provider, n, conc, mock_url=mock_url, redis_url=redis.url, config=config,
                    smpp_port=smpp_port,
                )  # fmt: skip
        finally:
            if worker is not None:
                stop(worker)
            stop(mock)
            redis.stop()
    print(f"\n{n:,} recipients per provider, concurrency {conc}, one client process each")
    print(f"{'provider':<11}{'bare client/s':>15}{'dispatcher/s':>15}{'ratio':>8}{'repeats':>9}")
    ok = True
    for provider, r in report.items():
        print(
            f"{provider:<11}{r['bare_client_rps']:>15,.0f}{r['dispatcher_rps']:>15,.0f}"
            f"{r['ratio']:>8.2f}{r['mock_repeated']:>9}"
        )
        ok = ok and r["mock_accepted"] == n and r["mock_repeated"] == 0
    summary = {
        "benchmark": "send",
        "recipients": n,
        "concurrency": conc,
        "providers": report,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"written to {save('send', summary)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
