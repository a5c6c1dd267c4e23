"""The webhooks receiver in-process on a loopback port, against the tests' real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from dispatcher.webhooks.server import start
from tests.conftest import all_providers
from tests.webhooks.support import SECRET, Hooks


@pytest.fixture
async def hooks(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hooks]:
    monkeypatch.setenv("DISPATCHER_WEBHOOK_SECRET", SECRET)
    settings = all_providers(prefix, "http://127.0.0.1:9")
    runner, port = await start(settings, redis_url, "127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        yield Hooks(session, f"http://127.0.0.1:{port}", settings)
    await runner.cleanup()
