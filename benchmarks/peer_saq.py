"""The SAQ peer's worker: ``python -m benchmarks.peer_saq`` (started by peers.start_peer).

SAQ's CLI (``saq benchmarks.peer_saq.settings``) runs it too, but on asyncio's default
loop; ``main`` does what its ``saq.worker.start`` does, on uvloop. Settings come from the
environment that start_peer sets.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import uvloop
from saq.queue import Queue
from saq.types import Context, SettingsDict
from saq.worker import Worker

from benchmarks.peers import ENV_REDIS, FUNCTION, JOBS_IN_FLIGHT, QUEUE, Row, Sender, open_sender

#: Job options the driver enqueues with. SAQ's default timeout is 10 s and its sweeper
#: aborts an active job past it; 300 s is arq's default, far above a job's time here. No
#: heartbeat (SAQ's default): the timeout alone finds a stuck job. No retry (SAQ's default):
#: a failed batch may have sent part of its messages, so resending it would repeat them;
#: arq does not retry a job that raised either. Results are kept an hour, like arq's.
JOB_OPTIONS: dict[str, Any] = {"timeout": 300, "heartbeat": 0, "retries": 1, "ttl": 3600}


class PeerContext(Context, total=False):
    sender: Sender


async def startup(ctx: PeerContext) -> None:
    ctx["sender"] = await open_sender(ctx["worker"].queue.redis, "saq")  # type: ignore[attr-defined]


async def shutdown(ctx: PeerContext) -> None:
    if "sender" in ctx:
        await ctx["sender"].session.close()


async def send_batch(
    ctx: PeerContext, *, provider: str, campaign_id: str, first: int, numbers: list[str],
    text: str,
) -> list[Row]:  # fmt: skip
    """One job: 100 recipients; its return value is the result SAQ keeps in Redis."""
    return await ctx["sender"].send(provider, campaign_id, first, numbers, text)


def settings() -> SettingsDict[PeerContext]:
    """A callable, so the queue is made from the environment only when a worker starts."""
    queue = Queue.from_url(os.environ.get(ENV_REDIS, "redis://127.0.0.1/2"), name=QUEUE["saq"])
    return {
        "queue": queue,
        "functions": [(FUNCTION, send_batch)],
        "concurrency": JOBS_IN_FLIGHT,
        "startup": startup,
        "shutdown": shutdown,
    }


async def serve() -> None:
    """saq.worker.start's work: connect the queue, run the worker until SIGTERM."""
    worker = Worker(**settings())
    await worker.queue.connect()
    try:
        await worker.start()
    finally:
        await worker.queue.disconnect()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)  # SAQ's CLI default: no per-job lines
    uvloop.run(serve())


if __name__ == "__main__":
    main()
