"""Retention against a real Redis: a finished campaign past its retention is archived, its
keys and index entries are gone, and status and results read it back unchanged."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.client import CampaignNotFound, Client
from dispatcher.config import Settings
from dispatcher.fencing import Claim, Fence
from dispatcher.keys import Keys, batch_member
from dispatcher.model import Campaign, CampaignStatus, Result, Status
from dispatcher.msgindex import MessageIndex
from dispatcher.providers.base import Report
from dispatcher.queue import Queue, Settle, Track
from dispatcher.retention import DAY_MS, NotFinished, Retention
from dispatcher.store import as_str, now_ms
from dispatcher.tracking import Tracker
from tests.conftest import RunningWorker, eventually

NUMBERS = [f"+4479110{i:05d}" for i in range(12)] + ["12"]  # two chunks and one invalid
OTHER = "0ther0ther0ther0"  # another campaign's entries, which must stay


@pytest.fixture
def kept(settings: Settings, tmp_path: Path) -> Settings:
    return replace(settings, archive_dir=str(tmp_path / "archive"))


async def enqueue(client: Client, days: int | None = 0, key: str | None = None) -> str:
    campaign = Campaign("cloudaten", "hi", NUMBERS, retention_days=days, idempotency_key=key)
    return (await client.enqueue(campaign)).id


async def send(
    redis: Redis, settings: Settings, cid: str, status: Status = Status.ACCEPTED
) -> None:
    """Both chunks sent as a worker would: results with message ids (indexed for the list
    API, the campaign listed as open) and a provider batch id (the batches and responses
    sets)."""
    k = Keys(settings.prefix)
    q = Queue(redis, k, "w", [k.at(0).queue("cloudaten")])
    await q.setup()
    fence = Fence(redis, k)
    for lease in await q.read(10, 100):
        data = await q.load(lease)
        assert data is not None
        token = f"t{lease.entry_id}"
        assert await fence.claim(cid, lease.entry_id, token) is Claim.OK
        results = [
            Result(r.index, r.number, status, f"{cid}-{r.index}", sent_at=1,
                   batch_id=f"B{lease.chunk}")
            for r in data.recipients
        ]  # fmt: skip
        track = Track("default", index_messages=True, list_open=True)
        rec = await q.record(lease, results, Settle.ACK, token=token, track=track)
        assert rec.new == len(results) and not rec.lost


async def deliver(redis: Redis, settings: Settings, cid: str, n: int = 12) -> None:
    tracker = Tracker(redis, Keys(settings.prefix))
    for i in range(n):
        report = Report(Status.DELIVERED, "DELIVRD", message_id=f"{cid}-{i}", campaign_id=cid,
                        index=i, at=100 + i)  # fmt: skip
        await tracker.apply("cloudaten", report, index_message=True)


async def plant(redis: Redis, settings: Settings, cid: str) -> None:
    """Entries that only a parked recipient or another campaign would have made."""
    k = Keys(settings.prefix)
    await redis.zadd(k.at(0).unknown("cloudaten", "default"), {cid: 1, OTHER: 2})
    await MessageIndex(redis, k).add("cloudaten", {"other-mid": f"{OTHER}.0"})
    await redis.zadd(k.at(0).batches("cloudaten", "default"), {batch_member("B9", OTHER, 0): 1})
    await redis.zadd(k.at(0).open("cloudaten", "default"), {OTHER: 1})


async def mentions(redis: Redis, prefix: str, cid: str) -> list[str]:
    """Every key of the prefix named after ``cid`` or holding it in a field, member or
    value. The events stream, a log capped by length, is left out."""
    found = []
    async for raw in redis.scan_iter(match=f"{prefix}*", count=1000):
        key = as_str(raw)
        if cid in key:
            found.append(key)
            continue
        kind = as_str(await redis.type(key))
        content: Any = []
        if kind == "hash":
            content = [x for kv in (await redis.hgetall(key)).items() for x in kv]
        elif kind == "zset":
            content = await redis.zrange(key, 0, -1)
        elif kind == "set":
            content = await redis.smembers(key)
        elif kind == "string":
            content = [await redis.get(key)]
        elif kind == "stream" and not key.endswith(":events"):
            entries: Any = await redis.xrange(key)
            content = [v for _id, fields in entries for v in fields.values()]
        if any(cid in as_str(x) for x in content):
            found.append(key)
    return found


def same_but_archived(after: CampaignStatus, before: CampaignStatus) -> bool:
    return after.archived_at is not None and replace(after, archived_at=None) == before


async def done_campaign(redis: Redis, settings: Settings, client: Client, **kw: Any) -> str:
    cid = await enqueue(client, **kw)
    await send(redis, settings, cid)
    await deliver(redis, settings, cid)
    await plant(redis, settings, cid)
    assert (await client.status(cid)).done
    return cid


async def test_a_done_campaign_past_retention_is_archived_and_gone(
    redis: Redis, kept: Settings, prefix: str
) -> None:
    client = Client(settings=kept, redis=redis)
    cid = await done_campaign(redis, kept, client, key="order-77")
    running = await enqueue(client, days=0)  # not sent: must be left alone
    assert await mentions(redis, prefix, cid)  # msgidx, open, batches, responses, unknown, idem…
    before = [r async for r in client.results(cid)]
    status = await client.status(cid)
    assert {r.status for r in before} == {"delivered", "invalid"} and len(before) == 13

    swept = await Retention(redis, kept).sweep()
    assert swept.archived == [cid] and swept.checked == 2 and swept.wrapped
    assert await mentions(redis, prefix, cid) == []  # no key, no index entry, no idem key
    assert [r async for r in client.results(cid)] == before
    assert same_but_archived(await client.status(cid), status)
    assert (await client.status(running)).state == "queued"
    assert await redis.exists(Keys(prefix).meta(running))
    k = Keys(prefix)  # the other campaign's entries stay
    assert await MessageIndex(redis, k).get("cloudaten", "other-mid") == (OTHER, 0)
    assert await redis.zscore(k.at(0).unknown("cloudaten", "default"), OTHER) == 2
    assert await redis.zscore(k.at(0).open("cloudaten", "default"), OTHER) == 1
    assert await redis.zcard(k.at(0).batches("cloudaten", "default")) == 1
    # The idempotency key is free again: a new campaign, not the archived one.
    assert (await client.enqueue(Campaign("cloudaten", "hi", NUMBERS[:1],
                                          idempotency_key="order-77"))).id != cid  # fmt: skip


async def test_not_before_its_retention_is_over(redis: Redis, kept: Settings) -> None:
    client = Client(settings=kept, redis=redis)
    cid = await done_campaign(redis, kept, client, days=2)
    retention = Retention(redis, kept)
    assert (await retention.sweep()).archived == []
    meta = await client.store.meta(cid)
    assert now_ms() - 5000 < int(meta["done_at"]) <= now_ms()  # first seen finished: now
    await redis.hset(Keys(kept.prefix).meta(cid), "done_at", now_ms() - 2 * DAY_MS - 1)
    assert (await retention.sweep()).archived == [cid]


async def test_unfinished_campaigns_are_left_alone_unless_forced(
    redis: Redis, kept: Settings, prefix: str
) -> None:
    client = Client(settings=kept, redis=redis)
    cid = await enqueue(client)
    await send(redis, kept, cid)  # sent, no report yet: not finished
    await deliver(redis, kept, cid, n=3)
    assert (await Retention(redis, kept).sweep()).archived == []
    with pytest.raises(NotFinished, match=f"campaign {cid} is not finished .* 9 without a final"):
        await client.archive(cid)
    before = [r async for r in client.results(cid)]
    await client.archive(cid, force=True)
    assert await mentions(redis, prefix, cid) == []
    assert [r async for r in client.results(cid)] == before
    assert (await client.status(cid)).state == "sent"


async def test_a_cancelled_campaign_is_finished_once_every_recipient_is_recorded(
    redis: Redis, kept: Settings, prefix: str
) -> None:
    client = Client(settings=kept, redis=redis)
    cid = await enqueue(client)
    await send(redis, kept, cid)  # accepted: delivery reports would still come
    assert (await Retention(redis, kept).sweep()).archived == []
    await client.cancel(cid)
    assert (await Retention(redis, kept).sweep()).archived == [cid]
    st = await client.status(cid)
    assert st.state == "cancelled" and st.archived_at is not None
    assert await mentions(redis, prefix, cid) == []


@pytest.mark.parametrize("steps", [1, 2, 3])
async def test_a_crash_between_steps_is_finished_by_the_next_sweep(
    redis: Redis, kept: Settings, prefix: str, steps: int
) -> None:
    client = Client(settings=kept, redis=redis)
    cid = await done_campaign(redis, kept, client)
    before = [r async for r in client.results(cid)]
    retention = Retention(redis, kept)
    meta = await client.store.meta(cid)
    path = await retention.write(cid, meta)  # step 1, then a crash after step `steps`
    written = path.stat().st_mtime_ns
    if steps >= 2:
        await retention.trim(cid, meta, retention._redis_message_ids(cid, meta), work=False)
    if steps >= 3:
        await retention.drop(cid, meta)
    assert [r async for r in client.results(cid)] == before  # readers see no gap meanwhile
    assert (await retention.sweep()).archived == ([] if steps == 3 else [cid])
    assert await mentions(redis, prefix, cid) == []
    assert path.stat().st_mtime_ns == written  # the file was there and current: kept
    assert [r async for r in client.results(cid)] == before


async def test_purge_removes_keys_index_entries_and_the_file(
    redis: Redis, kept: Settings, prefix: str
) -> None:
    client = Client(settings=kept, redis=redis)
    archived = await done_campaign(redis, kept, client)
    path = await client.archive(archived)
    assert path.is_file()
    late = f"{archived}-3"  # its message id written again by a report that raced the archive
    await MessageIndex(redis, Keys(prefix)).add("cloudaten", {late: f"{archived}.3"})
    assert await client.purge(archived)  # from the file: even a late index entry goes
    assert not path.exists() and await mentions(redis, prefix, archived) == []
    with pytest.raises(CampaignNotFound):
        await client.status(archived)
    with pytest.raises(CampaignNotFound):
        await client.purge(archived)
    running = await enqueue(client)
    await send(redis, kept, running)
    with pytest.raises(NotFinished):
        await client.purge(running)
    assert not await client.purge(running, force=True)  # it had no archive file
    assert await mentions(redis, prefix, running) == []


async def test_sweeps_are_bounded_and_go_on_where_they_stopped(
    redis: Redis, kept: Settings, prefix: str
) -> None:
    client = Client(settings=kept, redis=redis)
    empty = [
        (await client.enqueue(Campaign("cloudaten", "hi", ["12"], retention_days=0))).id
        for _ in range(5)
    ]
    keep = await enqueue(client, days=0)  # queued: never archived
    retention = Retention(redis, kept)
    first = await retention.sweep(most=2)
    assert len(first.archived) == 2 and not first.wrapped and first.next == 0
    # Nothing to send: done when enqueued, so its retention counted from then.
    header = await retention.archive.header(first.archived[0])
    assert header is not None and header["meta"]["done_at"] == header["meta"]["created_at"]
    second = await retention.sweep(most=2)
    third = await retention.sweep(most=2)
    assert sorted(first.archived + second.archived + third.archived) == sorted(empty)
    assert third.wrapped and await redis.get(Keys(prefix).retention_cursor) == b"0"
    assert await client.status(keep)
    for cid in empty:
        assert (await client.status(cid)).archived_at is not None


async def test_the_worker_sweeps(redis: Redis, kept: Settings, prefix: str) -> None:
    fast = replace(kept, worker=replace(kept.worker, retention_sweep_seconds=0.05))
    client = Client(settings=fast, redis=redis)
    cid = (await client.enqueue(Campaign("cloudaten", "hi", ["12"], retention_days=0))).id
    async with RunningWorker(redis, fast):
        await eventually(lambda: client.retention.archive.exists(cid), what="the sweep")
        await eventually(lambda: mentions(redis, prefix, cid), lambda got: got == [],
                         what="its keys gone")  # fmt: skip


async def test_a_pointer_to_no_campaign_is_dropped_one_still_staging_kept(
    redis: Redis, kept: Settings, prefix: str
) -> None:
    k = Keys(prefix)
    await redis.zadd(k.campaigns, {"crashed0": 1, "staging0": 2})  # an enqueue that died
    await redis.hset(k.meta("staging0"), "state", "staging")  # one still being written
    swept = await Retention(redis, kept).sweep()
    assert swept.archived == [] and swept.checked == 2 and swept.wrapped
    assert await redis.zrange(k.campaigns, 0, -1) == [b"staging0"]


async def test_the_result_that_finishes_a_campaign_notes_when(redis: Redis, kept: Settings) -> None:
    client = Client(settings=kept, redis=redis)
    cid = await enqueue(client, days=1)
    await send(redis, kept, cid, Status.REJECTED)  # final at once: done by the record script
    assert (await client.status(cid)).done
    assert now_ms() - 5000 < int((await client.store.meta(cid))["done_at"]) <= now_ms()
    assert (await Retention(redis, kept).sweep()).archived == []  # a day to go
