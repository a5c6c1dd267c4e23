"""The message index: a provider's message id → the recipient it was sent to (``cid.index``),
for what names only the message (list APIs, Smsclouds reports, replies to a message).

One hash for all of a provider's messages grows into Redis' hashtable encoding, some 70
bytes an entry, and sits on one Cluster slot. So the index is cut into :data:`SHARDS`
hashes by a CRC-32 of the message id (``msgidx:<provider>:<shard>``, keys.py): up to about
two million messages a provider each shard stays a listpack (Redis' memory-optimisation
guide), and the shards spread over a cluster's slots like any other keys.

Entries are written before the record script that writes their results (queue.py,
unknown.py): the index then never misses a message that has a result, and an entry
written for a campaign that turned out to be gone only names a campaign nobody finds.
Every write is an idempotent HSET, so a retry after a crash writes nothing new. On one
Redis a chunk's entries go in one script call (:data:`ADD`): a pipelined HSET a message
cost the worker some 15 µs of CPU each, more than the rest of recording the chunk. A
cluster client spreads the HSETs over the shards' nodes in a pipeline instead.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis

from dispatcher.keys import Keys, is_cluster_client

#: How many hashes the index of one provider is cut into: 16,384 shards of at most 128
#: entries (Redis' default ``hash-max-listpack-entries``) hold two million messages.
SHARDS = 16_384
#: Shards :meth:`MessageIndex.forget` works on at once.
FORGET_AT_ONCE = 64

#: KEYS: shards; ARGV[1]: one ``k<TAB>message id<TAB>ref`` line an entry, ``k`` the number
#: of its shard in KEYS. One argument, not three an entry: redis-py packs each argument on
#: its own, some 0.65 µs, which for a chunk of 100 entries cost more than the script.
ADD = """
for k, mid, ref in string.gmatch(ARGV[1], '(%d+)\\t([^\\t\\n]+)\\t([^\\n]+)') do
  redis.call('HSET', KEYS[tonumber(k)], mid, ref)
end
return #KEYS
"""

#: KEYS[1]: a shard; ARGV[1]: cid; ARGV[2..]: message ids. Forget those still naming it.
FORGET = """
local prefix, n = ARGV[1] .. '.', 0
for i = 2, #ARGV do
  local ref = redis.call('HGET', KEYS[1], ARGV[i])
  if ref and string.sub(ref, 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""


def shard(message_id: str) -> int:
    """The shard of ``message_id``: the same in every process and every release."""
    return zlib.crc32(message_id.encode()) % SHARDS


def _plain(text: str) -> bool:
    """Whether ``text`` can stand in an :data:`ADD` line: not empty, no tab, no newline."""
    return bool(text) and "\t" not in text and "\n" not in text


def ref(cid: str, index: int) -> str:
    """What an entry holds: the recipient, ``cid.index``."""
    return f"{cid}.{index}"


def parse_ref(value: bytes | str | None) -> tuple[str, int] | None:
    """``(cid, index)`` of :func:`ref`, or None for no entry."""
    if not value:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    cid, _, index = text.rpartition(".")
    return (cid, int(index)) if cid else None


class MessageIndex:
    """Reads and writes a prefix's message index."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._forget = redis.register_script(FORGET)
        self._add = redis.register_script(ADD)
        self._cluster = is_cluster_client(redis)

    def key(self, provider: str, message_id: str) -> str:
        return self.keys.message_index(provider, shard(message_id))

    def _by_key(self, provider: str, mids: Iterable[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = defaultdict(list)
        for mid in mids:
            grouped[self.key(provider, mid)].append(mid)
        return grouped

    async def add(self, provider: str, entries: Mapping[str, str]) -> None:
        """Index ``entries`` (message id → :func:`ref`): one HSET per shard, in one script
        call on one Redis, pipelined on a cluster."""
        if not entries:
            return
        grouped = self._by_key(provider, entries)
        if not self._cluster and all(_plain(m) and _plain(entries[m]) for m in entries):
            lines = [
                f"{k}\t{mid}\t{entries[mid]}"
                for k, mids in enumerate(grouped.values(), 1)
                for mid in mids
            ]
            await self._add(keys=list(grouped), args=["\n".join(lines)])
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, mids in grouped.items():
                pipe.hset(key, mapping={mid: entries[mid] for mid in mids})
            await pipe.execute()

    async def get(self, provider: str, message_id: str) -> tuple[str, int] | None:
        """The recipient ``message_id`` was sent to, or None."""
        return parse_ref(await self.redis.hget(self.key(provider, message_id), message_id))

    async def get_many(self, provider: str, mids: Sequence[str]) -> list[tuple[str, int] | None]:
        """:meth:`get` of each of ``mids`` (in their order), in one pipeline."""
        if not mids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for mid in mids:
                pipe.hget(self.key(provider, mid), mid)
            answers: list[Any] = await pipe.execute()
        return [parse_ref(a) for a in answers]

    async def forget(self, provider: str, cid: str, mids: Iterable[str]) -> int:
        """Remove the entries of ``mids`` that still name campaign ``cid`` (a message id a
        later campaign reuses keeps its entry); how many were removed."""
        items = list(self._by_key(provider, mids).items())
        removed = 0
        # Concurrent calls, not a pipeline: a cluster client runs no script in a pipeline.
        for at in range(0, len(items), FORGET_AT_ONCE):
            calls = [self._forget(keys=[key], args=[cid, *batch])
                     for key, batch in items[at : at + FORGET_AT_ONCE]]  # fmt: skip
            removed += sum(int(n) for n in await asyncio.gather(*calls))
        return removed
