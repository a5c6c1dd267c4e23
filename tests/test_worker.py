"""The worker in-process, against the real mock server on loopback and a real Redis."""

from __future__ import annotations

import gc
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.chunkrun import ChunkRun, Turn
from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.keys import GROUP, Keys
from dispatcher.model import Campaign, Status
from tests.conftest import RunningWorker, make_settings

NUMBERS = [f"+4479110{i:05d}" for i in range(50)]


async def mock_get(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(url + path) as resp:
        return orjson.loads(await resp.read())


async def mock_post(url: str, path: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s, s.post(url + path, json=body) as resp:
        assert resp.status == 200


def mock_settings(prefix: str, mock: str, **provider: Any) -> Settings:
    return make_settings(prefix, f"{mock}/cloudaten", **provider)


async def test_a_campaign_gets_one_result_per_recipient(
    redis: Redis, prefix: str, mock: str
) -> None:
    settings = mock_settings(prefix, mock)
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", [*NUMBERS, "nope"]))
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.sent and st.counts == {"accepted": 50, "invalid": 1}
    results = [r async for r in client.results(answer.id)]
    assert len(results) == 51
    accepted = [r for r in results if r.status == Status.ACCEPTED]
    assert all(r.message_id and r.segments == 1 and r.price and r.sent_at for r in accepted)
    stats = (await mock_get(mock, "/_mock/stats"))["providers"]["cloudaten"]
    assert (stats["accepted"], stats["uids_repeated"]) == (50, 0)
    messages = await mock_get(mock, "/_mock/messages?provider=cloudaten")
    assert sorted(m["uid"] for m in messages) == sorted(f"{answer.id}.{i}" for i in range(50))
    assert {m["mobile"] for m in messages} == set(NUMBERS)
    assert await redis.xlen(Keys(prefix).at(0).queue("cloudaten")) == 0  # acked and deleted


async def test_a_finished_chunk_is_freed_without_the_collector(
    redis: Redis, prefix: str, mock: str
) -> None:
    """Nothing of a settled chunk waits for a full collection: with the cyclic collector
    off, no ChunkRun of the campaign is left once its results are in (a run that named
    itself through a hook once kept all its recipients until the next full pass)."""
    settings = mock_settings(prefix, mock, chunk_size=10)
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", NUMBERS))
    gc.collect()
    gc.disable()
    try:
        async with RunningWorker(redis, settings):
            st = await client.wait(answer.id, 30)
        left = [o for o in gc.get_objects()
                if isinstance(o, ChunkRun) and o.lease.campaign_id == answer.id]  # fmt: skip
    finally:
        gc.enable()
    assert st.sent and st.counts == {"accepted": len(NUMBERS)}
    assert left == []


async def test_an_otp_does_not_wait_for_the_turn_at_getting_ready(
    redis: Redis, prefix: str, mock: str
) -> None:
    """While a bulk chunk holds the worker's turn (chunkrun.Turn), an OTP is sent."""
    settings = mock_settings(prefix, mock)
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "123456", NUMBERS[:1], lane="otp"))
    async with RunningWorker(redis, settings) as worker:
        worker._turn = Turn(3600)
        async with worker._turn.take():
            st = await client.wait(answer.id, 30)
    assert st.sent and st.counts == {"accepted": 1}


async def test_provider_rejections_are_per_recipient(redis: Redis, prefix: str, mock: str) -> None:
    settings = mock_settings(prefix, mock)
    client = Client(settings=settings, redis=redis)
    # A region without a price at Cloud Aten: the mock refuses that number alone.
    await mock_post(mock, "/_mock/settings", {"unpriced_regions": ["JP"]})
    answer = await client.enqueue(Campaign("cloudaten", "hello", [NUMBERS[0], "+81312345678"]))
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.counts == {"accepted": 1, "rejected": 1}
    rejected = [r async for r in client.results(answer.id) if r.status == Status.REJECTED]
    assert [(r.number, r.error_code) for r in rejected] == [("+81312345678", "NO_BASE_PRICE")]


async def test_wrong_api_key_pauses_until_resumed(redis: Redis, prefix: str, mock: str) -> None:
    settings = mock_settings(prefix, mock)
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", NUMBERS[:30], account="wrong"))
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.state == "paused"
    assert st.reason is not None and st.reason.startswith("INVALID_API_KEY from cloudaten")
    assert "not-the-key" not in st.reason
    assert st.counts == {} and st.pending == 30  # no recipient failed: they are held
    stats = (await mock_get(mock, "/_mock/stats"))["providers"]["cloudaten"]
    assert stats["accepted"] == 0 and stats["unauthorized"] >= 1
    # The operator fixes the key and resumes: every recipient is then sent, once.
    fixed = replace(
        settings,
        providers={
            "cloudaten": replace(
                settings.providers["cloudaten"],
                accounts={"wrong": settings.providers["cloudaten"].accounts["default"]},
            )
        },
    )
    assert await client.resume(answer.id) == 3
    async with RunningWorker(redis, fixed):
        st = await client.wait(answer.id, 30)
    assert st.sent and st.counts == {"accepted": 30}
    stats = (await mock_get(mock, "/_mock/stats"))["providers"]["cloudaten"]
    assert (stats["accepted"], stats["uids_repeated"]) == (30, 0)


async def test_a_missing_key_pauses_with_the_setting_named(
    redis: Redis, prefix: str, mock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    settings = mock_settings(prefix, mock, accounts={"default": {"api_key_env": "NO_SUCH_KEY_VAR"}})
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", NUMBERS[:5]))
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.state == "paused" and st.pending == 5
    assert st.reason == (
        "providers.cloudaten.accounts.default: environment variable NO_SUCH_KEY_VAR is not set"
    )


async def test_transient_errors_are_retried_then_failed(redis: Redis, prefix: str) -> None:
    # Nothing listens on port 9 of loopback: every attempt is a connection error.
    settings = make_settings(prefix, "http://127.0.0.1:9/cloudaten", max_attempts=3)
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hello", NUMBERS[:3]))
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30)
    assert st.counts == {"failed": 3}
    assert {r.error_code async for r in client.results(answer.id)} == {"CONNECTION"}


async def test_stop_drains_and_leaves_nothing_taken(redis: Redis, prefix: str, mock: str) -> None:
    """Stopped mid-campaign, the worker records or re-queues everything it took."""
    await mock_post(mock, "/_mock/settings", {"latency_ms": 50})
    settings = mock_settings(prefix, mock, concurrency=4)
    # Half of the drain time is left for requests in flight: ten times their latency.
    settings = replace(settings, worker=replace(settings.worker, drain_timeout_seconds=1.0))
    client = Client(settings=settings, redis=redis)
    numbers = [f"+4479111{i:05d}" for i in range(200)]
    answer = await client.enqueue(Campaign("cloudaten", "hello", numbers))
    k = Keys(prefix)
    last = await redis.xrevrange(k.at(0).events, count=1)
    cursor: Any = last[0][0] if last else b"0-0"
    running = RunningWorker(redis, settings)
    async with running:
        await redis.xread(
            {k.at(0).events: cursor}, count=1, block=10_000
        )  # a first chunk is recorded
    pending = await redis.xpending(k.at(0).queue("cloudaten"), GROUP)
    assert pending["pending"] == 0
    st = await client.status(answer.id)
    assert 0 < st.recorded < 200
    assert await redis.xlen(k.at(0).queue("cloudaten")) > 0  # the rest waits in the queue
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 60)
    assert st.sent and st.counts == {"accepted": 200}
    stats = (await mock_get(mock, "/_mock/stats"))["providers"]["cloudaten"]
    assert (stats["accepted"], stats["uids_repeated"]) == (200, 0)
