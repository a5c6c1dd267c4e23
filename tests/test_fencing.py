"""Fencing against a real Redis: owner tokens, authorisations, takeovers that park what the
previous owner may have sent, and a campaign that vanished."""

from __future__ import annotations

from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.fencing import Claim, Fence, Permits
from dispatcher.keys import Keys
from dispatcher.model import Campaign, Result, Status
from dispatcher.queue import Lease, Queue, Settle, Track
from dispatcher.unknown import Park, UnknownStore, now_ms

NUMBERS = [f"+4479110{i:05d}" for i in range(10)]


async def first_lease(redis: Redis, settings: Settings) -> tuple[Lease, Queue, Fence]:
    client = Client(settings=settings, redis=redis)
    await client.enqueue(Campaign("cloudaten", "hi", NUMBERS))
    k = Keys(settings.prefix)
    q = Queue(redis, k, "a", [k.at(0).queue("cloudaten")])
    await q.setup()
    return (await q.read(1, 100))[0], q, Fence(redis, k)


def accepted(index: int) -> Result:
    return Result(index, NUMBERS[index], Status.ACCEPTED, message_id=f"m{index}", sent_at=1)


async def test_a_fresh_entry_has_one_owner(redis: Redis, settings: Settings) -> None:
    lease, _q, fence = await first_lease(redis, settings)
    cid, entry = lease.campaign_id, lease.entry_id
    assert await fence.claim(cid, entry, "a:1") is Claim.OK
    assert await fence.claim(cid, entry, "b:1") is Claim.LOST
    mine, theirs = Permits("a:1"), Permits("b:1")
    assert await fence.authorize(cid, entry, mine, {0: 0, 1: 1}) is Claim.OK
    assert await fence.authorize(cid, entry, theirs, {0: 0}) is Claim.LOST
    assert set(mine.granted) == {0, 1} and theirs.granted == {}


async def test_takeover_parks_what_was_authorised_and_not_recorded(
    redis: Redis, settings: Settings
) -> None:
    lease, q, fence = await first_lease(redis, settings)
    cid, entry = lease.campaign_id, lease.entry_id
    k = Keys(settings.prefix)
    zkey = k.at(0).unknown("cloudaten", "default")
    await fence.claim(cid, entry, "a:1")
    first = Permits("a:1")
    assert await fence.authorize(cid, entry, first, {p: p for p in range(6)}) is Claim.OK
    # Recipients 0 and 1 answered and were written; 2-5 may be on their way; 6-9 never left.
    await q.record(lease, [accepted(0), accepted(1)], Settle.KEEP, token="a:1")
    took = await fence.take_over(
        cid, lease.chunk, entry, "b:1", zkey, skew_s=1.0, late_s=10.0, wait_s=60.0
    )
    # Parked: what may be on its way. Handed: everything the old owner was authorised to
    # send, recorded or not, so that the successor sends none of it.
    assert took == (Claim.OK, 4, frozenset(range(6)))
    entries = await UnknownStore(redis, k).entries(cid)
    assert sorted(entries) == [2, 3, 4, 5]
    at = first.granted[2][1]
    # The window: authorised at ``at``, it may have left within a second and arrived within
    # the 10-s timeout after that, give or take the 1-s skew; 60 s to settle, from now.
    expires = entries[2].expires_ms
    assert entries[2] == Park(2, 0, at - 1000, at + 11_000 + 1000, expires, "takeover")
    assert at + 60_000 <= expires <= now_ms() + 60_000
    assert await redis.zscore(zkey, cid) == min(p.expires_ms for p in entries.values())
    assert (await Client(settings=settings, redis=redis).status(cid)).parked == {"takeover": 4}
    # The old owner is fenced out: it may not send, and may not settle the entry.
    assert await fence.authorize(cid, entry, Permits("a:1"), {6: 6}) is Claim.LOST
    rec = await q.record(lease, [accepted(2)], Settle.ACK, token="a:1")
    assert rec.lost and rec.new == 1  # an answer it got still counts, and settles 2
    assert sorted(await UnknownStore(redis, k).entries(cid)) == [3, 4, 5]
    # The running total keeps every park, settled since or not (what benchmarks/chaos.py
    # bounds the duplicates with).
    assert await redis.hget(k.meta(cid), "parked_ever") == b"4"
    loaded = await q.load(lease)
    assert loaded is not None
    rest = await q.unsettled(cid, loaded.recipients)
    assert [r.index for r in rest] == [6, 7, 8, 9]  # the successor sends only these
    # The successor settles the entry; a late claim by anyone finds it done.
    rec = await q.record(lease, [], Settle.ACK, token="b:1", track=Track("default"))
    assert not rec.lost
    assert await fence.claim(cid, entry, "c:1") is Claim.LOST
    again = await fence.take_over(
        cid, lease.chunk, entry, "c:1", zkey, skew_s=1.0, late_s=10.0, wait_s=60.0
    )
    assert again == (Claim.LOST, 0, frozenset())


async def test_a_vanished_campaign_is_written_nothing(redis: Redis, settings: Settings) -> None:
    lease, q, fence = await first_lease(redis, settings)
    cid, entry = lease.campaign_id, lease.entry_id
    await fence.claim(cid, entry, "a:1")
    permits = Permits("a:1")
    await fence.authorize(cid, entry, permits, {0: 0})
    # Redis lost the campaign (restarted empty, say): every key of it is gone.
    k = Keys(settings.prefix)
    names = [await redis.keys(f"{settings.prefix}{{{cid}}}:*")]
    await redis.delete(*names[0])
    assert await fence.authorize(cid, entry, permits, {1: 1}) is Claim.GONE
    assert await fence.claim(cid, "1-1", "a:1") is Claim.GONE
    zkey = k.at(0).unknown("cloudaten", "default")
    took = await fence.take_over(cid, 0, entry, "b:1", zkey, skew_s=1, late_s=1, wait_s=1)
    assert took == (Claim.GONE, 0, frozenset())
    rec = await q.record(lease, [accepted(0)], Settle.ACK, token="a:1", track=Track("default"))
    assert rec.gone
    assert await redis.keys(f"{settings.prefix}{{{cid}}}:*") == []
    assert await redis.zscore(zkey, cid) is None


async def test_a_pause_stops_a_running_chunk_at_its_next_authorisation(
    redis: Redis, settings: Settings
) -> None:
    lease, _q, fence = await first_lease(redis, settings)
    cid, entry = lease.campaign_id, lease.entry_id
    client = Client(settings=settings, redis=redis)
    await fence.claim(cid, entry, "a:1")
    permits = Permits("a:1")
    assert await fence.authorize(cid, entry, permits, {0: 0}) is Claim.OK
    assert await client.pause(cid)
    assert await fence.authorize(cid, entry, permits, {1: 1}) is Claim.HALTED
    assert set(permits.granted) == {0}  # nothing more may leave
    await client.resume(cid)
    assert await fence.authorize(cid, entry, permits, {1: 1}) is Claim.OK
    assert await client.cancel(cid) >= 0
    assert await fence.authorize(cid, entry, permits, {2: 2}) is Claim.HALTED


async def test_a_second_takeover_still_hands_on_what_the_first_owner_may_have_sent(
    redis: Redis, settings: Settings
) -> None:
    """What the first takeover parked may have moved on (held for an operator, queued
    again) before the successor itself dies: the next owner of the entry must still not
    send it, nor park it a second time."""
    lease, q, fence = await first_lease(redis, settings)
    cid, entry = lease.campaign_id, lease.entry_id
    k = Keys(settings.prefix)
    zkey = k.at(0).unknown("cloudaten", "default")
    store = UnknownStore(redis, k)
    await fence.claim(cid, entry, "a:1")
    assert await fence.authorize(cid, entry, Permits("a:1"), {p: p for p in range(6)}) is Claim.OK
    took = await fence.take_over(cid, 0, entry, "b:1", zkey, skew_s=0, late_s=0, wait_s=0)
    assert took == (Claim.OK, 6, frozenset(range(6)))
    parks = (await store.entries(cid)).values()
    held, _paused = await store.hold(cid, k.at(0).queue("cloudaten"), parks, "for a test")
    assert held == 6 and await store.entries(cid) == {}  # unparked: set aside for resume
    assert await Client(settings=settings, redis=redis).resume(cid) == 1  # queued again
    assert await fence.authorize(cid, entry, Permits("b:1"), {6: 6, 7: 7}) is Claim.OK
    took = await fence.take_over(cid, 0, entry, "c:1", zkey, skew_s=0, late_s=0, wait_s=0)
    assert took == (Claim.OK, 2, frozenset(range(8)))  # 6 and 7 parked; 0-5 not again
    assert sorted(await store.entries(cid)) == [6, 7]
    # Settled, the entry leaves nothing behind in the flight hash.
    await q.record(lease, [], Settle.ACK, token="c:1", track=Track("default"))
    assert await redis.hgetall(k.flight(cid)) == {}
