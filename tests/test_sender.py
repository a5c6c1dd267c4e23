"""The sender against the real mock and a real Redis: when it lets the next chunk get ready."""

from __future__ import annotations

from redis.asyncio import Redis

from dispatcher.chunkrun import ChunkRun
from dispatcher.client import Client
from dispatcher.fencing import Claim, Fence, Permits
from dispatcher.keys import Keys
from dispatcher.model import Campaign
from dispatcher.queue import Queue
from dispatcher.sender import Sender
from tests.conftest import make_settings


async def test_the_next_chunk_may_get_ready_as_the_first_request_leaves(
    redis: Redis, prefix: str, mock: str
) -> None:
    """``ready`` is called once the chunk's requests are built and the first is leaving,
    before any answer: not when the whole chunk is answered."""
    settings = make_settings(prefix, f"{mock}/cloudaten")
    numbers = [f"+4479110{i:05d}" for i in range(5)]
    await Client(settings=settings, redis=redis).enqueue(Campaign("cloudaten", "hi", numbers))
    keys = Keys(prefix)
    queue = Queue(redis, keys, "w", [keys.at(0).queue("cloudaten")])
    await queue.setup()
    lease = (await queue.read(1, 1000))[0]
    assert await Fence(redis, keys).claim(lease.campaign_id, lease.entry_id, "t") is Claim.OK
    data = await queue.load(lease)
    assert data is not None
    sender = Sender(redis, settings)
    account = sender.account("cloudaten", "default")
    run = ChunkRun(lease, account, data.recipients, account.codec, permits=Permits("t"))
    answered_then: list[int] = []
    try:
        await sender.send_all(run, data.meta, lambda: answered_then.append(len(run.outcomes)))
    finally:
        await sender.close()
    assert answered_then[0] == 0 and len(run.requests) == 5
    assert len(run.outcomes) == 5 and run.turn is None
