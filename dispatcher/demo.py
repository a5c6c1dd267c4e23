"""``python -m dispatcher run`` (``make run``): the whole system on one machine.

Starts a private embedded Redis in a temporary folder (so the demo never touches a real
queue), the mock provider server and a worker as real processes, enqueues a campaign of
10,000 recipients for Cloud Aten, shows its progress, prints the outcome, and stops
everything it started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.embedded import shared_server
from dispatcher.model import Campaign, CampaignStatus, Status
from dispatcher.progress import watch
from dispatcher.runtime import connect, run

DEMO_KEY_ENV = "DISPATCHER_DEMO_CLOUDATEN_KEY"
MOCK_KEY = "mock-cloudaten-key"
READY_TIMEOUT_S = 30.0


def start_mock(
    args: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m dispatcher mock --port 0`` and wait for its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "mock", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the server listens (or dies)
    if not line.startswith("mock listening on "):
        proc.kill()
        raise RuntimeError(f"mock server did not start: {line!r}")
    return proc, line.strip().removeprefix("mock listening on ")


def write_config(folder: Path, mock_url: str, prefix: str, rate: float = 2000.0) -> Path:
    path = folder / "dispatcher.toml"
    path.write_text(
        f'prefix = "{prefix}"\n'
        "[worker]\nlease_seconds = 10\ndrain_timeout_seconds = 10\n"
        "[providers.cloudaten]\n"
        f'base_url = "{mock_url}/cloudaten"\n'
        f"rate_per_second = {rate}\nconcurrency = 64\nchunk_size = 100\n"
        "[providers.cloudaten.accounts.default]\n"
        f'api_key_env = "{DEMO_KEY_ENV}"\n'
    )
    return path


def stop(proc: subprocess.Popen[Any], timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


async def _mock_stats(mock_url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{mock_url}/_mock/stats") as resp:
        data: dict[str, Any] = orjson.loads(await resp.read())
        return data


async def _campaign(url: str, config: Path, size: int) -> tuple[CampaignStatus, float]:
    client = Client(settings=load_settings(config), redis=connect(url))
    try:
        numbers = [f"+4479110{i:05d}" for i in range(size)]
        started = time.monotonic()
        answer = await client.enqueue(
            Campaign(
                provider="cloudaten",
                text="Hello from dispatcher: your demo message.",
                recipients=list(numbers),
                name="demo",
            )
        )
        print(f"enqueued campaign {answer.id}: {answer.valid} recipients in {answer.chunks} chunks")
        st = await watch(client, answer.id, limit_s=600)
        return st, time.monotonic() - started
    finally:
        await client.redis.aclose()


def demo(size: int, processes: int) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="dispatcher-demo-") as tmp,
        shared_server(Path(tmp) / "redis") as url,
    ):
        env = {**os.environ, "REDIS_URL": url, DEMO_KEY_ENV: MOCK_KEY}
        mock, mock_url = start_mock(["--latency-ms", "5", "--latency-jitter-ms", "3"], env)
        worker: subprocess.Popen[bytes] | None = None
        try:
            config = write_config(Path(tmp), mock_url, "demo:")
            env["DISPATCHER_CONFIG"] = str(config)
            worker = subprocess.Popen(
                [sys.executable, "-m", "dispatcher", "worker", "--processes", str(processes)],
                env=env,
            )
            print(f"redis {url}, mock {mock_url}, worker pid {worker.pid}")
            st, elapsed = run(_campaign(url, config, size))
            stats = run(_mock_stats(mock_url))["providers"]["cloudaten"]
        finally:
            worker_code = stop(worker) if worker is not None else 0
            stop(mock)
    accepted = st.counts.get(Status.ACCEPTED, 0)
    print(
        f"\n{st.state}: {st.recorded}/{st.total} recipients have a result in {elapsed:.1f}s "
        f"({st.recorded / elapsed:,.0f}/s): "
        + ", ".join(f"{k} {v}" for k, v in sorted(st.counts.items()))
    )
    print(
        f"mock: {stats['accepted']} messages accepted, {stats['uids_repeated']} repeated uid(s); "
        f"worker exit code {worker_code}"
    )
    ok = st.sent and accepted == stats["accepted"] == size and worker_code == 0
    print("demo finished: OK" if ok else "demo finished: MISMATCH")
    return 0 if ok else 1
