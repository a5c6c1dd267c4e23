"""Serve the webhook receiver until SIGTERM or SIGINT (uvloop)."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from dispatcher.config import Settings
from dispatcher.keys import Keys
from dispatcher.runtime import connect
from dispatcher.tracking import Tracker
from dispatcher.webhooks.app import build_app


async def start(
    settings: Settings, redis_url: str, host: str, port: int
) -> tuple[web.AppRunner, int]:
    """Start on ``host:port`` (0: a free port); returns the runner and the bound port."""
    redis = connect(redis_url)
    app = build_app(settings, Tracker(redis, Keys(settings.prefix)))

    async def close_redis(_app: web.Application) -> None:
        await redis.aclose()

    app.on_cleanup.append(close_redis)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None
    bound = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    return runner, bound


async def serve(settings: Settings, redis_url: str, host: str, port: int) -> None:
    runner, bound = await start(settings, redis_url, host, port)
    print(f"webhooks listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
