"""The numbers a campaign was sent to, from its chunks in a real Redis: found wherever the
recipient is, and a cache bounded in recipients."""

from __future__ import annotations

from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.keys import Keys
from dispatcher.model import Campaign
from dispatcher.sent import Chunk, SentNumbers
from tests.conftest import make_settings


async def test_the_chunk_cache_is_bounded_in_recipients(redis: Redis, prefix: str) -> None:
    """Four chunks of ten, a cache of 25 recipients: at most two chunks stay (the latest
    always), and a recipient of an evicted chunk is read again, right."""
    settings = make_settings(prefix)  # chunks of 10
    numbers = [f"+4479110{i:05d}" for i in range(40)]
    answer = await Client(settings=settings, redis=redis).enqueue(
        Campaign("cloudaten", "hi", numbers)
    )
    sent = SentNumbers(redis, Keys(prefix), cached=25)
    for index in (0, 15, 25, 35, 5, 39):
        assert await sent.number(answer.id, index) == numbers[index]
        held = [len(c.indexes) for c in sent.chunks.values()]
        assert sum(held) <= 25 and len(held) <= 2
    assert list(sent.chunks) == [(answer.id, 0), (answer.id, 3)]  # least recent out


async def test_a_recipient_is_found_by_its_chunk_or_by_bisection(redis: Redis, prefix: str) -> None:
    """Chunks of 10 with a recipient left out of one (a duplicate number is never sent):
    every other recipient's number is found, with or without a hint, and a wrong hint
    falls back to the search."""
    numbers = [f"+4479110{i:05d}" for i in range(35)]
    numbers[12] = numbers[3]  # a duplicate: recipient 12 is in no chunk
    answer = await Client(settings=make_settings(prefix), redis=redis).enqueue(
        Campaign("cloudaten", "hi", numbers)
    )
    sent = SentNumbers(redis, Keys(prefix))
    for index, number in enumerate(numbers):
        want = None if index == 12 else number
        assert await sent.number(answer.id, index) == want
        assert await sent.number(answer.id, index, hints=(index // 10, None)) == want
        assert await sent.number(answer.id, index, hints=(0,)) == want


def test_a_chunk_maps_numbers_to_recipients_on_first_use() -> None:
    chunk = Chunk([3, 5, 9], ["+1", "+2", "+3"])
    assert chunk.number_of(5) == "+2" and chunk.number_of(4) is None
    assert chunk._by_number is None  # not built for number_of
    assert chunk.index_of("+3") == 9 and chunk.index_of("+9") is None
