"""Metrics and health with real processes: a worker's /metrics after a campaign, its
/readyz and ``worker --check`` following Redis down and up, supervised workers' ports.

Every wait is on an event (a log line, an HTTP answer polled with a deadline, a process
exit), bounded, so a failing test fails instead of hanging.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import stop
from dispatcher.embedded import RedisProcess
from tests.conftest import eventually, run_dispatcher, subprocess_env
from tests.e2e.conftest import System
from tests.e2e.test_supervisor import Running

WAIT_S = 60.0
LISTENING = re.compile(r"metrics and health on (http://\S+) ")


class Start(Protocol):
    def __call__(self, system: System, *args: str) -> Running: ...


@pytest.fixture
def start() -> Iterator[Start]:
    """Start worker processes; each is stopped (SIGTERM, then waited for) at the end."""
    running: list[Running] = []

    def starter(system: System, *args: str) -> Running:
        w = Running(system, *args)
        running.append(w)
        return w

    yield starter
    for w in running:
        stop(w.proc)


async def get(url: str) -> tuple[int, bytes]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url) as r:
        return r.status, await r.read()


async def until(url: str, status: int) -> bytes:
    """Ask ``url`` until it answers ``status``; its body."""
    got = await eventually(lambda: get(url), lambda g: g[0] == status, what=f"{url} → {status}")
    return bytes(got[1])


def recipients(text: bytes, provider: str) -> dict[str, int]:
    """``dispatcher_recipients_total`` of ``provider`` from a scrape, by status."""
    return {
        s.labels["status"]: int(s.value)
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
        if s.name == "dispatcher_recipients_total" and s.labels["provider"] == provider
    }


def numbers_file(tmp: Path, numbers: list[str]) -> Path:
    path = tmp / "numbers.txt"
    path.write_text("".join(f"{n}\n" for n in numbers))
    return path


async def test_worker_metrics_show_the_campaigns_counts(
    system: System, redis: Redis, tmp_path: Path, start: Start
) -> None:
    await system.mock_settings(unpriced_regions=["JP"])  # the mock rejects these numbers
    worker = start(system, "--metrics-port", "0")
    url = worker.err.expect(LISTENING)[1]
    assert (await get(f"{url}/healthz")) == (200, b'{"status": "ok"}')
    await until(f"{url}/readyz", 200)  # the worker made its consumer groups
    numbers = [f"+4479112{i:05d}" for i in range(300)] + [f"+8131234{i:04d}" for i in range(20)]
    done = system.cli(
        "enqueue", "--provider", "cloudaten", "--text", "metrics", "--json",
        "--recipients", str(numbers_file(tmp_path, numbers)),
    )  # fmt: skip
    cid = orjson.loads(done.stdout)["id"]
    client = Client(settings=load_settings(system.config), redis=redis)
    st = await client.wait(cid, WAIT_S)
    assert st.sent and st.counts == {"accepted": 300, "rejected": 20}
    # The worker counts right after Redis has the results: poll briefly for the two to meet.
    await eventually(
        lambda: get(f"{url}/metrics"),
        lambda g: recipients(g[1], "cloudaten") == st.counts,
        what="the worker's counts",
    )
    text = (await get(f"{url}/metrics"))[1].decode()
    # One request a recipient at Cloud Aten, each answered and timed.
    assert re.search(
        r'^dispatcher_provider_request_duration_seconds_count\{account="default",'
        r'provider="cloudaten"\} 320\.0$', text, re.M,
    ), text  # fmt: skip


async def test_worker_check_and_readyz_follow_redis(
    tmp_path: Path, own_redis: RedisProcess, prefix: str, start: Start
) -> None:
    system = System(tmp_path, own_redis.url, prefix, "http://127.0.0.1:9")
    system.write_config()
    first = system.cli("worker", "--check", check=False)
    assert first.returncode == 1  # Redis answers, but no worker has made its groups yet
    assert first.stderr.startswith("error: consumer group workers missing on ")
    assert len(first.stderr.splitlines()) == 1, first.stderr
    worker = start(system, "--metrics-port", "0", "--no-poll")
    url = worker.err.expect(LISTENING)[1]
    await until(f"{url}/readyz", 200)
    up = system.cli("worker", "--check", check=False)
    assert (up.returncode, up.stderr) == (0, "")
    assert up.stdout.startswith(f"ok: Redis at {own_redis.url} answers; group workers on 12 ")
    own_redis.stop()
    down = system.cli("worker", "--check", check=False)
    assert (down.returncode, down.stderr) == (
        1, f"error: cannot reach Redis at {own_redis.url} (connection refused); set REDIS_URL\n"
    )  # fmt: skip
    body: Any = orjson.loads(await until(f"{url}/readyz", 503))
    assert body["ready"] is False and body["redis"] != "ok"
    own_redis.start()  # same port, same AOF: the groups are back
    await until(f"{url}/readyz", 200)
    assert system.cli("worker", "--check", check=False).returncode == 0


def test_worker_check_never_starts_the_embedded_redis(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = subprocess_env(DISPATCHER_DATA_DIR=str(data))
    config = tmp_path / "none.toml"
    config.write_text('prefix = "x:"\n')
    env["DISPATCHER_CONFIG"] = str(config)
    done = run_dispatcher(env, "worker", "--check")
    assert done.returncode == 1
    assert done.stderr == (
        f"error: cannot reach Redis: no embedded server is running in {data} (REDIS_URL "
        "unset); start the worker first, or set REDIS_URL\n"
    )
    assert not (data / "server.json").exists()


async def test_supervised_workers_each_serve_metrics(system: System, start: Start) -> None:
    supervisor = start(system, "--processes", "2", "--metrics-port", "0")
    urls = {supervisor.err.expect(LISTENING)[1], supervisor.err.expect(LISTENING)[1]}
    assert len(urls) == 2  # a port each
    for url in urls:
        await until(f"{url}/readyz", 200)
        status, text = await get(f"{url}/metrics")
        assert status == 200 and b"dispatcher_worker_chunks_in_flight 0.0" in text
