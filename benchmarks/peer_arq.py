"""The arq peer's worker: ``python -m benchmarks.peer_arq`` (started by peers.start_peer).

arq's own CLI (``arq benchmarks.peer_arq.WorkerSettings``) runs it too, but on asyncio's
default loop; here the worker gets uvloop, as an expert deploying it for speed would do.
Settings come from the environment that start_peer sets.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, ClassVar

import uvloop
from arq.connections import RedisSettings
from arq.worker import func, run_worker

from benchmarks.peers import ENV_REDIS, FUNCTION, JOBS_IN_FLIGHT, QUEUE, Row, open_sender


async def startup(ctx: dict[str, Any]) -> None:
    ctx["sender"] = await open_sender(ctx["redis"], "arq")


async def shutdown(ctx: dict[str, Any]) -> None:
    if "sender" in ctx:
        await ctx["sender"].session.close()


async def send_batch(
    ctx: dict[str, Any], *, provider: str, campaign_id: str, first: int, numbers: list[str],
    text: str,
) -> list[Row]:  # fmt: skip
    """One job: 100 recipients; its return value is the result arq keeps in Redis."""
    rows: list[Row] = await ctx["sender"].send(provider, campaign_id, first, numbers, text)
    return rows


class WorkerSettings:
    functions: ClassVar = [func(send_batch, name=FUNCTION)]
    queue_name = QUEUE["arq"]
    redis_settings = RedisSettings.from_dsn(os.environ.get(ENV_REDIS, "redis://127.0.0.1/1"))
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = JOBS_IN_FLIGHT
    # arq polls its queue (no blocking read); 0.5 s by default, which can leave the worker
    # idle that long when jobs arrive. 0.1 s costs ten cheap reads a second when idle.
    poll_delay = 0.1
    job_timeout = 300  # arq's default; a job takes well under a second here
    keep_result = 3600  # arq's default: the driver reads every result back


def main() -> None:
    logging.basicConfig(level=logging.WARNING)  # no per-job log lines, as with SAQ's CLI
    asyncio.set_event_loop(uvloop.new_event_loop())  # arq's Worker takes the current loop
    run_worker(WorkerSettings)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
