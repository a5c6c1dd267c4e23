"""Segment counting against every row boundary of seed 002's three slicing tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_SEGMENTS,
    Encoding,
    cloudsms_bytes,
    encoding_of,
    measure,
    segments_for,
)

# The seed's tables, row by row: (first length, last length, segments).
GSM7_ROWS = [
    (1, 160, 1), (161, 306, 2), (307, 459, 3), (460, 612, 4), (613, 765, 5),
    (766, 918, 6), (919, 1071, 7), (1072, 1224, 8), (1225, 1377, 9), (1378, 1530, 10),
]  # fmt: skip
LATIN1_ROWS = [
    (1, 140, 1), (141, 268, 2), (269, 402, 3), (403, 536, 4), (537, 670, 5),
    (671, 804, 6), (805, 938, 7), (939, 1072, 8), (1073, 1206, 9), (1207, 1340, 10),
]  # fmt: skip
UCS2_ROWS = [
    (1, 70, 1), (71, 134, 2), (135, 201, 3), (202, 268, 4), (269, 335, 5),
    (336, 402, 6), (403, 469, 7), (470, 536, 8), (537, 603, 9), (604, 670, 10),
]  # fmt: skip
SAMPLE = {Encoding.GSM7: "a", Encoding.LATIN1: "ý", Encoding.UCS2: "你"}  # ý: Latin-1, not GSM


@pytest.mark.parametrize(
    ("encoding", "rows"),
    [(Encoding.GSM7, GSM7_ROWS), (Encoding.LATIN1, LATIN1_ROWS), (Encoding.UCS2, UCS2_ROWS)],
)
def test_every_row_boundary(encoding: Encoding, rows: list[tuple[int, int, int]]) -> None:
    char = SAMPLE[encoding]
    for first, last, parts in rows:
        for n in (first, last):
            m = measure(char * n)
            assert m.encoding is encoding
            assert (m.units, m.segments) == (n, parts), (encoding, n)
    assert measure(char * (rows[-1][1] + 1)).too_long


def test_encoding_choice() -> None:
    assert encoding_of("Hello [world] €5") is Encoding.GSM7
    assert encoding_of("Olá, ñandú") is Encoding.LATIN1  # á, ú are Latin-1, not GSM basic
    assert encoding_of("验证码 1234") is Encoding.UCS2
    assert measure("").segments == 0


def test_extension_characters_take_two_septets() -> None:
    assert measure("€" * 80) == measure("a" * 160)
    assert measure("[" * 81).segments == 2


def test_ucs2_counts_utf16_units() -> None:
    assert measure("😀" * 35).units == 70
    assert measure("😀" * 36).segments == 2


@given(st.integers(min_value=1, max_value=1530))
def test_gsm7_segments_match_the_table(n: int) -> None:
    expected = next(p for first, last, p in GSM7_ROWS if first <= n <= last)
    assert segments_for(n, Encoding.GSM7) == expected


@given(st.integers(min_value=1, max_value=1340))
def test_latin1_segments_match_the_table(n: int) -> None:
    expected = next(p for first, last, p in LATIN1_ROWS if first <= n <= last)
    assert segments_for(n, Encoding.LATIN1) == expected


@given(st.integers(min_value=1, max_value=670))
def test_ucs2_segments_match_the_table(n: int) -> None:
    expected = next(p for first, last, p in UCS2_ROWS if first <= n <= last)
    assert segments_for(n, Encoding.UCS2) == expected


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=400))
def test_any_gsm_text_is_gsm7_with_extensions_counted_twice(text: str) -> None:
    m = measure(text)
    assert m.encoding is Encoding.GSM7
    assert m.units == len(text) + sum(c in GSM7_EXTENSION for c in text)
    assert m.segments <= MAX_SEGMENTS or m.units > 1530


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("Your code is 1234!", 18),  # English: one byte a character
        ("a" * 1530, 1530),
        ("é", 2),
        ("Código 1234", 22),  # mixed: "English is also two bytes"
        ("验证码 1234", 16),
        ("😀", 4),  # two UTF-16 units, as on the wire
        (("é" + "a" * 7) * 174 + "a" * 57, 2898),  # 1,449 characters, 1,623 UTF-8 bytes
    ],
)
def test_cloudsms_bytes_by_seed_002s_rule(text: str, size: int) -> None:
    assert cloudsms_bytes(text) == size


def test_split_cuts_parts_by_the_encodings_units_never_inside_a_pair() -> None:
    from dispatcher.segments import Encoding, split

    assert split("a" * 160, Encoding.GSM7) == ["a" * 160]
    parts = split("a" * 152 + "€" + "b" * 10, Encoding.GSM7)  # € takes two septets
    assert parts == ["a" * 152, "€" + "b" * 10]
    emoji = split("x" * 66 + "😀" + "y" * 10, Encoding.UCS2)  # 😀: two UTF-16 units
    assert emoji == ["x" * 66, "😀" + "y" * 10]
    assert "".join(split("Привет" * 30, Encoding.UCS2)) == "Привет" * 30
