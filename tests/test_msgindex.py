"""The message index: sharded by a CRC-32 of the message id, small listpacks, and forgetting
only what still names the campaign."""

from __future__ import annotations

import zlib

from redis.asyncio import Redis

from dispatcher.keys import Keys
from dispatcher.msgindex import SHARDS, MessageIndex, parse_ref, ref, shard


def test_the_shard_is_a_crc32_of_the_id_so_every_process_agrees() -> None:
    assert shard("sid-1") == zlib.crc32(b"sid-1") % SHARDS
    assert shard("sid-1") == 11_426  # pinned: a new hash would lose every indexed message
    # spread: 20,000 ids fall on about 1 - e^-1.22 = 70 % of the shards if random
    assert len({shard(f"m{i}") for i in range(20_000)}) > 0.6 * SHARDS


def test_a_ref_names_campaign_and_recipient() -> None:
    assert parse_ref(ref("c1a2", 17)) == ("c1a2", 17)
    assert parse_ref(b"c.x.3") == ("c.x", 3)
    assert parse_ref(None) is None and parse_ref(b"") is None


async def test_entries_are_found_where_they_were_written(redis: Redis, prefix: str) -> None:
    index = MessageIndex(redis, Keys(prefix))
    entries = {f"mid-{i}": ref("camp", i) for i in range(500)}
    await index.add("cloudaten", entries)
    assert await index.get("cloudaten", "mid-42") == ("camp", 42)
    assert await index.get("ycloud", "mid-42") is None  # each provider has its own index
    assert await index.get_many("cloudaten", ["mid-3", "nope", "mid-499"]) == [
        ("camp", 3), None, ("camp", 499),
    ]  # fmt: skip
    assert await index.get_many("cloudaten", list(entries)) == [("camp", i) for i in range(500)]
    key = Keys(prefix).message_index("cloudaten", shard("mid-42"))
    assert await redis.hget(key, "mid-42") == b"camp.42"
    assert await redis.object("encoding", key) == b"listpack"  # a few entries a shard


async def test_any_message_id_is_indexed_as_given(redis: Redis, prefix: str) -> None:
    """Ids are written as one line each (msgindex.ADD); ids a line cannot hold (a tab, a
    newline) go the other way, and a chunk holding one still indexes every entry."""
    index = MessageIndex(redis, Keys(prefix))
    odd = ["a b|c", "ünï-çødé", "*1234*", "x" * 300, "9" * 20]
    await index.add("cloudsms", {mid: ref("camp", i) for i, mid in enumerate(odd)})
    assert await index.get_many("cloudsms", odd) == [("camp", i) for i in range(len(odd))]
    mixed = ["tab\there", "line\nbreak", "plain"]
    await index.add("cloudsms", {mid: ref("other", i) for i, mid in enumerate(mixed)})
    assert await index.get_many("cloudsms", mixed) == [("other", 0), ("other", 1), ("other", 2)]


async def test_forget_leaves_an_id_that_names_another_campaign(redis: Redis, prefix: str) -> None:
    index = MessageIndex(redis, Keys(prefix))
    await index.add("cloudaten", {"a": ref("old", 1), "b": ref("old", 2), "c": ref("new", 0)})
    assert await index.forget("cloudaten", "old", ["a", "b", "c", "missing"]) == 2
    assert await index.get_many("cloudaten", ["a", "b", "c"]) == [None, None, ("new", 0)]
    assert await index.forget("cloudaten", "old", []) == 0
