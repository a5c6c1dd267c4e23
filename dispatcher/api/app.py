"""The API's application: routes, middlewares, and the process that serves it.

Bearer tokens guard ``/v1``; health, metrics, the OpenAPI document and the console's page
are open (the console's data comes from ``/v1``). The document is the contract:
``openapi.json`` beside this file, served as is.
"""

from __future__ import annotations

import logging
from importlib import resources

from aiohttp import web
from redis.asyncio import Redis

from dispatcher import health
from dispatcher.api import auth, campaigns, problems, streams
from dispatcher.api.console_routes import add_console_routes
from dispatcher.api.state import CLIENT
from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.runtime import until_stopped

log = logging.getLogger("dispatcher.api")

#: A JSON campaign may carry its recipients inline; bigger lists go as an upload.
MAX_JSON_BYTES = 64 * 1024 * 1024
V1 = "/v1"


def openapi_document() -> bytes:
    return resources.files("dispatcher.api").joinpath("openapi.json").read_bytes()


def create_app(settings: Settings, redis: Redis, tokens: dict[str, bytes]) -> web.Application:
    app = web.Application(
        middlewares=[problems.errors, auth.middleware(tokens)], client_max_size=MAX_JSON_BYTES
    )
    app[CLIENT] = Client(settings=settings, redis=redis)
    parts = app[CLIENT].store.keys.parts
    app[streams.WAKEUPS] = streams.Wakeups(redis, [part.events for part in parts])
    document = openapi_document()

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    async def close(app: web.Application) -> None:
        await app[streams.WAKEUPS].close()

    app.on_cleanup.append(close)
    r = app.router
    r.add_get("/openapi.json", openapi)
    r.add_post(f"{V1}/campaigns", campaigns.create)
    r.add_get(f"{V1}/campaigns", campaigns.listing)
    r.add_get(f"{V1}/campaigns/{{cid}}", campaigns.status)
    r.add_get(f"{V1}/campaigns/{{cid}}/results", streams.results)
    r.add_get(f"{V1}/campaigns/{{cid}}/events", streams.events)
    r.add_get(f"{V1}/campaigns/{{cid}}/dead", campaigns.dead)
    r.add_post(f"{V1}/campaigns/{{cid}}/pause", campaigns.pause)
    r.add_post(f"{V1}/campaigns/{{cid}}/resume", campaigns.resume)
    r.add_post(f"{V1}/campaigns/{{cid}}/cancel", campaigns.cancel)
    r.add_post(f"{V1}/campaigns/{{cid}}/retry", campaigns.retry)
    r.add_post(f"{V1}/estimate", campaigns.estimated)
    r.add_get(f"{V1}/inbound", campaigns.inbound)
    health.add_routes(app, redis, settings)
    add_console_routes(app)
    return app


async def start(
    settings: Settings, redis_url: str, host: str, port: int, tokens: dict[str, bytes]
) -> tuple[web.AppRunner, int]:
    """Start on ``host:port`` (0: a free port); returns the runner and the bound port."""
    from dispatcher.webhooks.server import connect_pooled

    redis = connect_pooled(redis_url)
    app = create_app(settings, redis, tokens)

    async def close(_app: web.Application) -> None:
        await redis.aclose()

    app.on_cleanup.append(close)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, int(runner.addresses[0][1])


async def serve(
    settings: Settings, redis_url: str, host: str, port: int, tokens: dict[str, bytes]
) -> None:
    runner, bound = await start(settings, redis_url, host, port, tokens)
    print(f"api listening on http://{host}:{bound}", flush=True)
    log.info("api: %d token(s) accepted", len(tokens))
    try:
        await until_stopped()
    finally:
        await runner.cleanup()
