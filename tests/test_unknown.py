"""Parked recipients against a real Redis: found, sent again, held, expired — each once,
however many workers race to resolve them."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.fencing import Fence, Permits
from dispatcher.keys import Keys
from dispatcher.model import Campaign, Result, Status
from dispatcher.msgindex import MessageIndex
from dispatcher.queue import Queue
from dispatcher.store import as_str
from dispatcher.unknown import Settler, UnknownStore, now_ms

NUMBERS = [f"+4479110{i:05d}" for i in range(25)]  # chunks of 10: 0-9, 10-19, 20-24


async def park_all(redis: Redis, settings: Settings, on_unknown: str = "resend") -> str:
    """Enqueue, read and authorise every chunk, then take them all over: every recipient is
    parked (unknown fate, window closed, expired)."""
    client = Client(settings=settings, redis=redis)
    cid = (await client.enqueue(Campaign("cloudaten", "hi", NUMBERS, on_unknown=on_unknown))).id
    k = Keys(settings.prefix)
    q = Queue(redis, k, "a", [k.at(0).queue("cloudaten")])
    fence = Fence(redis, k)
    for lease in await q.read(10, 100):
        await fence.claim(cid, lease.entry_id, "a:1")
        first = lease.chunk * 10
        ahead = {p: first + p for p in range(min(10, 25 - first))}
        await fence.authorize(cid, lease.entry_id, Permits("a:1"), ahead)
        await fence.take_over(
            cid, lease.chunk, lease.entry_id, "b:1", k.at(0).unknown("cloudaten", "default"),
            skew_s=0, late_s=-5, wait_s=0,
        )  # fmt: skip
    assert len(await UnknownStore(redis, k).entries(cid)) == 25
    return cid


async def entries(redis: Redis, stream: str) -> list[dict[str, str]]:
    got: Any = await redis.xrange(stream)
    return [{as_str(a): as_str(b) for a, b in fields.items()} for _id, fields in got]


async def test_found_settles_only_what_is_parked(redis: Redis, settings: Settings) -> None:
    cid = await park_all(redis, settings)
    store = UnknownStore(redis, Keys(settings.prefix))
    found = [Result(i, NUMBERS[i], Status.ACCEPTED, f"sid{i}", sent_at=1) for i in (3, 4)]
    assert await store.found(cid, "cloudaten", found) == 2
    assert await store.found(cid, "cloudaten", found) == 0  # a second word changes nothing
    st = await Client(settings=settings, redis=redis).status(cid)
    assert st.counts == {"accepted": 2} and st.parked == {"takeover": 23}
    index = MessageIndex(redis, Keys(settings.prefix))
    assert await index.get("cloudaten", "sid3") == (cid, 3)


async def test_racing_resends_queue_each_recipient_once(redis: Redis, settings: Settings) -> None:
    cid = await park_all(redis, settings)
    k = Keys(settings.prefix)
    store = UnknownStore(redis, k)
    stream = k.at(0).queue("cloudaten")
    parks = list((await store.entries(cid)).values())
    before = len(await entries(redis, stream))
    moved = await asyncio.gather(*(store.send_again(cid, stream, parks) for _ in range(5)))
    assert sum(moved) == 25
    queued = (await entries(redis, stream))[before:]
    assert sorted((e["n"], e["i"]) for e in queued) == [("0", "0-9"), ("1", "10-19"),
                                                        ("2", "20-24")]  # fmt: skip
    st = await Client(settings=settings, redis=redis).status(cid)
    assert st.parked == {} and st.pending == 25


async def test_expired_with_hold_pauses_and_resume_sends_them(
    redis: Redis, settings: Settings
) -> None:
    cid = await park_all(redis, settings, on_unknown="hold")
    k = Keys(settings.prefix)
    settler = Settler(redis, settings, UnknownStore(redis, k))
    assert await settler.expire("cloudaten", "sms", "default") == 25
    client = Client(settings=settings, redis=redis)
    st = await client.status(cid)
    assert st.state == "paused" and st.parked == {}
    assert st.reason is not None and st.reason.startswith("25 recipient(s) may or may not")
    assert "resume sends them again" in st.reason
    assert await redis.zscore(k.at(0).unknown("cloudaten", "default"), cid) is None
    stream = k.at(0).queue("cloudaten")
    before = len(await entries(redis, stream))
    assert await client.resume(cid) == 3
    queued = (await entries(redis, stream))[before:]
    assert sorted(e["i"] for e in queued) == ["0-9", "10-19", "20-24"]


async def test_expired_with_resend_queues_them_again(redis: Redis, settings: Settings) -> None:
    cid = await park_all(redis, settings, on_unknown="resend")
    k = Keys(settings.prefix)
    settler = Settler(redis, settings, UnknownStore(redis, k))
    assert await settler.expire("cloudaten", "sms", "default") == 25
    assert await settler.expire("cloudaten", "sms", "default") == 0
    st = await Client(settings=settings, redis=redis).status(cid)
    assert st.state == "queued" and st.parked == {}


async def test_nothing_expires_before_its_time(redis: Redis, settings: Settings) -> None:
    cid = await park_all(redis, settings)
    k = Keys(settings.prefix)
    zkey = k.at(0).unknown("cloudaten", "default")
    # Push every expiry an hour ahead, as a long unknown_wait_seconds would.
    later = now_ms() + 3_600_000
    for index, value in (await redis.hgetall(k.parked(cid))).items():
        chunk, start, until, _expires, why = as_str(value).split("\t")
        await redis.hset(k.parked(cid), index, "\t".join([chunk, start, until, str(later), why]))
    await UnknownStore(redis, k).rescore(cid, zkey)
    assert await redis.zscore(zkey, cid) == later
    settler = Settler(redis, settings, UnknownStore(redis, k))
    assert await settler.expire("cloudaten", "sms", "default") == 0
    assert (await Client(settings=settings, redis=redis).status(cid)).parked == {"takeover": 25}


async def test_found_for_a_campaign_that_is_gone_writes_nothing(
    redis: Redis, settings: Settings
) -> None:
    store = UnknownStore(redis, Keys(settings.prefix))
    result = Result(0, "+447900000000", Status.ACCEPTED, "m-1")
    assert await store.found("gone", "cloudaten", [result]) == 0
    assert not await redis.keys(f"{Keys(settings.prefix).results('gone')}*")
