"""When a sending chunk writes its answered results (recording.py), against a real Redis:
at most every FLUSH_EVERY_S, never much later than that, and not right before the
settlement. Each wait is on the campaign's events stream, where every write says so."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.chunkrun import ChunkRun
from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.keys import Keys
from dispatcher.model import Status
from dispatcher.providers.base import Outcome, Verdict
from dispatcher.recording import FLUSH_EVERY_S, Recording
from dispatcher.unknown import UnknownStore
from tests.conftest import claimed_chunk

NUMBERS = [f"+4479110{i:05d}" for i in range(10)]  # one chunk (chunk_size 10)
WAIT_MS = 4_000  # within the test client's socket timeout


@dataclass
class Rig:
    redis: Redis
    client: Client
    cid: str
    run: ChunkRun
    recording: Recording
    events: str
    last_event: str

    def answer(self, positions: range) -> None:
        """As the sender does when a request is answered."""
        for p in positions:
            self.run.outcomes[p] = Outcome(Verdict.OK, Status.ACCEPTED, message_id=f"m{p}")
        self.recording.maybe_flush(self.run)

    async def next_event(self) -> str:
        """The campaign's next event: ``progress`` for a write while the chunk sends."""
        got: Any = await self.redis.xread({self.events: self.last_event}, count=1, block=WAIT_MS)
        assert got, "no event came"
        entry_id, fields = got[0][1][0]
        self.last_event = entry_id.decode()
        assert fields[b"c"].decode() == self.cid
        return str(fields[b"e"].decode())

    async def no_more_events(self) -> bool:
        return not await self.redis.xread({self.events: self.last_event})

    async def accepted(self) -> int:
        return (await self.client.status(self.cid)).counts.get("accepted", 0)


@pytest.fixture
async def rig(redis: Redis, settings: Settings) -> AsyncIterator[Rig]:
    keys = Keys(settings.prefix)
    chunk = await claimed_chunk(redis, settings, NUMBERS)
    recording = Recording(chunk.queue, keys, UnknownStore(redis, keys))
    events = keys.part(chunk.cid).events
    last: Any = await redis.xrevrange(events, count=1)
    client = Client(settings=settings, redis=redis)
    yield Rig(
        redis, client, chunk.cid, chunk.run, recording, events,
        last[0][0].decode() if last else "0",
    )  # fmt: skip
    await chunk.sender.close()


async def test_an_answer_soon_after_a_write_is_written_when_its_time_is_up(rig: Rig) -> None:
    """Nothing else answers: the put-off write still comes, on its own."""
    rig.run.last_flush = time.monotonic()  # as if it had just written
    rig.answer(range(3))
    assert rig.run.flushing is None and rig.run.flush_later is not None  # not at once
    assert await rig.accepted() == 0
    assert await rig.next_event() == "progress"
    assert await rig.accepted() == 3
    assert rig.run.flushed == {0, 1, 2}
    assert time.monotonic() - rig.run.last_flush < FLUSH_EVERY_S  # it wrote just now


async def test_answers_during_a_write_are_written_after_it(rig: Rig) -> None:
    rig.run.last_flush = time.monotonic() - FLUSH_EVERY_S  # due
    rig.answer(range(2))
    first = rig.run.flushing
    assert first is not None  # written at once
    rig.answer(range(2, 5))  # while that write is in flight
    assert rig.run.flushing is first
    assert await rig.next_event() == "progress"
    assert await rig.next_event() == "progress"  # the second, unprompted
    assert await rig.accepted() == 5
    assert rig.run.flushed == set(range(5))


async def test_the_last_answer_is_left_to_the_settlement(rig: Rig) -> None:
    """One write for the chunk, not a progress write and then the settlement."""
    rig.run.last_flush = time.monotonic() - FLUSH_EVERY_S  # due
    rig.answer(range(10))
    assert rig.run.flushing is None and rig.run.flush_later is None
    await rig.recording.settle(rig.run)
    assert await rig.next_event() == "sent"  # the settlement's, which crossed the total
    assert await rig.no_more_events()
    assert await rig.accepted() == 10


async def test_the_settlement_takes_over_a_write_put_off(rig: Rig) -> None:
    rig.run.last_flush = time.monotonic()
    rig.answer(range(4))
    later = rig.run.flush_later
    assert later is not None
    rig.answer(range(4, 10))
    await rig.recording.settle(rig.run)
    assert later.cancelled() and rig.run.flush_later is None
    assert await rig.next_event() == "sent"
    assert await rig.accepted() == 10
    rig.recording.maybe_flush(rig.run)  # a late answer's call finds the chunk settling
    assert rig.run.flush_later is None and rig.run.flushing is None
