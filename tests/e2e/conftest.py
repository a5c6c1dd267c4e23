"""Whole-system fixtures: the mock server and workers as real processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.demo import DEMO_KEY_ENV, start_mock, stop
from tests.conftest import MOCK_KEY, repo_root, run_dispatcher, subprocess_env


class System:
    """A mock process plus the environment and config that point workers at it."""

    def __init__(self, tmp: Path, redis_url: str, prefix: str, mock_url: str) -> None:
        self.mock_url = mock_url
        self.config = tmp / "dispatcher.toml"
        self.env = subprocess_env(REDIS_URL=redis_url, **{DEMO_KEY_ENV: MOCK_KEY})
        self.env["DISPATCHER_CONFIG"] = str(self.config)
        self.prefix = prefix
        self.workers: list[subprocess.Popen[bytes]] = []

    def write_config(self, **cloudaten: Any) -> None:
        values = {
            "base_url": f'"{self.mock_url}/cloudaten"',
            "chunk_size": 100,
            "rate_per_second": 100000,
            "concurrency": 32,
        }
        values.update({k: (f'"{v}"' if isinstance(v, str) else v) for k, v in cloudaten.items()})
        lines = [
            f'prefix = "{self.prefix}"',
            "[worker]",
            "lease_seconds = 2",
            "drain_timeout_seconds = 10",
            "block_ms = 200",
            "chunks_in_flight = 4",
            "[providers.cloudaten]",
            *(f"{k} = {v}" for k, v in values.items()),
            "[providers.cloudaten.accounts.default]",
            f'api_key_env = "{DEMO_KEY_ENV}"',
            "[providers.cloudaten.accounts.wrong]",
            'api_key_env = "E2E_WRONG_KEY"',
        ]
        self.config.write_text("\n".join(lines) + "\n")

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "worker", *args],
            env={**self.env, "E2E_WRONG_KEY": "wrong-key"},
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
def system(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[System]:
    mock, mock_url = start_mock(["--latency-ms", "2"], subprocess_env())
    s = System(tmp_path, redis_url, prefix, mock_url)
    s.write_config()
    try:
        yield s
    finally:
        for w in s.workers:
            stop(w)
        stop(mock)
