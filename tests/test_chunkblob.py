"""A chunk's stored form (chunkblob.py): runs of plain numbers, or JSON."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from dispatcher import chunkblob
from dispatcher.chunkblob import Chunker
from dispatcher.providers.base import ChunkRecipient


def test_a_run_of_plain_numbers_is_one_line_a_number() -> None:
    cut = Chunker(3)
    cut.run(10, ["+441", "+442", "+443", "+444"])
    cut.close()
    assert cut.chunks == [b"=10\n+441\n+442\n+443", b"=13\n+444"]
    assert chunkblob.decode(cut.chunks[1]) == [ChunkRecipient(13, "+444")]


def test_fields_or_a_gap_make_a_json_chunk() -> None:
    cut = Chunker(10)
    cut.run(0, ["+441", "+442"])
    cut.entries([[2, "+443", {"name": "Ann"}]])
    cut.close()
    cut.run(5, ["+445"])
    cut.run(7, ["+447"])  # 6 is missing (invalid, or a duplicate)
    cut.close()
    assert [orjson.loads(c) for c in cut.chunks] == [
        [[0, "+441"], [1, "+442"], [2, "+443", {"name": "Ann"}]],
        [[5, "+445"], [7, "+447"]],
    ]


def test_addresses_stay_json_even_in_a_run() -> None:
    """Only E.164 numbers are sure to hold no newline: an email campaign's chunks are JSON."""
    cut = Chunker(5, numbers=False)
    cut.entries([[0, "a@example.com"], [1, "b@example.com"]])
    cut.close()
    assert orjson.loads(cut.chunks[0]) == [[0, "a@example.com"], [1, "b@example.com"]]


def test_a_json_chunk_written_before_the_run_form_still_reads() -> None:
    blob = orjson.dumps([[4, "+441"], [9, "+442", {"name": "Bo"}]])
    assert chunkblob.decode(blob) == [
        ChunkRecipient(4, "+441"),
        ChunkRecipient(9, "+442", {"name": "Bo"}),
    ]
    assert chunkblob.decode(blob.decode()) == chunkblob.decode(blob)


# A list as the Builder feeds it: runs (plain numbers, all valid) and entries (the rest),
# with gaps where recipients were refused.
_STEPS = st.lists(
    st.tuples(st.booleans(), st.integers(0, 3), st.integers(1, 9), st.booleans()), max_size=12
)


@given(st.integers(1, 7), _STEPS)
def test_every_recipient_comes_back_in_order_in_chunks_of_the_size(
    size: int, steps: list[tuple[bool, int, int, bool]]
) -> None:
    cut, added, index = Chunker(size), [], 0
    for as_run, gap, n, with_fields in steps:
        index += gap
        numbers = [f"+44{index + i}" for i in range(n)]
        if as_run:
            cut.run(index, numbers)
            added += [ChunkRecipient(index + i, x) for i, x in enumerate(numbers)]
        else:
            fields = {"name": "x"} if with_fields else None
            entries = [[index + i, x, fields] if fields else [index + i, x]
                       for i, x in enumerate(numbers)]  # fmt: skip
            cut.entries(entries)
            added += [ChunkRecipient(index + i, x, fields) for i, x in enumerate(numbers)]
        index += n
    cut.close()
    got = [chunkblob.decode(c) for c in cut.chunks]
    assert [r for chunk in got for r in chunk] == added
    assert all(len(c) == size for c in got[:-1]) and all(0 < len(c) <= size for c in got)
