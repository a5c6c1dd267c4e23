"""``python -m dispatcher worker``: one worker process, or several under a supervisor.

With ``--processes N`` the supervisor starts N copies of itself with ``--processes 1``
(the account rates are shared through Redis), forwards SIGTERM/SIGINT to them, and exits 0
only if they all did. The embedded Redis, when used, belongs to the supervisor and outlives
the children.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from types import FrameType

from dispatcher.config import Settings
from dispatcher.runtime import connect, early_signals, redis_url, run
from dispatcher.worker import Worker

log = logging.getLogger("dispatcher.worker")


async def _one(url: str, settings: Settings, providers: list[str] | None, poll: bool) -> None:
    redis = connect(url)
    worker = Worker(redis, settings, providers=providers, poll=poll)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    if early_signals():
        worker.stop()  # asked to stop while starting up: start, then drain at once
    log.info("worker %s ready", worker.queue.consumer)
    try:
        await worker.run()
    finally:
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
        env = {**os.environ, "REDIS_URL": url}
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dispatcher",
                    *argv,
                    "--processes",
                    "1",
                ],
                env=env,
            )
            for _ in range(processes)
        ]

        def forward(signum: int, _frame: FrameType | None) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signum)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
        for signum in early_signals():
            forward(signum, None)
        try:
            codes = [child.wait() for child in children]
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    bad = [c for c in codes if c != 0]
    if bad:
        log.error("%d worker process(es) failed: exit codes %s", len(bad), bad)
        return 1
    return 0
