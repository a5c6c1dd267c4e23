"""Campaign records in a real Redis: atomic enqueue, idempotency, status and results."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.client import CampaignNotFound, Client
from dispatcher.config import Settings
from dispatcher.keys import GROUP, Keys
from dispatcher.model import Campaign, CampaignError, CampaignStatus, Enqueued, Status
from dispatcher.staging import EnqueueInProgress
from dispatcher.store import LayoutMismatch, ensure_layout

NUMBERS = [f"+4479110{i:05d}" for i in range(25)]


async def test_enqueue_writes_campaign_chunks_and_work(redis: Redis, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hi", [*NUMBERS, "junk", NUMBERS[0]]))
    assert (answer.valid, answer.invalid, answer.duplicates, answer.chunks) == (25, 1, 1, 3)
    assert answer.recipients == 26 and not answer.existing
    k = Keys(settings.prefix)
    assert await redis.xlen(k.at(0).queue("cloudaten")) == 3
    assert await redis.hlen(k.chunks(answer.id)) == 4  # 3 chunks + the invalid index list
    st = await client.status(answer.id)
    assert (st.total, st.counts, st.pending, st.sent, st.state) == (
        26,
        {"invalid": 1},
        25,
        False,
        "queued",
    )
    assert st.duplicates == 1


async def test_rejected_campaign_writes_nothing(redis: Redis, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    with pytest.raises(CampaignError, match="text"):
        await client.enqueue({"provider": "cloudaten", "text": "", "recipients": NUMBERS})
    with pytest.raises(CampaignError, match="provider"):
        await client.enqueue({"provider": "pigeon", "text": "hi", "recipients": NUMBERS})
    assert await redis.keys(f"{settings.prefix}*") == []


async def test_idempotency_key_returns_the_first_id_even_when_racing(
    redis: Redis, settings: Settings
) -> None:
    """Of racing enqueues exactly one publishes; the others answer with it, or, while it is
    still staging, say so (EnqueueInProgress, the API's 409); a repeat then answers with it."""
    client = Client(settings=settings, redis=redis)
    c = Campaign("cloudaten", "hi", NUMBERS, idempotency_key="order-42")
    got = await asyncio.gather(*(client.enqueue(c) for _ in range(8)), return_exceptions=True)
    answers = [a for a in got if isinstance(a, Enqueued)]
    assert all(isinstance(e, EnqueueInProgress) for e in got if not isinstance(e, Enqueued))
    assert sum(not a.existing for a in answers) == 1
    first = next(a for a in answers if not a.existing)
    assert {a.id for a in answers} == {first.id}
    again = await client.enqueue(c)
    assert (again.id, again.existing, again.valid) == (first.id, True, first.valid)
    k = Keys(settings.prefix)
    assert await redis.xlen(k.at(0).queue("cloudaten")) == 3  # one campaign's chunks, not eight
    assert await redis.zcard(k.campaigns) == 1


async def test_all_invalid_campaign_is_done_at_once(redis: Redis, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hi", ["nope", "+44"]))
    st = await client.wait(answer.id, 5)
    assert st.done and st.state == "done" and st.counts == {"invalid": 2}


class Watched:
    """Counts a client's status reads and tells when its waiter got events: hooks on the
    client's own methods, the Redis server being real."""

    def __init__(self, client: Client) -> None:
        self.reads = 0
        self.read = asyncio.Event()
        self.woke = asyncio.Event()
        status, xread = client.store.status, client.store.redis.xread

        async def counted(cid: str) -> CampaignStatus | None:
            self.reads += 1
            self.read.set()
            return await status(cid)

        async def watched(*args: Any, **kwargs: Any) -> Any:
            got = await xread(*args, **kwargs)
            if got:
                self.woke.set()
            return got

        client.store.status = counted  # type: ignore[method-assign]
        client.store.redis.xread = watched  # type: ignore[method-assign]


async def test_wait_reads_the_status_only_when_an_event_can_end_it(
    redis: Redis, settings: Settings
) -> None:
    """Chunks' progress events, and another campaign's ``sent``, do not make the waiter
    read the status (it did once per event: 1,000 reads for 100,000 one-mobile
    recipients); this campaign's ``sent`` event ends the wait."""
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hi", NUMBERS[:3]))
    k = Keys(settings.prefix)
    events = k.part(answer.id).events
    seen = Watched(client)
    t0 = time.monotonic()
    waiting = asyncio.create_task(client.wait(answer.id, 60))
    await seen.read.wait()
    for n in range(40):  # each event on its own: the waiter wakes for each
        seen.woke.clear()
        await redis.xadd(events, {"c": answer.id, "e": "chunk", "n": n % 3})
        await asyncio.wait_for(seen.woke.wait(), 10)
        seen.woke.clear()
        await redis.xadd(events, {"c": "another", "e": "sent", "n": 0})
        await asyncio.wait_for(seen.woke.wait(), 10)
    assert not waiting.done()
    await redis.hset(k.counts(answer.id), "accepted", 3)
    await redis.xadd(events, {"c": answer.id, "e": "sent", "n": 2})
    st = await asyncio.wait_for(waiting, 30)
    assert st.sent and st.counts == {"accepted": 3}
    # the first read, the one the sent event asked for, and one a second at most
    assert seen.reads <= 2 + int(time.monotonic() - t0) + 1


async def test_wait_notices_a_change_no_event_tells(redis: Redis, settings: Settings) -> None:
    """A campaign removed under a waiter (no event says so) ends the wait at the next
    once-a-second read of the status."""
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hi", NUMBERS[:3]))
    seen = Watched(client)
    waiting = asyncio.create_task(client.wait(answer.id, 60))
    await seen.read.wait()
    await redis.delete(Keys(settings.prefix).meta(answer.id))
    with pytest.raises(CampaignNotFound):
        await asyncio.wait_for(waiting, 30)
    assert seen.reads == 2


async def test_results_in_index_order_with_pending(redis: Redis, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    recipients = ["bad0", NUMBERS[0], NUMBERS[1], "bad3", *NUMBERS[2:12], "bad14"]
    answer = await client.enqueue(Campaign("cloudaten", "hi", recipients))
    got = [r async for r in client.results(answer.id)]
    assert [r.index for r in got] == list(range(15))
    assert [r.status for r in got if r.index in (0, 3, 14)] == [Status.INVALID] * 3
    assert {r.status for r in got if r.index not in (0, 3, 14)} == {Status.PENDING}
    assert got[1].number == NUMBERS[0]


async def test_unknown_campaign(redis: Redis, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    with pytest.raises(CampaignNotFound):
        await client.status("nope")
    with pytest.raises(CampaignNotFound):
        [r async for r in client.results("nope")]


async def test_chunk_blobs_and_group(redis: Redis, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hi", NUMBERS[:2]))
    k = Keys(settings.prefix)
    # A run of plain numbers is stored as one (chunkblob.py).
    assert await redis.hget(k.chunks(answer.id), "0") == f"=0\n{NUMBERS[0]}\n{NUMBERS[1]}".encode()
    groups = await redis.xinfo_groups(k.at(0).queue("cloudaten"))
    assert [g["name"] for g in groups] == [GROUP.encode()]


async def test_a_process_with_other_partitions_is_refused(redis: Redis, prefix: str) -> None:
    await ensure_layout(redis, Keys(prefix, 4))  # the first records its layout
    await ensure_layout(redis, Keys(prefix, 4))  # the same: fine
    with pytest.raises(LayoutMismatch, match=r"uses 1 but .* use 4; set partitions = 4$"):
        await ensure_layout(redis, Keys(prefix))
    await ensure_layout(redis, Keys(f"{prefix}other:"))  # another prefix has its own
