"""The API on a real aiohttp server on loopback, over the test's real Redis and prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.api.app import create_app
from dispatcher.config import Settings
from tests.conftest import make_settings

TOKEN = "ci-token-0123456789abcdef"
TOKENS = {"ci": TOKEN.encode(), "billing": b"billing-token-0123456789"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Api = TestClient[web.Request, web.Application]
ApiFactory = Callable[[Settings], AbstractAsyncContextManager[Api]]


@asynccontextmanager
async def serve(settings: Settings, redis: Redis) -> AsyncIterator[Api]:
    app = create_app(settings, redis, TOKENS)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
def api_for(redis: Redis) -> ApiFactory:
    """The API over ``redis`` with the settings a test chooses (a provider at the mock)."""
    return lambda settings: serve(settings, redis)


@pytest.fixture
async def api(redis: Redis, prefix: str) -> AsyncIterator[Api]:
    async with serve(make_settings(prefix), redis) as client:
        yield client


async def answer(response: Any) -> tuple[int, Any]:
    """Status and decoded body of a response."""
    return response.status, await response.json(content_type=None)
