"""Index ranges: the compact form of recipient sets, read by Python and by the scripts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from dispatcher.ranges import LUA_EACH, LUA_TO_RANGES, decode, encode


def test_examples() -> None:
    assert encode([3, 1, 2, 7, 9, 10]) == "1-3,7,9-10"
    assert encode([]) == ""
    assert decode("1-3,7,9-10") == [1, 2, 3, 7, 9, 10]
    assert decode("") == []


@pytest.mark.parametrize("bad", ["a", "3-1", "1-", "-1", "1,,2", "²", "1-²"])
def test_refuses_what_is_not_ranges(bad: str) -> None:
    with pytest.raises(ValueError, match="not an index range"):
        decode(bad)


@given(st.sets(st.integers(0, 5000), max_size=300))
def test_round_trip(indices: set[int]) -> None:
    assert decode(encode(indices)) == sorted(indices)


@given(st.lists(st.integers(0, 40), max_size=12))
def test_a_list_in_any_order_or_repeated_is_its_set(indices: list[int]) -> None:
    """A run in order is seen at once; anything else, out of order or repeated, is not
    taken for one."""
    assert encode(indices) == encode(set(indices)) == encode(iter(sorted(indices)))


def test_a_run_in_order_is_one_range() -> None:
    assert encode(range(100, 25_100)) == "100-25099"
    assert encode([7]) == "7"
    assert encode([1, 2, 2, 3]) == "1-3" and encode([3, 2, 4]) == "2-4"


_ROUND_TRIP = (
    LUA_EACH
    + LUA_TO_RANGES
    + """
local seen = {}
each_index(ARGV[1], function(i) seen[#seen + 1] = i end)
return to_ranges(seen)
"""
)


async def test_the_lua_side_reads_and_writes_the_same_form(redis: Redis) -> None:
    script = redis.register_script(_ROUND_TRIP)
    for indices in ([0], [1, 2, 3, 7, 9, 10], list(range(0, 30000, 3)), [5, 6, 100000]):
        assert (await script(keys=[], args=[encode(indices)])).decode() == encode(indices)
