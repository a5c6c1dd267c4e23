"""Errors as one line and the exit codes that go with them, for the real ``python -m
dispatcher`` processes: Redis unreachable or misnamed, a reader that goes away, Ctrl-C;
``status --watch`` between sent and done."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.model import Campaign
from dispatcher.runtime import checked_url, redact_url
from tests.conftest import RunningWorker, make_settings, repo_root, subprocess_env

NUMBERS = [f"+4479110{i:05d}" for i in range(3)]


def env_for(tmp: Path, redis_url: str, prefix: str) -> dict[str, str]:
    config = tmp / "c.toml"
    config.write_text(
        f'prefix = "{prefix}"\n[providers.cloudaten]\nbase_url = "http://127.0.0.1:9"\n'
        '[providers.cloudaten.accounts.default]\napi_key = "k"\n'
    )
    return subprocess_env(REDIS_URL=redis_url, DISPATCHER_CONFIG=str(config))


def dispatcher(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dispatcher", *args],
        env=env, cwd=repo_root(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def started(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dispatcher", *args],
        env=env, cwd=repo_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def read_line(stream: IO[str] | None) -> str:
    assert stream is not None
    return stream.readline()


def test_urls_are_printed_without_their_password() -> None:
    assert redact_url("redis://:s3cret@db.example:6380/2") == "redis://db.example:6380/2"
    assert redact_url("rediss://app:s3cret@db.example/0") == "rediss://app@db.example/0"
    assert redact_url("redis://db.example:6379/0?password=s3cret") == "redis://db.example:6379/0"
    assert redact_url("redis://[::1]:6379/0") == "redis://[::1]:6379/0"
    assert checked_url("unix:///run/redis.sock") == "unix:///run/redis.sock"


@pytest.mark.parametrize(
    "url",
    ["redis://:s3cret@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0?password=s3cret"],
)
@pytest.mark.parametrize("command", [["status", "x"], ["campaigns"], ["pause", "x"]])
def test_unreachable_redis_is_one_line_and_exit_1(
    tmp_path: Path, prefix: str, url: str, command: list[str]
) -> None:
    port = free_port()  # nothing listens there
    done = dispatcher(env_for(tmp_path, url.format(port=port), prefix), *command)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: cannot reach Redis at redis://127.0.0.1:{port}/0 (connection refused); "
        "set REDIS_URL\n"
    )
    assert done.stdout == ""


@pytest.mark.parametrize("url", ["localhost:6379", "app:s3cret@localhost:6379", "http://x/0"])
def test_redis_url_without_a_scheme_is_one_line_naming_it(
    tmp_path: Path, prefix: str, url: str
) -> None:
    done = dispatcher(env_for(tmp_path, url, prefix), "status", "x")
    assert done.returncode == 2
    assert done.stderr == (
        "error: REDIS_URL must start with redis://, rediss:// or unix:// "
        "(for example redis://localhost:6379/0)\n"
    )
    assert "s3cret" not in done.stderr


def enqueue(env: dict[str, str], tmp: Path, n: int) -> str:
    numbers = tmp / "n.txt"
    numbers.write_text("".join(f"+4479110{i:05d}\n" for i in range(n)))
    args = ("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", str(numbers))
    done = dispatcher(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("form", [[], ["--csv"]])
async def test_a_reader_that_goes_away_ends_it_quietly(
    tmp_path: Path, redis_url: str, prefix: str, form: list[str]
) -> None:
    env = env_for(tmp_path, redis_url, prefix)
    cid = enqueue(env, tmp_path, 3000)  # far more output than a pipe holds
    proc = started(env, "results", cid, *form)  # like `dispatcher results ID | head -1`
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(60) == 141
    assert proc.stderr.read() == ""


async def test_ctrl_c_in_status_watch_exits_130_quietly(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    env = env_for(tmp_path, redis_url, prefix)
    cid = enqueue(env, tmp_path, 2)  # no worker: it waits for ever
    proc = started(env, "status", cid, "--watch")
    first = read_line(proc.stderr)
    assert first.startswith(f"{cid}: 0/2 sent")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert proc.communicate() == ("", "")


@pytest.fixture
async def sent(redis: Redis, prefix: str, mock: str) -> AsyncIterator[str]:
    """A campaign whose every recipient was sent (accepted) and has no report yet."""
    settings = make_settings(prefix, f"{mock}/cloudaten")
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", NUMBERS))
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.sent and not st.done
    yield answer.id


async def test_watch_says_it_waits_for_reports_and_stops_as_asked(
    tmp_path: Path, redis_url: str, prefix: str, sent: str
) -> None:
    env = env_for(tmp_path, redis_url, prefix)
    until_sent = dispatcher(env, "status", sent, "--watch", "--until", "sent")
    assert until_sent.returncode == 0, until_sent.stderr
    assert until_sent.stderr == f"{sent}: 3/3 sent, 0 final (accepted 3)\n"
    assert "state: sent" in until_sent.stdout and "open 3" in until_sent.stdout
    # The default waits for done: it says so once, then keeps waiting (here for ever).
    proc = started(env, "status", sent, "--watch")
    assert read_line(proc.stderr).startswith(f"{sent}: 3/3 sent, 0 final")
    assert read_line(proc.stderr) == "sent; waiting for 3 delivery reports\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert proc.communicate() == ("", "")


async def test_redis_lost_during_a_command_is_one_line(tmp_path: Path, prefix: str) -> None:
    server = RedisProcess(tmp_path / "redis", free_port())
    server.start()
    try:
        env = env_for(tmp_path, server.url, prefix)
        cid = enqueue(env, tmp_path, 2)
        proc = started(env, "status", cid, "--watch")
        assert read_line(proc.stderr).startswith(f"{cid}: 0/2 sent")
    finally:
        server.stop()
    assert proc.wait(120) == 1
    _out, err = proc.communicate()
    assert err == (
        f"error: cannot reach Redis at {server.url} (connection refused); set REDIS_URL\n"
    )
