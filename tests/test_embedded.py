"""The embedded default: a private valkey-server with AOF, shared and stopped by the last user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from redis import Redis

from dispatcher.embedded import data_dir_from_env, shared_server
from tests.conftest import repo_root, run_dispatcher, subprocess_env


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


def test_the_data_folder_is_per_user_not_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DISPATCHER_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir_from_env() == tmp_path / "home" / ".local" / "share" / "dispatcher"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir_from_env() == tmp_path / "xdg" / "dispatcher"
    monkeypatch.setenv("XDG_DATA_HOME", "relative")  # the XDG spec says: ignore it
    assert data_dir_from_env() == tmp_path / "home" / ".local" / "share" / "dispatcher"
    monkeypatch.setenv("DISPATCHER_DATA_DIR", "here")  # still honoured; made absolute
    assert data_dir_from_env() == tmp_path / "here"


def in_folder(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", *args],
        env=env, cwd=folder, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_every_command_finds_the_same_embedded_server_wherever_it_runs(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[providers.cloudaten]\nbase_url = "http://127.0.0.1:9"\n'
        '[providers.cloudaten.accounts.default]\napi_key = "k"\n'
    )
    numbers = tmp_path / "n.txt"
    numbers.write_text("+447901614024\n")
    env = subprocess_env(DISPATCHER_CONFIG=str(config))
    env.pop("DISPATCHER_DATA_DIR", None)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    data = tmp_path / "xdg" / "dispatcher"
    args = ("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", str(numbers))
    enqueued = in_folder(tmp_path / "a", env, "-v", *args)
    assert enqueued.returncode == 0, enqueued.stderr
    cid = enqueued.stdout.strip()
    lines = enqueued.stderr.splitlines()
    assert lines[0] == f"config: {config} (DISPATCHER_CONFIG)"
    assert lines[1].startswith("redis: redis://127.0.0.1:")
    assert lines[1].endswith(f"/0 (embedded valkey-server, data in {data})")
    assert not (data / "server.json").exists()  # the last one out stopped it
    status = in_folder(tmp_path / "b", env, "status", cid, "--json", "-v")
    assert status.returncode == 0, status.stderr
    assert orjson.loads(status.stdout)["total"] == 1
    assert f"data in {data})" in status.stderr
    assert not (tmp_path / "a" / ".dispatcher").exists()
    assert not (tmp_path / "b" / ".dispatcher").exists()


def test_an_old_data_folder_in_the_current_directory_is_pointed_out(tmp_path: Path) -> None:
    old = tmp_path / "work" / ".dispatcher"
    (old / "appendonlydir").mkdir(parents=True)
    env = subprocess_env(XDG_DATA_HOME=str(tmp_path / "xdg"))
    env.pop("DISPATCHER_DATA_DIR", None)
    config = str(repo_root() / "config" / "dispatcher.toml")
    done = in_folder(tmp_path / "work", env, "--config", config, "status", "nope")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"warning: {old} holds an older embedded Redis; this command uses "
        f"{tmp_path / 'xdg' / 'dispatcher'} (set DISPATCHER_DATA_DIR={old} to use the old one)",
        "error: no campaign 'nope'",
    ]
