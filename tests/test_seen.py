"""Duplicates kept compactly (seen.py): the first listing wins, across batches, exactly as
a Python set in list order says, for numbers and for email digests, whatever the runs'
merges and caps."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher import seen
from dispatcher.seen import DIGEST, NUMBER, Seen, digest_keys, number_keys


def reference(batches: list[list[str]]) -> list[list[bool]]:
    known: set[str] = set()
    out: list[list[bool]] = []
    for batch in batches:
        firsts = []
        for value in batch:
            firsts.append(value not in known)
            known.add(value)
        out.append(firsts)
    return out


@pytest.mark.parametrize("max_run", [64, seen.MAX_RUN])
def test_numbers_first_listing_wins_across_batches(
    monkeypatch: pytest.MonkeyPatch, max_run: int
) -> None:
    monkeypatch.setattr(seen, "MAX_RUN", max_run)  # small: runs stop merging early
    rnd = random.Random(5)
    pool = [f"+{rnd.choice(['44', '1', '33', '39'])}{rnd.randrange(10**10)}" for _ in range(3000)]
    pool += ["+9223372036854775808", "+18446744073709551615"]  # past int64, within uint64
    batches = [[rnd.choice(pool) for _ in range(rnd.randint(0, 900))] for _ in range(40)]
    s = Seen(NUMBER)
    got = [s.first(number_keys(b)) for b in batches]
    assert got == reference(batches)
    assert len(s) == len({v for b in batches for v in b})
    assert s.nbytes == 8 * len(s)


def test_addresses_as_digests() -> None:
    rnd = random.Random(6)
    pool = [f"user{rnd.randrange(500)}@example.com" for _ in range(800)]
    batches = [pool[i : i + 97] for i in range(0, len(pool), 97)]
    s = Seen(DIGEST)
    assert [s.first(digest_keys(b)) for b in batches] == reference(batches)
    assert digest_keys(["a@b.c"]).dtype == np.dtype("V16")


def test_an_empty_batch() -> None:
    assert Seen(NUMBER).first(number_keys([])) == []


@given(
    st.lists(
        st.one_of(
            st.from_regex(r"\+[1-9][0-9]{11}", fullmatch=True),  # one length: read at once
            st.from_regex(r"\+[1-9][0-9]{5,14}", fullmatch=True),
        ),
        max_size=30,
    )
)
def test_number_keys_are_the_numbers_whatever_their_lengths(numbers: list[str]) -> None:
    """Numbers of one length are read from their bytes at once; others one by one: the
    same integers either way."""
    expected = np.array([int(n) for n in numbers], dtype=NUMBER)
    assert number_keys(numbers).tolist() == expected.tolist()


def test_number_keys_of_one_length_are_read_at_once() -> None:
    same = [f"+4479110{i:05d}" for i in range(1000)]
    assert number_keys(same).tolist() == [int(n) for n in same]
    assert seen._same_length(same) is not None
    assert seen._same_length([*same[:3], "+4479110001"]) is None  # one shorter
    assert seen._same_length(["+4479110000", "+447911ä00"]) is None  # not a digit
