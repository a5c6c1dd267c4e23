"""Polling the list APIs of the mock: final statuses without pushes, and never faster than
the provider allows, however many pollers run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.mock import MockSettings, start
from dispatcher.model import Campaign
from dispatcher.poller import Poller, counted
from dispatcher.providers import CODECS
from dispatcher.providers.common import OneMobileCodec
from dispatcher.providers.smsclouds_status import STATUSES as SMSCLOUDS_STATUSES
from dispatcher.tracking import Applied
from dispatcher.worker import Worker
from tests.conftest import all_providers

INTERVAL = 0.3  # the mock's limit: one list call per key this often


@pytest.fixture
async def mock() -> AsyncIterator[str]:
    runner, port = await start(MockSettings(port=0, list_interval_s=INTERVAL, dlr_delay_ms=0))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def mock_get(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url + path) as r:
        return orjson.loads(await r.read())


def poll_settings(prefix: str, mock: str) -> Settings:
    # A little above the provider's interval: the lock is taken before the request travels.
    poll = {"poll_interval_seconds": INTERVAL + 0.1, "poll_after_seconds": 0}
    return all_providers(prefix, mock, cloudaten=poll, ycloud=poll, smsclouds=poll)


async def send(redis: Redis, settings: Settings, campaign: Campaign) -> str:
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(campaign)
    worker = Worker(redis, settings, poll=False)
    task = asyncio.create_task(worker.run())
    try:
        assert (await client.wait(answer.id, 30)).sent
    finally:
        worker.stop()
        await task
    return answer.id


async def poll_until_done(redis: Redis, settings: Settings, cid: str, pollers: int) -> Any:
    tasks = [asyncio.create_task(Poller(redis, settings).run()) for _ in range(pollers)]
    try:
        return await Client(settings=settings, redis=redis).wait(cid, 30, final=True)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("provider", ["cloudaten", "ycloud"])
async def test_list_polling_by_three_pollers(
    redis: Redis, prefix: str, mock: str, provider: str
) -> None:
    settings = poll_settings(prefix, mock)
    numbers = [f"+4479110{i:05d}" for i in range(40)]
    cid = await send(redis, settings, Campaign(provider, "hi", numbers))
    st = await poll_until_done(redis, settings, cid, pollers=3)
    assert st.done and sum(st.finals.values()) == 40
    stats = (await mock_get(mock, "/_mock/stats"))["providers"][provider]
    assert stats["list_refused"] == 0 and stats["list_calls"] >= 1
    # Every recipient ends in the status the mock decided.
    codec = CODECS[provider]
    assert isinstance(codec, OneMobileCodec)
    decided = {
        m["mobile"]: codec.statuses[m["final_status"]]
        for m in await mock_get(mock, f"/_mock/messages?provider={provider}")
    }
    got = {r.number: r.status async for r in Client(settings=settings, redis=redis).results(cid)}
    assert got == decided


async def test_smsclouds_reaches_final_statuses_by_polling_alone(
    redis: Redis, prefix: str, mock: str
) -> None:
    settings = poll_settings(prefix, mock)
    settings = all_providers(
        prefix, mock, smsclouds={"poll_interval_seconds": INTERVAL + 0.1, "poll_after_seconds": 0,
                                 "chunk_size": 10},
    )  # fmt: skip
    numbers = [f"+52449898{i:04d}" for i in range(30)]
    cid = await send(redis, settings, Campaign("smsclouds", "hola", numbers))
    st = await poll_until_done(redis, settings, cid, pollers=2)
    assert st.done and sum(st.finals.values()) == 30
    stats = (await mock_get(mock, "/_mock/stats"))["providers"]["smsclouds"]
    assert stats["list_refused"] == 0
    assert stats["list_calls"] - stats["responses_calls"] == 3  # status pages: one per campaign
    decided = {
        f"+52{m['mobile']}": SMSCLOUDS_STATUSES[m["final_status"]]
        for m in await mock_get(mock, "/_mock/messages?provider=smsclouds")
    }
    got = {r.number: r.status async for r in Client(settings=settings, redis=redis).results(cid)}
    assert got == decided


def test_tallies_are_logged_as_words() -> None:
    assert counted({Applied.STALE: 2, Applied.APPLIED: 301}) == "applied=301 stale=2"


async def test_close_closes_the_sessions_it_opened(redis: Redis, prefix: str, mock: str) -> None:
    poller = Poller(redis, all_providers(prefix, mock))
    assert b"amount" in await poller.get("cloudaten", "default", "/v1/account/balance")
    [transport] = poller._transports.values()
    await poller.close()
    assert poller._transports == {} and transport._pool is None
