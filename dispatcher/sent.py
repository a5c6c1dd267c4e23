"""The numbers a campaign was sent to, read from its chunks: what reports are checked
against (tracking.py) and MO responses are addressed to (responses.py).

A send result leaves the number to the chunk (rows.py), so the chunk is read, once: the
latest chunks stay cached, since reports come in about the order messages went out.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable

from redis.asyncio import Redis

from dispatcher import chunkblob
from dispatcher.keys import Keys

#: Recipients the chunk cache holds at most (some 110 bytes each, 140 once a chunk has its
#: number map). Bounded in recipients, not chunks: the 256 chunks it held before would
#: have been a gigabyte at Smsclouds' 30,000 a chunk.
CACHED_RECIPIENTS = 100_000


class Chunk:
    """One chunk's recipients, as enqueued: indexes ascending, and their numbers."""

    __slots__ = ("_by_number", "indexes", "numbers")

    def __init__(self, indexes: list[int], numbers: list[str]) -> None:
        self.indexes = indexes
        self.numbers = numbers
        self._by_number: dict[str, int] | None = None

    def number_of(self, index: int) -> str | None:
        at = bisect_left(self.indexes, index)
        found = at < len(self.indexes) and self.indexes[at] == index
        return self.numbers[at] if found else None

    def index_of(self, number: str) -> int | None:
        """The recipient sent ``number``: a map built on first use, since only reports that
        name no recipient need it, and it is the biggest part of a 30,000-number chunk."""
        if self._by_number is None:
            self._by_number = dict(zip(self.numbers, self.indexes, strict=True))
        return self._by_number.get(number)


NO_CHUNK = Chunk([], [])


class SentNumbers:
    """A process's reads of chunks, least recently used out past ``cached`` recipients."""

    def __init__(self, redis: Redis, keys: Keys, cached: int = CACHED_RECIPIENTS) -> None:
        self.redis = redis
        self.keys = keys
        self.chunks: OrderedDict[tuple[str, int], Chunk] = OrderedDict()
        self._cached = cached
        self._cached_now = 0

    async def chunk(self, cid: str, chunk: int) -> Chunk:
        """One chunk's recipients (cached: reports come per message; a miss is not)."""
        key = (cid, chunk)
        found = self.chunks.get(key)
        if found is not None:
            self.chunks.move_to_end(key)
            return found
        blob = await self.redis.hget(self.keys.chunks(cid), str(chunk))
        if not blob:
            return NO_CHUNK
        members = chunkblob.decode(blob)
        found = Chunk([m.index for m in members], [m.number for m in members])
        self.chunks[key] = found
        self._cached_now += len(found.indexes)
        while self._cached_now > self._cached and len(self.chunks) > 1:
            _key, old = self.chunks.popitem(last=False)
            self._cached_now -= len(old.indexes)
        return found

    async def number(
        self,
        cid: str,
        index: int,
        chunks: int | None = None,
        entries: int | None = None,
        *,
        hints: Iterable[int | None] = (),
    ) -> str | None:
        """The number recipient ``index`` was sent to, from its chunk: one of ``hints``
        (the chunk a report or a parking names), else the one its position suggests (chunks
        are about equal), else the one found by bisection (chunks hold ascending indexes).
        ``chunks`` and ``entries`` are the campaign's, read when not given."""
        for chunk in hints:
            if chunk is not None and (number := (await self.chunk(cid, chunk)).number_of(index)):
                return number
        if chunks is None or entries is None:
            got = await self.redis.hmget(self.keys.meta(cid), ["entries", "chunks"])
            entries, chunks = int(got[0] or 0), int(got[1] or 0)
        lo, hi = 0, chunks - 1
        guess = min(hi, index * chunks // entries) if entries > 0 else 0
        while lo <= hi:
            mid = guess if guess >= 0 else (lo + hi) // 2
            guess = -1
            found = await self.chunk(cid, mid)
            if not found.indexes:
                return None
            if index < found.indexes[0]:
                hi = mid - 1
            elif index > found.indexes[-1]:
                lo = mid + 1
            else:
                return found.number_of(index)
        return None
