"""The worker's side of the queue against a real Redis: leases, takeover, atomic records."""

from __future__ import annotations

from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.fencing import Claim, Fence
from dispatcher.keys import GROUP, Keys
from dispatcher.model import Campaign, Result, Status
from dispatcher.queue import Lease, Queue, Settle
from dispatcher.rows import bucket

NUMBERS = [f"+4479110{i:05d}" for i in range(20)]  # two chunks of 10


async def setup(redis: Redis, settings: Settings, consumer: str = "a") -> tuple[str, Queue]:
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hi", NUMBERS))
    k = Keys(settings.prefix)
    q = Queue(redis, k, consumer, [k.at(0).queue("cloudaten")])
    await q.setup()
    return answer.id, q


async def own(redis: Redis, settings: Settings, lease: Lease, token: str = "t1") -> str:
    """Claim a freshly read entry, as a worker does before sending; its owner token."""
    fence = Fence(redis, Keys(settings.prefix))
    assert await fence.claim(lease.campaign_id, lease.entry_id, token) is Claim.OK
    return token


def accepted(index: int) -> Result:
    return Result(index, NUMBERS[index], Status.ACCEPTED, message_id=str(index), sent_at=1)


async def pending_count(redis: Redis, settings: Settings) -> int:
    info = await redis.xpending(Keys(settings.prefix).at(0).queue("cloudaten"), GROUP)
    return int(info["pending"])


async def test_read_load_and_ack(redis: Redis, settings: Settings) -> None:
    cid, q = await setup(redis, settings)
    leases = await q.read(10, 100)
    assert [(le.campaign_id, le.chunk, le.redelivered) for le in leases] == [
        (cid, 0, False),
        (cid, 1, False),
    ]
    data = await q.load(leases[0])
    assert data is not None
    assert [r.index for r in data.recipients] == list(range(10))
    assert data.meta.text == "hi"
    token = await own(redis, settings, leases[0])
    rec = await q.record(leases[0], [accepted(i) for i in range(10)], Settle.ACK, token=token)
    assert rec.new == 10 and not rec.lost
    assert await pending_count(redis, settings) == 1
    st = await Client(settings=settings, redis=redis).status(cid)
    assert st.counts == {"accepted": 10}


async def test_a_chunk_recorded_twice_counts_once(redis: Redis, settings: Settings) -> None:
    cid, q = await setup(redis, settings)
    lease = (await q.read(1, 100))[0]
    token = await own(redis, settings, lease)
    assert (await q.record(lease, [accepted(0), accepted(1)], Settle.KEEP, token=token)).new == 2
    assert await pending_count(redis, settings) == 1  # keep: recorded, still leased
    rec = await q.record(lease, [accepted(i) for i in range(10)], Settle.ACK, token=token)
    assert rec.new == 8
    assert await pending_count(redis, settings) == 0
    st = await Client(settings=settings, redis=redis).status(cid)
    assert st.counts == {"accepted": 10}
    row = await redis.hget(*bucket(Keys(settings.prefix).results(cid), 0))
    # The row leaves the number to its chunk (rows.py).
    assert row == b"a0|||||1"  # accepted, message id "0", sent at 1


async def test_requeue_sends_only_the_rest(redis: Redis, settings: Settings) -> None:
    _, q = await setup(redis, settings)
    lease = (await q.read(1, 100))[0]
    token = await own(redis, settings, lease)
    await q.record(lease, [accepted(i) for i in range(4)], Settle.REQUEUE, token=token)
    again = [le for le in await q.read(10, 100) if le.chunk == 0]
    assert len(again) == 1 and again[0].attempt == 1 and again[0].redelivered
    data = await q.load(again[0])
    assert data is not None
    rest = await q.unsettled(again[0].campaign_id, data.recipients)
    assert [r.index for r in rest] == list(range(4, 10))


async def test_takeover_after_the_lease_and_lost_lease(redis: Redis, settings: Settings) -> None:
    _, first = await setup(redis, settings, "first")
    k = Keys(settings.prefix)
    second = Queue(redis, k, "second", [k.at(0).queue("cloudaten")])
    leases = await first.read(10, 100)
    assert await second.claim(10, 60_000) == []  # not idle long enough
    assert await first.extend(leases) == set()
    taken = await second.claim(10, 0)
    assert {le.entry_id for le in taken} == {le.entry_id for le in leases}
    assert all(le.redelivered for le in taken)
    assert await first.extend(leases) == {le.entry_id for le in leases}


async def test_hold_pauses_and_resume_requeues(redis: Redis, settings: Settings) -> None:
    cid, q = await setup(redis, settings)
    client = Client(settings=settings, redis=redis)
    lease = (await q.read(1, 100))[0]
    token = await own(redis, settings, lease)
    reason = "INVALID_API_KEY from cloudaten account x"
    await q.record(lease, [accepted(0)], Settle.HOLD, token=token, reason=reason)
    st = await client.status(cid)
    assert st.state == "paused" and st.reason == "INVALID_API_KEY from cloudaten account x"
    assert await client.wait(cid, 5) == st  # a paused campaign does not keep a waiter waiting
    assert await client.resume(cid) == 1
    assert (await client.status(cid)).state == "queued"
    assert await client.resume(cid) == -1
    again = [le for le in await q.read(10, 100) if le.chunk == 0]
    assert len(again) == 1


async def test_a_hold_after_a_resume_goes_back_to_work(redis: Redis, settings: Settings) -> None:
    """A worker finds the campaign paused and sets its chunk aside; the resume runs first,
    finds nothing held, and the chunk would be stranded. The record script sees the
    campaign is no longer paused and puts the chunk back in the queue instead."""
    cid, q = await setup(redis, settings)
    client = Client(settings=settings, redis=redis)
    lease = (await q.read(1, 100))[0]
    token = await own(redis, settings, lease)
    assert await client.pause(cid)
    assert await client.resume(cid) == 0  # nothing held yet
    await q.record(lease, [], Settle.HOLD, token=token)  # the worker's late hold
    assert await redis.scard(Keys(settings.prefix).held(cid)) == 0
    again = [le for le in await q.read(10, 100) if le.chunk == 0]
    assert len(again) == 1 and again[0].redelivered
    # While it stays paused, a hold is still a hold.
    token2 = await own(redis, settings, again[0], "t2")
    assert await client.pause(cid)
    await q.record(again[0], [], Settle.HOLD, token=token2)
    assert await redis.smembers(Keys(settings.prefix).held(cid)) == {b"0"}
