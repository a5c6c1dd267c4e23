"""Health over HTTP for every process, and ``worker --check`` for container probes.

Each process (worker, webhooks, API) answers three paths, added by :func:`add_routes`:

* ``/healthz`` — live: the process's event loop answers. Nothing else is checked, so a
  Redis outage never gets a process restarted (it rides outages out by itself).
* ``/readyz`` — ready: Redis answers PING within ``READY_TIMEOUT_S`` and the consumer group
  ``workers`` exists on the streams the process works from (a worker's own streams; the
  webhooks and API processes read none, so for them only PING). 200 or 503, with JSON
  saying why.
* ``/metrics`` — Prometheus text (metrics.py), with the queue figures read from Redis at
  that moment.

The worker has no other HTTP server, so it serves these only when asked for a port
(``worker --metrics-port P`` or ``[worker] metrics_port``): tests and benchmarks start many
workers at once, and each would need a port of its own. Under ``--processes N``, worker
process *i* (1…N) serves on P+i−1; port 0 picks any free port. The worker logs the URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatcher.config import ConfigError, Settings
from dispatcher.embedded import _running_server, data_dir_from_env
from dispatcher.errors import DispatcherError
from dispatcher.keys import GROUP, LANES, Keys, is_cluster_client, partitions_for
from dispatcher.metrics import Extra, in_flight, queue_families, redis_up, render
from dispatcher.runtime import (
    checked_url,
    ensure_reachable,
    is_cluster_url,
    probe_client,
    reason_of,
    redact_url,
    run,
)
from dispatcher.store import as_str

if TYPE_CHECKING:
    from dispatcher.worker import Worker

log = logging.getLogger("dispatcher.worker")
#: How long /readyz and the Redis part of /metrics wait for Redis: a probe must answer
#: well within its own timeout, and the process's client would retry for ~10 s.
READY_TIMEOUT_S = 2.0
#: Set by the supervisor for each worker process it starts: its number, 1…N.
WORKER_NUMBER_ENV = "DISPATCHER_WORKER_NUMBER"


class NotReady(DispatcherError, RuntimeError):
    """Redis answers but what a worker needs is missing; the message says what."""


def worker_streams(
    settings: Settings, providers: Sequence[str] | None = None, *, cluster: bool = False
) -> list[str]:
    """The work streams a worker reads (as worker.Worker lists them): every lane of
    ``providers``, or of every configured provider, in every partition (``cluster``: of a
    Redis Cluster, where there are several unless set)."""
    keys = Keys(settings.prefix, partitions_for(settings.partitions, cluster))
    names = list(providers or sorted(settings.providers))
    return [part.queue(p, lane) for part in keys.parts for lane in LANES for p in names]


async def missing_groups(redis: Redis, streams: Sequence[str]) -> list[str]:
    """Those of ``streams`` without the ``workers`` group (or missing altogether)."""
    if not streams:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xinfo_groups(stream)
        got = await pipe.execute(raise_on_error=False)
    missing = []
    for stream, groups in zip(streams, got, strict=True):
        if isinstance(groups, Exception) and not isinstance(groups, RedisError):
            raise groups
        names = [] if isinstance(groups, Exception) else [as_str(g["name"]) for g in groups]
        if GROUP not in names:
            missing.append(stream)
    return missing


async def readiness(redis: Redis, streams: Sequence[str]) -> dict[str, object]:
    """``{"ready": bool, "redis": "ok" or why not, "missing_groups": [...]}``."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await redis.ping()
            missing = await missing_groups(redis, streams)
    except (RedisError, OSError, TimeoutError) as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else reason_of(exc)
        return {"ready": False, "redis": why, "missing_groups": []}
    return {"ready": not missing, "redis": "ok", "missing_groups": missing}


def add_routes(
    app: web.Application,
    redis: Redis,
    settings: Settings,
    *,
    ready_streams: Sequence[str] = (),
    queue_streams: Sequence[str] | None = None,
    extra: Iterable[Extra] = (),
    healthz: bool = True,
) -> None:
    """Add ``/healthz``, ``/readyz`` and ``/metrics`` to ``app``.

    ``ready_streams``: streams whose ``workers`` group /readyz requires (none: PING only).
    ``queue_streams``: streams whose depth and age /metrics reads (default: every lane of
    every configured provider). ``extra``: callables returning more metric families at
    each scrape. ``healthz=False`` keeps an app's own /healthz (the webhooks receiver's).
    """
    if queue_streams is None:
        queue_streams = worker_streams(settings, cluster=is_cluster_client(redis))
    streams = list(queue_streams)
    ready = list(ready_streams)
    more = list(extra)

    async def live(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        answer = await readiness(redis, ready)
        return web.json_response(answer, status=200 if answer["ready"] else 503)

    async def metrics(_request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                families = await queue_families(redis, settings, streams)
        except TimeoutError:
            families = redis_up(False)
        body = render(families, *(f() for f in more))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    if healthz:
        app.router.add_get("/healthz", live)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


# -- the worker's server -------------------------------------------------------------


def worker_port(base: int, number: str | None = None) -> int:
    """The port of worker process ``number`` (1…N, from the supervisor; 1 alone): the
    base port plus number − 1, or 0 (any free port) for base 0."""
    given = os.environ.get(WORKER_NUMBER_ENV) if number is None else number
    return base + int(given or 1) - 1 if base else 0


async def serve_worker(worker: Worker) -> web.AppRunner:
    """Start the worker's /metrics, /healthz and /readyz on ``[worker] metrics_host`` and
    its port (see :func:`worker_port`); logs the URL. ConfigError if it cannot listen."""
    w = worker.settings.worker
    assert w.metrics_port is not None
    app = web.Application()
    streams = worker.queue.streams
    add_routes(
        app,
        worker.redis,
        worker.settings,
        ready_streams=streams,
        queue_streams=streams,
        extra=[in_flight(lambda: worker.chunks_in_flight)],
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = worker_port(w.metrics_port)
    try:
        await web.TCPSite(runner, w.metrics_host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"worker.metrics_port: cannot listen on {w.metrics_host}:{port}: {exc.strerror or exc}"
        ) from None
    host, bound = runner.addresses[0][:2]
    shown = f"[{host}]" if ":" in str(host) else host
    log.info(
        "worker %s: metrics and health on http://%s:%d (/metrics, /healthz, /readyz)",
        worker.queue.consumer,
        shown,
        bound,
    )
    return runner


# -- worker --check --------------------------------------------------------------------


def check(settings: Settings, providers: Sequence[str] | None = None) -> str:
    """``worker --check``: Redis answers PING and the ``workers`` group exists on every
    stream these providers' workers read (every lane). Returns a line to print; raises
    RedisUnreachable (Redis does not answer) or NotReady. Never starts Redis: without
    ``REDIS_URL`` it checks the embedded server running in the data folder, if any."""
    url = os.environ.get("REDIS_URL")
    if url:
        checked_url(url)
    else:
        folder = data_dir_from_env()
        server = _running_server(folder)
        if server is None:
            raise NotReady(
                f"cannot reach Redis: no embedded server is running in {folder} "
                "(REDIS_URL unset); start the worker first, or set REDIS_URL"
            )
        url = server.url
    return run(_check(url, worker_streams(settings, providers, cluster=is_cluster_url(url))))


async def _check(url: str, streams: list[str]) -> str:
    await ensure_reachable(url)
    probe = probe_client(url)
    try:
        missing = await missing_groups(probe, streams)
    except (RedisError, OSError) as exc:
        raise NotReady(f"Redis at {redact_url(url)}: {reason_of(exc)}") from None
    finally:
        await probe.aclose()
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise NotReady(
            f"consumer group {GROUP} missing on {missing[0]}{more} at {redact_url(url)}; "
            "no worker has started with this prefix and these providers"
        )
    return f"ok: Redis at {redact_url(url)} answers; group {GROUP} on {len(streams)} stream(s)"
