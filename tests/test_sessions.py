"""Receipts stored in batches (sessions._Batches) against a real Redis: a burst goes in a
few batches, each receipt gets its own outcome, and a failed batch fails only its own."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.keys import Keys
from dispatcher.model import Campaign, Result, Status
from dispatcher.providers.base import Report
from dispatcher.queue import Queue, Settle, Track
from dispatcher.sessions import _Batches
from dispatcher.tracking import BATCH, Applied, Tracker
from tests.conftest import make_settings

N = 400  # four chunks of 100: what an enqueue admits at once (store.ENQUEUE_ADMITS)


async def sent(redis: Redis, settings: Settings) -> str:
    """N recipients recorded accepted, message ids ``m<i>``."""
    numbers = [f"+4479110{i:05d}" for i in range(N)]
    cid = (await Client(settings=settings, redis=redis).enqueue(
        Campaign("cloudaten", "hi", numbers)
    )).id  # fmt: skip
    k = Keys(settings.prefix)
    q = Queue(redis, k, "w", [k.at(0).queue("cloudaten")])
    await q.setup()
    for lease in await q.read(N, 100):
        first = lease.chunk * settings.provider("cloudaten").chunk_size
        results = [Result(i, numbers[i], Status.ACCEPTED, f"m{i}", sent_at=1)
                   for i in range(first, min(first + 100, N))]  # fmt: skip
        await q.record(lease, results, Settle.ACK, track=Track("default", True, True))
    return cid


class Counted(Tracker):
    """A tracker that notes the size of each batch it is given."""

    sizes: list[int]

    async def apply_batch(
        self, provider: str, reports: Sequence[Report], *, index_messages: bool = False
    ) -> list[Applied]:
        self.sizes.append(len(reports))
        return await super().apply_batch(provider, reports, index_messages=index_messages)


async def test_a_burst_is_stored_in_a_few_batches(redis: Redis, prefix: str) -> None:
    settings = make_settings(prefix, chunk_size=100)
    cid = await sent(redis, settings)
    tracker = Counted(redis, Keys(prefix))
    tracker.sizes = []
    batches = _Batches(tracker, "cloudaten")
    receipts = [Report(Status.DELIVERED, "DELIVRD", message_id=f"m{i}") for i in range(N)]
    receipts.append(Report(Status.DELIVERED, "DELIVRD", message_id="not-ours"))
    got = await asyncio.gather(*(batches.apply(r) for r in receipts))
    assert got == [Applied.APPLIED] * N + [Applied.UNKNOWN]
    # the first alone (nothing else waited yet), then the rest at most BATCH a time
    assert sum(tracker.sizes) == N + 1 and max(tracker.sizes) <= BATCH
    assert len(tracker.sizes) <= 2 + N // BATCH
    st = await Client(settings=settings, redis=redis).status(cid)
    assert st.done and st.finals == {"delivered": N}
    assert batches.storing is None and not batches.waiting
    # a lone receipt later is stored at once, on its own
    assert await batches.apply(receipts[0]) is Applied.STALE
    assert tracker.sizes[-1] == 1


async def test_a_failed_batch_fails_its_receipts_and_the_next_is_stored(
    redis: Redis, prefix: str
) -> None:
    settings = make_settings(prefix, chunk_size=100)
    await sent(redis, settings)
    down = Redis.from_url("redis://127.0.0.1:1")  # nothing listens: every call fails
    failing = _Batches(Tracker(down, Keys(prefix)), "cloudaten")
    receipts = [Report(Status.DELIVERED, "DELIVRD", message_id=f"m{i}") for i in range(5)]
    got = await asyncio.gather(*(failing.apply(r) for r in receipts), return_exceptions=True)
    assert all(isinstance(g, RedisConnectionError) for g in got)
    assert failing.storing is None and not failing.waiting
    await down.aclose()
    working = _Batches(Tracker(redis, Keys(prefix)), "cloudaten")
    assert await asyncio.gather(*(working.apply(r) for r in receipts)) == [Applied.APPLIED] * 5
