"""The members of the delayed, held and batches sets: one format each, built and read the
same way by Python (keys.py) and by the Lua scripts (lua.MEMBERS)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher import lua
from dispatcher.keys import batch_member, parse_batch_member, parse_unit, unit
from dispatcher.store import as_str

UNITS = [("c0ffee", 3, 1, ""), ("c0ffee", 12, 4, "0-5,9"), ("ab12", 0, 0, "7")]


@pytest.mark.parametrize(("cid", "chunk", "attempt", "only"), UNITS)
async def test_lua_and_python_units_agree(
    redis: Redis, cid: str, chunk: int, attempt: int, only: str
) -> None:
    member = unit(cid, chunk, attempt, only)
    assert parse_unit(member) == (cid, chunk, attempt, only)
    got: Any = await redis.eval(
        lua.MEMBERS
        + "local c, n, a, o = parse_unit(ARGV[5])\n"
        + "return {unit(ARGV[1], ARGV[2], ARGV[3], ARGV[4]), c, n, a, o}",
        0,
        cid, chunk, attempt, only, member,
    )  # fmt: skip
    assert [as_str(x) for x in got] == [member, cid, str(chunk), str(attempt), only]


@pytest.mark.parametrize(("chunk", "only", "member"), [(3, "", "3"), (3, "0-5,9", "3|0-5,9")])
async def test_held_members_read_back(redis: Redis, chunk: int, only: str, member: str) -> None:
    got: Any = await redis.eval(
        lua.MEMBERS
        + "local n, o = parse_held(ARGV[3])\n"
        + "return {held_member(ARGV[1], ARGV[2]), n, o}",
        0,
        chunk, only, member,
    )  # fmt: skip
    assert [as_str(x) for x in got] == [member, str(chunk), only]


def test_batch_members_read_back() -> None:
    member = batch_member("88123", "c0ffee", 7)
    assert member == "88123|c0ffee|7"
    assert parse_batch_member(member) == ("88123", "c0ffee", 7)
