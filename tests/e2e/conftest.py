"""Whole-system fixtures: the mock server and workers as real processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.demo import DEMO_KEY_ENV, start_mock, stop
from dispatcher.keys import GROUP, Keys, partitions_for
from dispatcher.runtime import is_cluster_url
from tests.conftest import (
    MOCK_ACCOUNTS,
    MOCK_KEY,
    repo_root,
    run_dispatcher,
    start_server,
    subprocess_env,
)

SECRET = "e2e-webhook-secret-0123456789"
API_TOKEN = "e2e-api-token-0123456789abcdef"
LIST_INTERVAL_S = 0.25


def toml(value: Any) -> str:
    return (
        f'"{value}"'
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


class System:
    """A mock process plus the environment and config that point workers at it."""

    def __init__(self, tmp: Path, redis_url: str, prefix: str, mock_url: str) -> None:
        self.mock_url = mock_url
        self.config = tmp / "dispatcher.toml"
        self.env = subprocess_env(
            REDIS_URL=redis_url, DISPATCHER_WEBHOOK_SECRET=SECRET, **{DEMO_KEY_ENV: MOCK_KEY}
        )
        self.env["DISPATCHER_CONFIG"] = str(self.config)
        self.env["DISPATCHER_API_TOKENS"] = f"e2e={API_TOKEN}"
        self.prefix = prefix
        self.workers: list[subprocess.Popen[Any]] = []

    @property
    def keys(self) -> Keys:
        """The keys the system's processes use: with partitions on a cluster (keys.py)."""
        cluster = is_cluster_url(self.env["REDIS_URL"])
        return Keys(self.prefix, partitions_for(0, cluster))

    async def pending(self, redis: Redis, provider: str) -> int:
        """Entries leased and not settled in the provider's default lane, every partition."""
        total = 0
        for part in self.keys.parts:
            total += int((await redis.xpending(part.queue(provider), GROUP))["pending"])
        return total

    def write_config(
        self, webhooks: dict[str, Any] | None = None, **providers: dict[str, Any]
    ) -> None:
        """Every provider at the mock; ``providers`` override settings per provider."""
        lines = [
            f'prefix = "{self.prefix}"',
            "[worker]",
            "lease_seconds = 2",
            "drain_timeout_seconds = 10",
            "block_ms = 200",
            "chunks_in_flight = 4",
            "[webhooks]",
            *(f"{k} = {toml(v)}" for k, v in (webhooks or {}).items()),
        ]
        for name, account in MOCK_ACCOUNTS.items():
            values = {
                "base_url": f"{self.mock_url}/{name}",
                "chunk_size": 100,
                "rate_per_second": 100000,
                "concurrency": 32,
                # The mock allows a list call every LIST_INTERVAL_S here, not every minute:
                # takeovers that ask the list API then wait a fraction of a second.
                "poll_interval_seconds": LIST_INTERVAL_S + 0.1,
                **providers.get(name, {}),
            }
            lines += [f"[providers.{name}]", *(f"{k} = {toml(v)}" for k, v in values.items())]
            default = dict(account)
            if name == "cloudaten":  # one account reads its key from the environment
                del default["api_key"]
                default["api_key_env"] = DEMO_KEY_ENV
            lines += [f"[providers.{name}.accounts.default]"]
            lines += [f"{k} = {toml(v)}" for k, v in default.items()]
            lines += [f"[providers.{name}.accounts.wrong]"]
            lines += [f"{k} = {toml(v)}" for k, v in {**account, "api_key": "wrong-key"}.items()]
        self.config.write_text("\n".join(lines) + "\n")

    def webhooks(self) -> str:
        """Start ``python -m dispatcher webhooks --port 0``; its URL once it listens."""
        return self._server("webhooks")

    def api(self) -> str:
        """Start ``python -m dispatcher api --port 0``; its URL once it listens."""
        return self._server("api")

    def _server(self, command: str) -> str:
        proc, url = start_server(self.env, command)
        self.workers.append(proc)
        return url

    async def mock_settings(self, **values: Any) -> None:
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{self.mock_url}/_mock/settings", json=values) as r,
        ):
            assert r.status == 200, await r.text()

    async def mock_get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.mock_url + path) as r:
            return orjson.loads(await r.read())

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "worker", *args],
            env=self.env,
            cwd=repo_root(),
        )
        self.workers.append(proc)
        return proc

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = run_dispatcher(self.env, *args)
        if check and done.returncode != 0:
            raise AssertionError(f"{args}: exit {done.returncode}\n{done.stderr}")
        return done


@pytest.fixture
def mock_args() -> list[str]:
    """Extra arguments for the mock process; a test module may override this fixture."""
    return []


@pytest.fixture
def system(tmp_path: Path, redis_url: str, prefix: str, mock_args: list[str]) -> Iterator[System]:
    args = ["--latency-ms", "2", "--list-interval", str(LIST_INTERVAL_S), *mock_args]
    mock, mock_url = start_mock(args, subprocess_env())
    s = System(tmp_path, redis_url, prefix, mock_url)
    s.write_config()
    try:
        yield s
    finally:
        for w in s.workers:
            stop(w)
        stop(mock)
