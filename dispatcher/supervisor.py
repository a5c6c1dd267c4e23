"""``python -m dispatcher worker``: one worker process, or several under a supervisor.

A worker drains on SIGTERM, SIGINT or SIGHUP alike: it reads nothing new, finishes what is
in flight within the drain timeout, and exits 0.

With ``--processes N`` the supervisor starts N copies of itself with ``--processes 1``
(the account rates are shared through Redis), forwards SIGTERM/SIGINT/SIGHUP to them, and
once stopping waits for them all and exits 0 only if they all did. A child that dies while
the supervisor is not stopping is restarted as ``RESTART_RULE`` says. The embedded Redis,
when used, belongs to the supervisor and outlives the children.

Children start with the stop signals blocked and unblock them once their handlers are in
place, so a signal forwarded while a child is still importing waits for it instead of
killing it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType

from dispatcher.config import Settings
from dispatcher.health import WORKER_NUMBER_ENV, serve_worker
from dispatcher.runtime import connect, early_signals, redis_url, run, settle_heap
from dispatcher.worker import Worker

log = logging.getLogger("dispatcher.worker")
supervisor_log = logging.getLogger("dispatcher.supervisor")

#: The signals that make a worker drain, and that the supervisor forwards to its children.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

#: A dead child is restarted after this delay, doubled for each death in a row...
RESTART_DELAY_S = 0.5
#: ...up to this much,
RESTART_DELAY_MAX_S = 10.0
#: and the delay starts again from the first once a child has stayed up this long.
STABLE_AFTER_S = 60.0
#: More than this many deaths (of any of the children) ...
MAX_DEATHS = 5
#: ... within this many seconds, and the supervisor gives up: it stops the rest and exits 1.
DEATH_WINDOW_S = 60.0
#: How often the supervisor looks at its children.
POLL_S = 0.2

RESTART_RULE = (
    f"A worker process that dies is restarted after {RESTART_DELAY_S:g} s, the delay doubling "
    f"up to {RESTART_DELAY_MAX_S:g} s for each death in a row (it starts again from "
    f"{RESTART_DELAY_S:g} s once the process has stayed up {STABLE_AFTER_S:g} s); after more "
    f"than {MAX_DEATHS} deaths within {DEATH_WINDOW_S:g} s the supervisor gives up, stops the "
    "other worker processes and exits 1."
)


def _drain_on(worker: Worker, signum: int, when: str = "") -> None:
    name = signal.Signals(signum).name
    like = "" if signum == signal.SIGTERM else " like SIGTERM"
    log.info("%s received%s: draining%s", name, when, like)
    worker.stop()


async def _one(url: str, settings: Settings, providers: list[str] | None, poll: bool) -> None:
    redis = connect(url)
    worker = Worker(redis, settings, providers=providers, poll=poll)
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, _drain_on, worker, sig)
    # Started by a supervisor, the stop signals are blocked until now (see run_many): one
    # that came while starting up is delivered here, to the handlers above.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    for early in early_signals()[:1]:  # asked to stop while starting up: start, then drain
        _drain_on(worker, early, " while starting up")
    # Opt-in (a port to listen on): before "ready", so a bad port fails the start.
    http = await serve_worker(worker) if settings.worker.metrics_port is not None else None
    settle_heap()
    log.info("worker %s ready", worker.queue.consumer)
    try:
        await worker.run()
    finally:
        if http is not None:
            await http.cleanup()
        await redis.aclose()
    log.info("worker %s stopped after %d chunk(s)", worker.queue.consumer, worker.chunks_done)


def run_single(settings: Settings, providers: list[str] | None, poll: bool = True) -> int:
    with redis_url() as url:
        run(_one(url, settings, providers, poll))
    return 0


def run_many(argv: list[str], processes: int) -> int:
    """Start ``processes`` single workers and supervise them.

    ``argv`` is the whole command line (global options, ``worker`` and its options) without
    ``--processes``; each child gets it back with ``--processes 1``.
    """
    with redis_url() as url:
        command = [sys.executable, "-m", "dispatcher", *argv, "--processes", "1"]
        return _Supervisor(command, {**os.environ, "REDIS_URL": url}, processes).run()


def _how(code: int) -> str:
    if code >= 0:
        return f"exited with status {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


@dataclass
class _Slot:
    """Worker process number ``number``: the current process, if any, and its restarts."""

    number: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float = RESTART_DELAY_S
    restart_at: float | None = None


class _Supervisor:
    def __init__(self, command: list[str], env: dict[str, str], processes: int) -> None:
        self.command = command
        self.env = env
        self.slots = [_Slot(n) for n in range(1, processes + 1)]
        self.signals: list[int] = []  # appended to by the signal handler, read by the loop
        self.deaths: deque[float] = deque()
        self.stopping = False
        self.gave_up = False
        self.failed: list[int] = []  # exit codes other than 0 after the stop

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        previous_fd = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        try:
            for slot in self.slots:
                self._start(slot)
            for signum in early_signals():
                self._stop(signum, " while starting up")
            while True:
                while self.signals:
                    self._stop(self.signals.pop(0))
                now = time.monotonic()
                for slot in self.slots:
                    self._check(slot, now)
                if self.stopping and all(slot.proc is None for slot in self.slots):
                    break
                if not self.stopping:
                    for slot in self.slots:
                        if slot.restart_at is not None and slot.restart_at <= now:
                            self._start(slot)
                self._wait(wake_r)
        finally:
            signal.set_wakeup_fd(previous_fd)
            for s, handler in previous.items():
                signal.signal(s, handler)
            os.close(wake_r)
            os.close(wake_w)
            self._reap_all()  # only if something went wrong above: no child outlives us
        if self.gave_up:
            return 1
        if self.failed:
            supervisor_log.error(
                "%d worker process(es) failed: exit codes %s", len(self.failed), self.failed
            )
            return 1
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals.append(signum)  # the loop acts on it; the wakeup fd wakes the loop

    def _start(self, slot: _Slot) -> None:
        slot.restart_at = None
        # Blocked here, the stop signals stay blocked in the child until its handlers are in
        # place (see _one), so forwarding one during the child's start-up cannot kill it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            # Its number, for its metrics port (health.worker_port).
            env = {**self.env, WORKER_NUMBER_ENV: str(slot.number)}
            slot.proc = subprocess.Popen(self.command, env=env)
        except OSError as exc:
            supervisor_log.error("worker process %d could not start: %s", slot.number, exc)
            self._died(slot, time.monotonic(), 0.0)
            return
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        slot.started = time.monotonic()
        supervisor_log.info("worker process %d started (pid %d)", slot.number, slot.proc.pid)

    def _stop(self, signum: int, when: str = "") -> None:
        name = signal.Signals(signum).name
        alive = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        if self.stopping:
            supervisor_log.info("%s received%s: forwarding it", name, when)
        else:
            supervisor_log.info(
                "%s received%s: stopping %d worker process(es)", name, when, len(alive)
            )
        self.stopping = True
        for proc in alive:
            proc.send_signal(signum)

    def _check(self, slot: _Slot, now: float) -> None:
        proc = slot.proc
        if proc is None:
            return
        code = proc.poll()
        if code is None:
            return
        slot.proc = None
        if self.stopping:
            level = logging.INFO if code == 0 else logging.ERROR
            supervisor_log.log(
                level, "worker process %d (pid %d) %s", slot.number, proc.pid, _how(code)
            )
            if code != 0:
                self.failed.append(code)
            return
        self._died(slot, now, now - slot.started, f"(pid {proc.pid}) died: {_how(code)}")

    def _died(self, slot: _Slot, now: float, uptime: float, what: str = "died") -> None:
        """Count a death while not stopping; restart the slot later, or give up."""
        self.deaths.append(now)
        while self.deaths[0] <= now - DEATH_WINDOW_S:
            self.deaths.popleft()
        if len(self.deaths) > MAX_DEATHS:
            supervisor_log.error("worker process %d %s", slot.number, what)
            self._give_up()
            return
        if uptime >= STABLE_AFTER_S:
            slot.delay = RESTART_DELAY_S
        delay, slot.delay = slot.delay, min(slot.delay * 2, RESTART_DELAY_MAX_S)
        slot.restart_at = now + delay
        supervisor_log.error("worker process %d %s; restarting in %g s", slot.number, what, delay)

    def _give_up(self) -> None:
        self.gave_up = True
        alive = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        supervisor_log.error(
            "giving up: %d worker process deaths within %g s (more than %d); "
            "stopping the %d other worker process(es) and exiting 1",
            len(self.deaths),
            DEATH_WINDOW_S,
            MAX_DEATHS,
            len(alive),
        )
        self.stopping = True
        for proc in alive:
            proc.send_signal(signal.SIGTERM)

    def _wait(self, wake_r: int) -> None:
        """Until the next look at the children, a due restart, or a signal."""
        timeout = POLL_S
        if not self.stopping:
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None:
                    timeout = min(timeout, max(0.0, slot.restart_at - now))
        ready, _, _ = select.select([wake_r], [], [], timeout)
        if ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass

    def _reap_all(self) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.terminate()
        for slot in self.slots:
            if slot.proc is not None:
                slot.proc.wait()
