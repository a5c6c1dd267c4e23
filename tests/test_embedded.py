"""The embedded default: a private valkey-server with AOF, shared and stopped by the last user."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from redis import Redis

from dispatcher.embedded import shared_server
from tests.conftest import run_dispatcher, subprocess_env


def pid_of(data: Path) -> int:
    return int(orjson.loads((data / "server.json").read_bytes())["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it no longer serves anything.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_shared_then_stopped_by_the_last_user_and_data_survives(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with shared_server(data) as url:
        pid = pid_of(data)
        with shared_server(data) as again:
            assert again == url  # the second user shares the running server
            Redis.from_url(url).set("k", "v")
        assert alive(pid)  # the first user is still here
    assert not alive(pid)
    assert not (data / "server.json").exists()
    assert (data / "appendonlydir").is_dir()
    with shared_server(data) as url:
        assert Redis.from_url(url).get("k") == b"v"  # replayed from the AOF


def test_a_command_without_redis_url_starts_and_stops_its_own(tmp_path: Path) -> None:
    """`python -m dispatcher status` with REDIS_URL unset uses, then stops, the embedded server."""
    env = subprocess_env(DISPATCHER_DATA_DIR=str(tmp_path / "d"))
    done = run_dispatcher(env, "status", "nope")
    assert done.returncode == 1
    assert "no campaign 'nope'" in done.stderr
    assert not (tmp_path / "d" / "server.json").exists()
    assert (tmp_path / "d" / "appendonlydir").is_dir()
