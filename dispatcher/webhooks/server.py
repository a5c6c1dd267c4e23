"""Serve the webhook receiver until SIGTERM or SIGINT (uvloop).

Providers push in bursts (a campaign's reports come back together), so the Redis client
is a bounded pool that makes a request *wait* for a free connection: redis-py's default
pool raises ``MaxConnectionsError`` past 100 connections, which became 500s under a burst
of 2,000 pushes. A request waits at most ``POOL_WAIT_S``; only then, or when Redis refuses
or times out, is it answered 503 (app.py). Log records are scrubbed of the secret
(redact.py) and aiohttp's access log is off: it would print every secret path.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.config import Settings
from dispatcher.embedded import CLIENT_NAME
from dispatcher.health import add_routes
from dispatcher.keys import Keys
from dispatcher.metrics import push_families
from dispatcher.runtime import is_cluster_url, plain_url, until_stopped
from dispatcher.tracking import Tracker
from dispatcher.webhooks import redact
from dispatcher.webhooks.app import COUNTS, build_app

#: Redis connections of one webhooks process: enough to keep Redis busy, few enough for
#: its client limit when many processes run.
POOL_SIZE = 64
#: How long a request waits for a pooled connection before it is answered 503.
POOL_WAIT_S = 20.0


def connect_pooled(url: str, size: int = POOL_SIZE, wait_s: float = POOL_WAIT_S) -> Redis:
    """A client whose commands wait for one of ``size`` connections, and ride out a Redis
    restart of about a second before failing (the provider pushes again after a 503).

    A cluster URL gives a ``RedisCluster`` (typed ``Redis``: the same command API) with
    ``size`` connections per node. redis-py's cluster pool cannot wait for a free
    connection, so there ``wait_s`` does not apply: past ``size`` a command fails with
    ``MaxConnectionsError`` (a ``ConnectionError``, so the request is answered 503).
    """
    options: dict[str, Any] = {
        "client_name": CLIENT_NAME,
        "health_check_interval": 30,
        "socket_keepalive": True,
        "socket_connect_timeout": 5,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=4),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if is_cluster_url(url):
        cluster = RedisCluster.from_url(plain_url(url), max_connections=size, **options)
        return cast(Redis, cluster)
    pool = BlockingConnectionPool.from_url(url, max_connections=size, timeout=wait_s, **options)
    return Redis.from_pool(pool)


async def start(
    settings: Settings, redis_url: str, host: str, port: int
) -> tuple[web.AppRunner, int]:
    """Start on ``host:port`` (0: a free port); returns the runner and the bound port."""
    redis = connect_pooled(redis_url)
    app = build_app(settings, Tracker(redis, Keys.of(settings, redis)))
    # Its own /healthz (the counts) stays; /metrics shows the same counts as pushes.
    counts = app[COUNTS]
    add_routes(app, redis, settings, healthz=False, extra=[lambda: push_families(counts)])
    unfilter = redact.install(settings.webhooks.secret())

    async def close(_app: web.Application) -> None:
        await redis.aclose()
        unfilter()

    app.on_cleanup.append(close)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = int(runner.addresses[0][1])
    return runner, bound


async def serve(settings: Settings, redis_url: str, host: str, port: int) -> None:
    # Every handler of the process, too: a record from a logger not in redact.LOGGERS.
    unfilter = redact.install(settings.webhooks.secret(), (), logging.getLogger().handlers)
    runner, bound = await start(settings, redis_url, host, port)
    print(f"webhooks listening on http://{host}:{bound}", flush=True)
    try:
        await until_stopped()
    finally:
        await runner.cleanup()
        unfilter()
