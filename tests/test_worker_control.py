"""Campaign control and fault tolerance with the worker in-process against the mock:
pause, resume, cancel, scheduled start, injected faults, the dead-letter list, the
per-number throttle, and the otp lane."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.keys import Keys
from dispatcher.model import Campaign
from tests.conftest import RunningWorker, all_providers

NUMBERS = [f"+4479110{i:05d}" for i in range(200)]


async def call(url: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, url + path, json=body) as r:
        return orjson.loads(await r.read())


async def stats(mock: str, provider: str = "cloudaten") -> dict[str, int]:
    result: dict[str, int] = (await call(mock, "GET", "/_mock/stats"))["providers"][provider]
    return result


async def first_chunk(redis: Redis, prefix: str, cid: str) -> None:
    """Wait on the events stream for the first chunk of ``cid`` to be recorded."""
    key = Keys(prefix).at(0).events
    cursor: Any = "0-0"
    while True:
        got: Any = await redis.xread({key: cursor}, block=5000)
        assert got, "no chunk was recorded"
        for _stream, entries in got:
            for entry_id, fields in entries:
                cursor = entry_id
                if fields[b"c"].decode() == cid and fields[b"e"] == b"chunk":
                    return


async def test_pause_resume_and_cancel(redis: Redis, prefix: str, mock: str) -> None:
    await call(mock, "POST", "/_mock/settings", {"latency_ms": 20})
    settings = all_providers(prefix, mock, cloudaten={"chunk_size": 10, "concurrency": 4})
    client = Client(settings=settings, redis=redis)
    cid = (await client.enqueue(Campaign("cloudaten", "hi", NUMBERS))).id
    async with RunningWorker(redis, settings):
        await first_chunk(redis, prefix, cid)
        assert await client.pause(cid)
        assert not await client.pause(cid)  # already paused
    # The worker stopped: chunks that were in flight at the pause have finished and recorded.
    st = await client.status(cid)
    assert st.state == "paused" and st.reason == "paused by operator"
    sent_while_paused = (await stats(mock))["accepted"]
    assert 0 < sent_while_paused < 200 and st.recorded == sent_while_paused
    assert await client.resume(cid) >= 0  # held chunks re-queued (others never left the queue)
    async with RunningWorker(redis, settings):
        await first_chunk(redis, prefix, cid)
        assert await client.cancel(cid) >= 0
        st = await client.wait(cid, 30)
    # Every recipient has a result: what was sent is accepted (awaiting reports), and
    # the rest is cancelled, which is final.
    assert st.sent and st.state == "cancelled"
    accepted = (await stats(mock))["accepted"]
    assert st.counts.get("accepted", 0) == accepted < 200
    assert st.counts.get("cancelled", 0) == 200 - accepted
    assert (await stats(mock))["uids_repeated"] == 0
    assert await client.cancel(cid) == -1


async def test_scheduled_start(redis: Redis, prefix: str, mock: str) -> None:
    settings = all_providers(prefix, mock)
    client = Client(settings=settings, redis=redis)
    start_at = time.time() + 1.5
    cid = (await client.enqueue(Campaign("cloudaten", "later", NUMBERS[:5], start_at=start_at))).id
    assert (await client.status(cid)).state == "scheduled"
    async with RunningWorker(redis, settings):
        st = await client.wait(cid, 30)
    assert st.sent and st.counts == {"accepted": 5}
    messages = await call(mock, "GET", "/_mock/messages?provider=cloudaten")
    assert min(m["timestamp"] for m in messages) >= int(start_at * 1000)


async def test_transient_faults_give_one_result_each_and_no_duplicates(
    redis: Redis, prefix: str, mock: str
) -> None:
    """5xx and busy answers are retried at once; a timeout or a dropped connection may
    have reached the provider, so those recipients are parked and the list API says they
    never arrived (these faults strike before the provider looks): then they are sent."""
    faults = [["5xx", 0.04], ["timeout", 0.02], ["drop", 0.02], ["busy", 0.02]]
    await call(
        mock, "POST", "/_mock/settings",
        {"faults": faults, "fault_timeout_s": 2, "list_interval_s": 0.1},
    )  # fmt: skip
    cloudaten = {"max_attempts": 8, "timeout_seconds": 0.5, "backoff_seconds": 0.01,
                 "poll_interval_seconds": 0.15, "clock_skew_seconds": 0.1}  # fmt: skip
    settings = all_providers(prefix, mock, cloudaten=cloudaten)
    client = Client(settings=settings, redis=redis)
    cid = (await client.enqueue(Campaign("cloudaten", "hi", NUMBERS))).id
    async with RunningWorker(redis, settings, poll=True):
        st = await client.wait(cid, 60)
    assert st.sent and st.counts == {"accepted": 200} and st.parked == {}
    s = await stats(mock)
    assert s["faults"] > 0 and (s["accepted"], s["uids_repeated"]) == (200, 0)
    assert s["list_calls"] > 0


async def test_dead_letters_and_retry(redis: Redis, prefix: str, mock: str) -> None:
    await call(mock, "POST", "/_mock/settings", {"faults": [["5xx", 1.0]]})
    settings = all_providers(prefix, mock, cloudaten={"max_attempts": 2})
    client = Client(settings=settings, redis=redis)
    cid = (await client.enqueue(Campaign("cloudaten", "hi", NUMBERS[:20]))).id
    async with RunningWorker(redis, settings):
        st = await client.wait(cid, 30)
        assert st.counts == {"failed": 20}
        dead = await client.dead(cid)
        assert sorted(dead) == list(range(20)) and set(dead.values()) == {"HTTP_503: HTTP 503"}
        await call(mock, "POST", "/_mock/settings", {"faults": []})
        assert await client.retry(cid) == 20
        st = await client.wait(cid, 30)
    assert st.counts == {"accepted": 20} and await client.dead(cid) == {}
    assert (await stats(mock))["accepted"] == 20 and (await stats(mock))["uids_repeated"] == 0


async def test_a_repeated_number_waits_for_the_spacing(
    redis: Redis, prefix: str, mock: str
) -> None:
    spacing = 1.0
    settings = all_providers(prefix, mock, cloudaten={"per_number_spacing_seconds": spacing})
    client = Client(settings=settings, redis=redis)
    number = NUMBERS[7]
    first = (await client.enqueue(Campaign("cloudaten", "one", [number, NUMBERS[8]]))).id
    second = (await client.enqueue(Campaign("cloudaten", "two", [number]))).id
    async with RunningWorker(redis, settings):
        for cid in (first, second):
            assert (await client.wait(cid, 30)).counts == {"accepted": 2 if cid == first else 1}
    times = sorted(
        m["timestamp"]
        for m in await call(mock, "GET", "/_mock/messages?provider=cloudaten")
        if m["mobile"] == number
    )
    assert len(times) == 2 and times[1] - times[0] >= spacing * 1000


async def test_otp_overtakes_a_bulk_campaign(redis: Redis, prefix: str, mock: str) -> None:
    await call(mock, "POST", "/_mock/settings", {"latency_ms": 5})
    settings = all_providers(
        prefix, mock, cloudaten={"chunk_size": 20, "concurrency": 8, "rate_per_second": 200}
    )
    client = Client(settings=settings, redis=redis)
    bulk_numbers = [f"+4479111{i:05d}" for i in range(2000)]
    bulk = (await client.enqueue(Campaign("cloudaten", "bulk", bulk_numbers, lane="bulk"))).id
    async with RunningWorker(redis, settings):
        await first_chunk(redis, prefix, bulk)
        otp = (
            await client.enqueue(Campaign("cloudaten", "code 1234", [NUMBERS[0]], lane="otp"))
        ).id
        st = await client.wait(otp, 30)
        assert st.sent
        assert not (await client.status(bulk)).sent  # it overtook the bulk campaign
        await client.cancel(bulk)
