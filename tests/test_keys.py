"""The members of the delayed, held and batches sets: one format each, built and read the
same way by Python (keys.py) and by the Lua scripts (lua.MEMBERS)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from dispatcher import lua
from dispatcher.config import ConfigError
from dispatcher.keys import (
    CLUSTER_PARTITIONS,
    SLOTS,
    Keys,
    batch_member,
    parse_batch_member,
    parse_unit,
    partition_tags,
    partitions_for,
    unit,
)
from dispatcher.store import as_str

UNITS = [
    ("c0ffee", 3, 1, "", ""),
    ("c0ffee", 12, 4, "0-5,9", ""),
    ("ab12", 0, 0, "7", ""),
    ("ab12", 2, 1, "", "0-9"),
    ("ab12", 2, 1, "3-8", "4,6"),
]


@pytest.mark.parametrize("fields", UNITS)
async def test_lua_and_python_units_agree(
    redis: Redis, fields: tuple[str, int, int, str, str]
) -> None:
    cid, chunk, attempt, only, x = fields
    member = unit(cid, chunk, attempt, only, x)
    assert parse_unit(member) == (cid, chunk, attempt, only, x)
    got: Any = await redis.eval(
        lua.MEMBERS
        + "local c, n, a, o, x = parse_unit(ARGV[6])\n"
        + "return {unit(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]), c, n, a, o, x}",
        0,
        cid, chunk, attempt, only, x, member,
    )  # fmt: skip
    assert [as_str(v) for v in got] == [member, cid, str(chunk), str(attempt), only, x]


def test_units_written_before_exclusions_read_the_same() -> None:
    """Delayed units queued by an older version (no ``x``) still read back."""
    assert parse_unit("c0ffee|12|4|0-5,9") == ("c0ffee", 12, 4, "0-5,9", "")
    assert parse_unit("c0ffee|3|1") == ("c0ffee", 3, 1, "", "")


@pytest.mark.parametrize(
    ("chunk", "only", "x", "member"),
    [(3, "", "", "3"), (3, "0-5,9", "", "3|0-5,9"), (3, "", "1-4", "3||1-4"),
     (3, "0-5", "2", "3|0-5|2")],
)  # fmt: skip
async def test_held_members_read_back(
    redis: Redis, chunk: int, only: str, x: str, member: str
) -> None:
    got: Any = await redis.eval(
        lua.MEMBERS
        + "local n, o, x = parse_held(ARGV[4])\n"
        + "return {held_member(ARGV[1], ARGV[2], ARGV[3]), n, o, x}",
        0,
        chunk, only, x, member,
    )  # fmt: skip
    assert [as_str(v) for v in got] == [member, str(chunk), only, x]


async def test_an_entry_carries_only_and_exclusions_where_given(redis: Redis) -> None:
    stream = "test:add-entry"
    await redis.delete(stream)
    for only, x in [("", ""), ("0-5", ""), ("", "1-2"), ("0-5", "3")]:
        await redis.eval(lua.MEMBERS + "return add_entry(KEYS[1], 'c1', 4, 1, ARGV[1], ARGV[2])",
                         1, stream, only, x)  # fmt: skip
    read: Any = await redis.xrange(stream)
    got = [{as_str(k): as_str(v) for k, v in f.items()} for _, f in read]
    base = {"c": "c1", "n": "4", "a": "1"}
    assert got == [base, {**base, "i": "0-5"}, {**base, "x": "1-2"}, {**base, "i": "0-5", "x": "3"}]
    await redis.delete(stream)


def test_batch_members_read_back() -> None:
    member = batch_member("88123", "c0ffee", 7)
    assert member == "88123|c0ffee|7"
    assert parse_batch_member(member) == ("88123", "c0ffee", 7)


def test_one_partition_keeps_the_names_a_single_redis_always_had() -> None:
    k = Keys("dsp:")
    assert k.part("c1") == k.at(0) and [p.base for p in k.parts] == ["dsp:"]
    assert k.meta("c1") == "dsp:{c1}:meta"
    assert k.part("c1").queue("cloudaten", "bulk") == "dsp:q:cloudaten:bulk"
    assert k.part("c1").events == "dsp:events"
    assert k.parse_queue("dsp:q:cloudaten:otp") == ("cloudaten", "otp")
    assert k.delayed_for("dsp:q:cloudaten:otp") == "dsp:delayed:cloudaten:otp"


def test_with_partitions_a_campaign_shares_one_slot_with_its_partitions_work() -> None:
    k = Keys("dsp:", partitions=8)
    for cid in ("0a1b2c3d4e5f6789", "ffffffffffffffff", "c1"):
        part = k.part(cid)
        slot = key_slot(k.meta(cid).encode())
        together = [
            k.results(cid) + ":3", k.owner(cid), part.queue("cloudaten", "bulk"),
            part.delayed("cloudaten", "bulk"), part.events, part.unknown("x", "a"),
            part.inflight("cloudaten", "a"), part.ready_campaigns("s", "bulk", "a"),
        ]  # fmt: skip
        assert {key_slot(key.encode()) for key in together} == {slot}, cid
        stream = part.queue("smsq", "otp")  # a provider name ending in q
        assert k.parse_queue(stream) == ("smsq", "otp")
        assert k.delayed_for(stream) == part.delayed("smsq", "otp")
    assert len({p.base for p in k.parts}) == 8
    assert all(k.at(i).index == i for i in range(8))


def test_partition_tags_fall_in_even_shares_of_the_slots() -> None:
    for n in (3, 16):
        slots = [key_slot(f"{{{tag}}}".encode()) for tag in partition_tags(n)]
        assert [s * n // SLOTS for s in slots] == list(range(n))  # one in each share


def test_a_cluster_gets_partitions_unless_told_otherwise_and_never_just_one() -> None:
    assert partitions_for(0, cluster=False) == 1
    assert partitions_for(0, cluster=True) == CLUSTER_PARTITIONS
    assert partitions_for(4, cluster=True) == 4
    with pytest.raises(ConfigError, match=r"^partitions: a Redis Cluster needs more than one"):
        partitions_for(1, cluster=True)
