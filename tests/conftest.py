"""Shared fixtures: a real private Redis server on a free port, and per-test key prefixes.

Nothing here mocks Redis or HTTP: the server is the same valkey-server binary the embedded
default uses, and tests isolate themselves by key prefix instead of flushing.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.config import Settings, parse_with_codecs
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.runtime import connect, is_cluster_url
from tests.cluster import LocalCluster

if TYPE_CHECKING:
    from dispatcher.chunkrun import ChunkRun
    from dispatcher.meta import CampaignMeta
    from dispatcher.queue import Queue
    from dispatcher.sender import Sender

MOCK_KEY = "mock-cloudaten-key"
#: The mock's default credentials, and the options each provider needs to send.
MOCK_ACCOUNTS: dict[str, dict[str, Any]] = {
    "cloudaten": {"api_key": MOCK_KEY},
    "ycloud": {"api_key": "mock-ycloud-key"},
    "cloudsms": {"api_key": "mock-cloudsms-auth-key", "route_id": "VerifyCode_516"},
    "smsclouds": {"api_key": "mock-smsclouds-token", "route": 87, "country": 1},
}


#: Set to 1 (``make test-cluster``): ``redis_url`` is a local 3-primary Redis Cluster.
CLUSTER_ENV = "DISPATCHER_TEST_CLUSTER"


def cluster_wanted() -> bool:
    return os.environ.get(CLUSTER_ENV) == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: runs against a Redis Cluster too, under make test-cluster"
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One 3-primary cluster for the whole session (only started if a test asks)."""
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """The private server's URL; the session's cluster's with ``DISPATCHER_TEST_CLUSTER=1``.

    Looked up by name so that a run uses one of the two, never starting the other.
    """
    if cluster_wanted():
        cluster: LocalCluster = request.getfixturevalue("local_cluster")
        return cluster.url
    server: RedisProcess = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client of ``redis_url``: a cluster-aware one (``runtime.connect``) for a cluster."""
    client = connect(redis_url) if is_cluster_url(redis_url) else Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}:"


def make_settings(prefix: str, base_url: str = "http://127.0.0.1:9", **provider: Any) -> Settings:
    """Settings for one test: its own key prefix, Cloud Aten at ``base_url``."""
    cloudaten: dict[str, Any] = {
        "base_url": base_url,
        "chunk_size": 10,
        "rate_per_second": 100_000,
        "backoff_seconds": 0.01,
        "accounts": {"default": {"api_key": MOCK_KEY}, "wrong": {"api_key": "not-the-key"}},
    }
    cloudaten.update(provider)
    return parse_with_codecs(
        {
            "prefix": prefix,
            "worker": {"lease_seconds": 2, "block_ms": 100, "drain_timeout_seconds": 5},
            "providers": {"cloudaten": cloudaten},
        }
    )


def all_providers(prefix: str, mock_url: str, **overrides: dict[str, Any]) -> Settings:
    """Settings with every provider pointed at the mock at ``mock_url``."""
    providers: dict[str, Any] = {}
    for name, account in MOCK_ACCOUNTS.items():
        providers[name] = {
            "base_url": f"{mock_url}/{name}",
            "rate_per_second": 100_000,
            "backoff_seconds": 0.01,
            "accounts": {"default": dict(account), "wrong": {**account, "api_key": "wrong"}},
            **overrides.get(name, {}),
        }
    return parse_with_codecs(
        {
            "prefix": prefix,
            "worker": {"lease_seconds": 2, "block_ms": 100, "drain_timeout_seconds": 5},
            "providers": providers,
        }
    )


@pytest.fixture
def settings(prefix: str) -> Settings:
    return make_settings(prefix)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def run_dispatcher(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m dispatcher ARGS`` as a user would run it, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", *args],
        check=False,
        env=env,
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=120,
    )


#: Pacing between two looks at state another process holds and announces to no one.
POLL_S = 0.05


async def eventually(
    probe: Callable[[], Any],
    done: Callable[[Any], bool] = bool,
    *,
    what: str,
    seconds: float = 60.0,
) -> Any:
    """``probe()`` (awaited if it is a coroutine) again and again until ``done`` of its
    answer, which is returned; fails naming ``what`` after ``seconds``. Only for what sends
    no event to wait on: another process's HTTP endpoint or log file."""
    deadline = time.monotonic() + seconds
    while True:
        got = probe()
        if inspect.isawaitable(got):
            got = await got
        if done(got):
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {got!r})"
        await asyncio.sleep(POLL_S)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis server of the test's own, which it may kill, empty and restart."""
    server = RedisProcess(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


def start_server(
    env: dict[str, str], command: str, *args: str, stderr: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``python -m dispatcher [args…] COMMAND --port 0`` (webhooks, api); the process and
    its URL, read from the line it prints once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", *args, command, "--port", "0"],
        env=env,
        cwd=repo_root(),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(f"{command} listening on "), line
    return proc, line.split()[-1]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DISPATCHER_CONFIG")}
    env.update(extra)
    return env


@pytest.fixture
async def mock() -> AsyncIterator[str]:
    """The mock provider server in-process on loopback; its base URL."""
    from dispatcher.mock import MockSettings, start

    runner, port = await start(MockSettings(port=0))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


#: The mock SMSC's account (SMPP passwords are 8 characters at most).
SYSTEM_ID, PASSWORD = "smsclouds", "smpp-pw1"


@dataclass
class Smsc:
    """The in-process mock's SMSC port, and its HTTP controls for stats and messages."""

    url: str  # the mock's HTTP controls
    port: int

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.url + path, json=body) as resp,
        ):
            return orjson.loads(await resp.read())

    async def stats(self) -> dict[str, int]:
        data: dict[str, int] = (await self.call("GET", "/_mock/stats"))["smsc"]
        return data

    async def messages(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self.call("GET", "/_mock/messages?provider=smpp")
        return data


@pytest.fixture
async def smsc() -> AsyncIterator[Smsc]:
    """The mock server with its SMSC in-process on loopback."""
    from aiohttp import web

    from dispatcher.mock import MockSettings, start
    from dispatcher.mock.server import SMSC

    settings = MockSettings(port=0, smpp_port=0, smpp_accounts=((SYSTEM_ID, PASSWORD),))
    runner, port = await start(settings)
    app: web.Application = runner.app
    yield Smsc(f"http://127.0.0.1:{port}", app[SMSC].port)
    await runner.cleanup()


class RunningWorker:
    """A worker running as a task of the test's loop, stopped and awaited on exit."""

    def __init__(self, redis: Redis, settings: Settings, poll: bool = False) -> None:
        from dispatcher.worker import Worker

        self.worker = Worker(redis, settings, poll=poll)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Any:
        self.task = asyncio.create_task(self.worker.run())
        return self.worker

    async def __aexit__(self, *exc: object) -> None:
        self.worker.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 30)


@dataclass
class ClaimedChunk:
    """A campaign's first chunk as a worker holds it right before sending: read, claimed
    (owner token ``t``) and loaded, with its run on the account's sender (close it)."""

    cid: str
    queue: Queue
    sender: Sender
    run: ChunkRun
    meta: CampaignMeta


async def claimed_chunk(redis: Redis, settings: Settings, numbers: list[str]) -> ClaimedChunk:
    """Enqueue ``numbers`` to Cloud Aten and take the first chunk as a worker does."""
    from dispatcher.chunkrun import ChunkRun
    from dispatcher.client import Client
    from dispatcher.fencing import Claim, Fence, Permits
    from dispatcher.keys import Keys
    from dispatcher.model import Campaign
    from dispatcher.queue import Queue
    from dispatcher.sender import Sender

    keys = Keys(settings.prefix)
    answer = await Client(settings=settings, redis=redis).enqueue(
        Campaign("cloudaten", "hi", numbers)
    )
    queue = Queue(redis, keys, "w", [keys.at(0).queue("cloudaten")])
    await queue.setup()
    lease = (await queue.read(1, 1000))[0]
    assert await Fence(redis, keys).claim(lease.campaign_id, lease.entry_id, "t") is Claim.OK
    data = await queue.load(lease)
    assert data is not None
    sender = Sender(redis, settings)
    account = sender.account("cloudaten", "default")
    run = ChunkRun(lease, account, data.recipients, account.codec, permits=Permits("t"))
    return ClaimedChunk(answer.id, queue, sender, run, data.meta)
