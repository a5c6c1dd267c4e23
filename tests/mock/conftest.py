"""A mock server in-process on loopback, and a small client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from dispatcher.mock import MockSettings, start


class MockClient:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        raw: bytes | None = None,
        bare: bool = False,
    ) -> tuple[int, Any]:
        """One request. JSON bodies go as ``Content-Type: application/json`` and every
        request says ``Accept: application/json``, as the seeds ask, unless ``bare``: then
        only ``headers`` are sent."""
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        sent = {} if bare else {"Accept": "application/json"}
        if data is not None and not bare:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        async with self.session.request(method, self.base + path, data=data, headers=sent) as r:
            payload = await r.read()
            try:
                return r.status, orjson.loads(payload)
            except orjson.JSONDecodeError:
                return r.status, payload.decode()

    async def stats(self, provider: str) -> dict[str, int]:
        _, data = await self.call("GET", "/_mock/stats")
        stats: dict[str, int] = data["providers"][provider]
        return stats

    async def messages(self, provider: str) -> list[dict[str, Any]]:
        _, data = await self.call("GET", f"/_mock/messages?provider={provider}")
        messages: list[dict[str, Any]] = data
        return messages


@pytest.fixture
async def mock_client() -> AsyncIterator[MockClient]:
    runner, port = await start(MockSettings(port=0))
    async with aiohttp.ClientSession() as session:
        yield MockClient(session, f"http://127.0.0.1:{port}")
    await runner.cleanup()
