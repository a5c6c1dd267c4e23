"""``worker`` and its supervisor with real processes: SIGHUP drains like SIGTERM, a dead child
is restarted, and children that keep dying make the supervisor give up with status 1.

Every wait is on an event (a line on stderr, a process exit, Redis state) and bounded by
``WAIT_S``, so a failing test fails instead of hanging.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import stop
from dispatcher.supervisor import DEATH_WINDOW_S, MAX_DEATHS
from tests.conftest import repo_root
from tests.e2e.conftest import System
from tests.e2e.test_cloudaten import enqueue, mock_stats, wait_for_chunks

WAIT_S = 60.0
STARTED = re.compile(r"worker process (\d+) started \(pid (\d+)\)")
GIVING_UP = re.compile(
    rf"giving up: (\d+) worker process deaths within {DEATH_WINDOW_S:g} s "
    rf"\(more than {MAX_DEATHS}\)"
)


class Lines:
    """A process's stderr, read line by line on a thread, for tests to wait on."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.cursor = 0  # where the next expect() starts looking
        self.closed = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def expect(self, pattern: str | re.Pattern[str], start: int | None = None) -> re.Match[str]:
        """The first line from ``start`` (default: after the last match) that matches; waits
        for it up to ``WAIT_S``. Moves the cursor past it."""
        i = self.cursor if start is None else start
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while True:
                while i < len(self.lines):
                    found = re.search(pattern, self.lines[i])
                    i += 1
                    if found:
                        self.cursor = max(self.cursor, i)
                        return found
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    tail = "\n".join(self.lines[-40:])
                    raise AssertionError(f"no line matching {pattern!r}; stderr ends:\n{tail}")
                self._changed.wait(left)


class Running:
    """``python -m dispatcher worker ARGS`` started by the test, with its stderr."""

    def __init__(self, system: System, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "worker", *args],
            env=system.env,
            cwd=repo_root(),
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        self.err = Lines(self.proc.stderr)
        self.children: set[int] = set()  # every child pid seen in a "started" line

    def started(self) -> tuple[int, int]:
        """Wait for the next "worker process N started (pid P)" line: (N, P)."""
        found = self.err.expect(STARTED)
        number, pid = int(found[1]), int(found[2])
        self.children.add(pid)
        return number, pid

    def exit_code(self) -> int:
        return self.proc.wait(WAIT_S)


class Start(Protocol):
    def __call__(self, *args: str) -> Running: ...


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def ours(pid: int, system: System) -> bool:
    """``pid`` is still one of this test's processes (its environment names our config)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"DISPATCHER_CONFIG={system.config}".encode() in environ.split(b"\0")


@pytest.fixture
def start(system: System) -> Iterator[Start]:
    """Start workers; stop each at the end, and kill any child its supervisor left behind."""
    running: list[Running] = []

    def starter(*args: str) -> Running:
        w = Running(system, *args)
        running.append(w)
        return w

    yield starter
    for w in running:
        stop(w.proc)
        print(f"--- stderr of {w.proc.args!r}:", *w.err.lines[-60:], sep="\n")  # on failure
        for pid in w.children:
            if alive(pid) and ours(pid, system):
                os.kill(pid, signal.SIGKILL)


async def test_sighup_drains_a_single_worker_and_exits_0(
    system: System, start: Start, redis: Redis, tmp_path: Path
) -> None:
    await system.mock_settings(latency_ms=20)  # the drain comes mid-campaign
    cid = enqueue(system, tmp_path)
    worker = start()
    await wait_for_chunks(redis, system, cid, 3)
    worker.proc.send_signal(signal.SIGHUP)
    assert worker.exit_code() == 0
    worker.err.expect(r"SIGHUP received: draining like SIGTERM$")
    worker.err.expect(r"worker \S+ stopped after \d+ chunk\(s\)$")
    assert await system.pending(redis, "cloudaten") == 0
    st = await Client(settings=load_settings(system.config), redis=redis).status(cid)
    assert st.recorded > 0 and st.counts == {"accepted": st.recorded}
    assert (await mock_stats(system))["accepted"] == st.recorded  # all it sent is recorded


def test_supervisor_restarts_a_sigkilled_child(system: System, start: Start) -> None:
    supervisor = start("--processes", "2")
    first = dict([supervisor.started(), supervisor.started()])
    assert sorted(first) == [1, 2]
    victim = first[1]
    os.kill(victim, signal.SIGKILL)
    supervisor.err.expect(
        rf"ERROR dispatcher\.supervisor\[{supervisor.proc.pid}\]: worker process 1 "
        rf"\(pid {victim}\) died: killed by SIGKILL; restarting in 0\.5 s$"
    )
    number, pid = supervisor.started()
    assert number == 1 and pid != victim and alive(pid)
    supervisor.err.expect(rf"dispatcher\.worker\[{pid}\]: worker \S+ ready$", start=0)
    assert alive(first[2])
    supervisor.proc.send_signal(signal.SIGTERM)
    assert supervisor.exit_code() == 0
    supervisor.err.expect(rf"dispatcher\.worker\[{pid}\]: SIGTERM received: draining$", start=0)
    assert not alive(pid) and not alive(first[2])


def test_supervisor_stopped_while_children_start_exits_0(system: System, start: Start) -> None:
    """A signal forwarded while the children are still importing waits for their handlers."""
    supervisor = start("--processes", "2")
    pids = [supervisor.started()[1], supervisor.started()[1]]
    supervisor.proc.send_signal(signal.SIGHUP)
    assert supervisor.exit_code() == 0
    for pid in pids:
        supervisor.err.expect(
            rf"dispatcher\.worker\[{pid}\]: SIGHUP received: draining like SIGTERM$", start=0
        )
        assert not alive(pid)


def test_supervisor_gives_up_after_repeated_deaths(system: System, start: Start) -> None:
    """Processes 1 and 2 are killed each time they start; process 3 is spared, and must be
    stopped when the supervisor gives up."""
    supervisor = start("--processes", "3")
    spared = 0
    for _ in range(4 * MAX_DEATHS):
        found = supervisor.err.expect(f"{STARTED.pattern}|{GIVING_UP.pattern}")
        if found[0].startswith("giving up"):
            break
        number, pid = int(found[1]), int(found[2])
        supervisor.children.add(pid)
        if number == 3:
            spared = pid
        else:
            os.kill(pid, signal.SIGKILL)
    else:
        raise AssertionError("the supervisor did not give up")
    assert int(found[3]) == MAX_DEATHS + 1
    assert supervisor.exit_code() == 1
    assert spared
    supervisor.err.expect(rf"worker process 3 \(pid {spared}\) exited with status 0$", start=0)
    assert supervisor.children and not any(alive(pid) for pid in supervisor.children)
