"""The worker with each batch provider, in-process against the mock on loopback.

Covers what is particular to YCloud, CloudSMS and Smsclouds: personalised texts, CloudSMS's
"busy, come back in 10 minutes" (shortened here) and a wrong AUTH_KEY.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.model import Campaign, Recipient, Status
from dispatcher.render import render
from dispatcher.worker import Worker
from tests.conftest import all_providers

NUMBERS = {
    "ycloud": [f"+861390000{i:04d}" for i in range(30)],
    "cloudsms": [f"+8526123{i:04d}" for i in range(30)],
    "smsclouds": [f"+52449898{i:04d}" for i in range(30)],
}
# Smsclouds national numbers are what its mock records as the mobile.
TEXT = "Hola <+B+>, tu código es <+C+>"


async def mock_call(url: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, url + path, json=body) as r:
        return orjson.loads(await r.read())


async def run_until_settled(redis: Redis, settings: Settings, cid: str) -> Any:
    worker = Worker(redis, settings)
    task = asyncio.create_task(worker.run())
    try:
        return await Client(settings=settings, redis=redis).wait(cid, 30)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("provider", ["ycloud", "cloudsms", "smsclouds"])
async def test_personalised_campaign(redis: Redis, prefix: str, mock: str, provider: str) -> None:
    settings = all_providers(prefix, mock)
    client = Client(settings=settings, redis=redis)
    people = [
        Recipient(n, {"name": f"Ana{i % 3}", "field1": str(1000 + i)})
        for i, n in enumerate(NUMBERS[provider])
    ]
    answer = await client.enqueue(Campaign(provider, TEXT, people))
    st = await run_until_settled(redis, settings, answer.id)
    assert st.sent and st.counts == {"accepted": 30}
    messages = await mock_call(mock, "GET", f"/_mock/messages?provider={provider}")
    got = {m["mobile"][-4:]: m["text"] for m in messages}
    want = {p.number[-4:]: render(TEXT, p.fields) for p in people}
    assert got == want
    results = [r async for r in client.results(answer.id)]
    assert all(r.status == Status.ACCEPTED for r in results)
    if provider == "smsclouds":
        assert len({r.batch_id for r in results}) == 1 and results[0].batch_id
    else:
        assert len({r.message_id for r in results}) == 30


async def test_cloudsms_busy_comes_back_after_the_delay(
    redis: Redis, prefix: str, mock: str
) -> None:
    delay = 1.0
    settings = all_providers(prefix, mock, cloudsms={"retry_later_seconds": delay})
    await mock_call(mock, "POST", "/_mock/settings", {"cloudsms_busy": 1})
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudsms", "hello", NUMBERS["cloudsms"][:5]))
    st = await run_until_settled(redis, settings, answer.id)
    assert st.sent and st.counts == {"accepted": 5}
    packets = await mock_call(mock, "GET", "/_mock/cloudsms/packets")
    assert [code for _, code in packets] == [3, 1]  # Busy, then the same numbers accepted
    assert packets[1][0] - packets[0][0] >= delay
    stats = (await mock_call(mock, "GET", "/_mock/stats"))["providers"]["cloudsms"]
    assert (stats["accepted"], stats["mobiles_repeated"]) == (5, 0)


async def test_cloudsms_wrong_auth_key_pauses(redis: Redis, prefix: str, mock: str) -> None:
    settings = all_providers(prefix, mock)
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(
        Campaign("cloudsms", "hello", NUMBERS["cloudsms"][:5], account="wrong")
    )
    st = await run_until_settled(redis, settings, answer.id)
    assert st.state == "paused" and st.pending == 5
    assert st.reason is not None and st.reason.startswith(
        "Channel_not_exist from cloudsms account wrong"
    )


async def test_smsclouds_chunk_is_one_campaign(redis: Redis, prefix: str, mock: str) -> None:
    settings = all_providers(prefix, mock, smsclouds={"chunk_size": 12})
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("smsclouds", "hi", NUMBERS["smsclouds"]))
    st = await run_until_settled(redis, settings, answer.id)
    assert st.sent and st.counts == {"accepted": 30}
    stats = (await mock_call(mock, "GET", "/_mock/stats"))["providers"]["smsclouds"]
    # three campaign requests of 10 (at most 12, of one size); the poller's list calls
    # (statuses, replies) come beside them
    assert (stats["requests"] - stats["list_calls"], stats["largest_batch"]) == (3, 10)
    batches = {r.batch_id async for r in client.results(answer.id)}
    assert len(batches) == 3
