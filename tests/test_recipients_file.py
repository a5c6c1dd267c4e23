"""Recipients files: CSV or one number a line; malformed lines are errors naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.model import CampaignError, Recipient
from dispatcher.recipients_file import (
    NdjsonReader,
    RecipientReader,
    RecipientsFileError,
    parse_recipients,
    read_recipients,
)


def test_one_number_a_line_skips_blanks_and_comments() -> None:
    data = b"# our list\n+447901614024\n\n  +44 7911 000001  \nnot a number\n"
    assert parse_recipients("f", data) == [
        Recipient("+447901614024"),
        Recipient("+44 7911 000001"),
        Recipient("not a number"),  # read as is: validation marks it invalid later
    ]


def test_csv_with_header_and_fields() -> None:
    data = b'phone,name,field1\n+447901614024,Ann,"A, B"\n+447911000001,,x\n'
    assert parse_recipients("f", data) == [
        Recipient("+447901614024", {"name": "Ann", "field1": "A, B"}),
        Recipient("+447911000001", {"field1": "x"}),
    ]


def test_csv_without_header_takes_columns_in_order() -> None:
    assert parse_recipients("f", b"+447901614024,Ann\n") == [
        Recipient("+447901614024", {"name": "Ann"})
    ]


@pytest.mark.parametrize("header", ["number", "Phone", "MOBILE", "phone number", "Telefono"])
def test_a_one_column_header_is_not_a_recipient(header: str) -> None:
    data = f"{header}\n+447901614024\n07911 000001\n".encode()
    assert parse_recipients("f", data) == [Recipient("+447901614024"), Recipient("07911 000001")]


def test_only_the_first_row_can_be_a_header() -> None:
    data = b"+447901614024\nnot a number\n"
    assert parse_recipients("f", data) == [Recipient("+447901614024"), Recipient("not a number")]
    emails = b"email\nann@example.com\n"
    assert parse_recipients("f", emails) == [Recipient("ann@example.com")]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_other_delimiters_are_detected(sep: str) -> None:
    data = f"number{sep}name\n+447901614024{sep}Ann\n+447911000001{sep}\n".encode()
    assert parse_recipients("f", data) == [
        Recipient("+447901614024", {"name": "Ann"}),
        Recipient("+447911000001"),
    ]
    assert parse_recipients("f", f"+447901614024{sep}Ann\n".encode()) == [
        Recipient("+447901614024", {"name": "Ann"})
    ]


def test_quoted_delimiters_do_not_mislead_detection() -> None:
    semicolons = b'+447901614024;"Smith, Ann"\n+447911000001;"Li, Bo"\n'
    assert parse_recipients("f", semicolons) == [
        Recipient("+447901614024", {"name": "Smith, Ann"}),
        Recipient("+447911000001", {"name": "Li, Bo"}),
    ]
    commas = b'+447901614024,"Smith; Ann"\n'
    assert parse_recipients("f", commas) == [Recipient("+447901614024", {"name": "Smith; Ann"})]


def test_utf8_bom_is_ignored() -> None:
    assert parse_recipients("f", b"\xef\xbb\xbf+447901614024\n") == [Recipient("+447901614024")]


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b"number,name\n+447901614024,Ann\n+447911000001,Bob,extra\n", 3, "3 columns, expected 2"),
        (b"number,colour\n+447901614024,red\n", 1, "unknown column 'colour'"),
        (b"number,name\n,Ann\n", 2, "empty number"),
        (b'number,name\n+447901614024,"Ann\n', 2, "malformed CSV"),
        (b"+447901614024\n+447911000001,Bob\n", 2, "a comma"),
        (b"number\n+447901614024\n+447911000001;Bob\n", 3, "a semicolon"),
        (b"number;colour\n+447901614024;red\n", 1, "unknown column 'colour'"),
        (b"+447901614024\n\xff\xfe\n", 2, "not valid UTF-8"),
        (b"+447901614024\n+44\x00791\n", 2, "NUL"),
    ],
)
def test_malformed_lines_are_named(data: bytes, line: int, words: str) -> None:
    with pytest.raises(RecipientsFileError) as info:
        parse_recipients("list.csv", data)
    assert info.value.line == line
    assert info.value.field == "recipients"
    assert f"list.csv line {line}: " in str(info.value)
    assert words in str(info.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="cannot read"):
        read_recipients(tmp_path / "nope.csv")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(CampaignError, match="has no numbers"):
        read_recipients(empty)


# --- Read a piece at a time (RecipientReader / NdjsonReader), as the HTTP API does. ---


#: What reading a file gives: its recipients, or the line and text of its error.
Parsed = list[Recipient] | tuple[int, str]


def fed_in_pieces(data: bytes, cuts: list[int], reader: RecipientReader | NdjsonReader) -> Parsed:
    """What ``reader`` gives for ``data`` cut at ``cuts``: its recipients, or its error."""
    out: list[Recipient] = []
    start = 0
    try:
        for cut in [*sorted(cuts), len(data)]:
            out += reader.feed(data[start:cut])
            start = cut
        out += reader.close()
    except RecipientsFileError as exc:
        return (exc.line, str(exc))
    return out


def whole(data: bytes) -> Parsed:
    try:
        return parse_recipients("f", data)
    except RecipientsFileError as exc:
        return (exc.line, str(exc))


def byte_by_byte(data: bytes) -> Parsed:
    return fed_in_pieces(data, list(range(1, len(data))), RecipientReader("f"))


VARIED_FILES = {
    "quoted cell with a line break": (
        b'number,name\n+447901614024,"Ann\nSmith"\n+447911000001,Bo\n',
        [
            Recipient("+447901614024", {"name": "Ann\nSmith"}),
            Recipient("+447911000001", {"name": "Bo"}),
        ],
    ),
    "CRLF with a quoted line break": (
        b'number,name\r\n+447901614024,"Ann\r\nSmith"\r\n+447911000001,Bo\r\n',
        [
            Recipient("+447901614024", {"name": "Ann\nSmith"}),
            Recipient("+447911000001", {"name": "Bo"}),
        ],
    ),
    "CR line ends": (
        b"number;name\r+447901614024;Ann\r\r+447911000001;Bo\r",
        [
            Recipient("+447901614024", {"name": "Ann"}),
            Recipient("+447911000001", {"name": "Bo"}),
        ],
    ),
    "BOM, comments and blanks": (
        b"\xef\xbb\xbf# exported\n\nphone\n+447901614024\n# more\n\n+447911000001",
        [Recipient("+447901614024"), Recipient("+447911000001")],
    ),
    "no header": (
        b'+447901614024,Ann,"a, b"\r\n+447911000001,Bo,c\r\n',
        [
            Recipient("+447901614024", {"name": "Ann", "field1": "a, b"}),
            Recipient("+447911000001", {"name": "Bo", "field1": "c"}),
        ],
    ),
    "one number a line": (
        b"+447901614024\r\n07911 000001\r\nnot a number\r\n",
        [Recipient("+447901614024"), Recipient("07911 000001"), Recipient("not a number")],
    ),
    "multi-byte UTF-8": (
        "number\tname\n+447901614024\tZoë 日本\n+447911000001\t😀\n".encode(),
        [
            Recipient("+447901614024", {"name": "Zoë 日本"}),
            Recipient("+447911000001", {"name": "😀"}),
        ],
    ),
}


@pytest.mark.parametrize("name", VARIED_FILES)
def test_one_byte_at_a_time_reads_the_same(name: str) -> None:
    data, expected = VARIED_FILES[name]
    assert whole(data) == expected
    assert byte_by_byte(data) == expected


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b'number,name\r\n+447901614024,Ann\r\n+447911000001,"Bo\r\n', 3, "malformed CSV"),
        (b'number,name\n+447901614024,"Ann\n\n+447911000001,Bo\n', 2, "malformed CSV"),
        (b"number,name\r\n+447901614024,Ann\r\n\r\n+447911000001\r\n", 4, "1 columns"),
        (b"+447901614024\r+447911000001\r+447911000002,x\r", 3, "a comma"),
        (b"+447901614024\n+44\xe2\x82\xac\n\xff\n", 3, "not valid UTF-8"),
        (b"\xef\xbb\xbf+447901614024\n+447911000001\n\n\xff\n", 4, "not valid UTF-8"),
    ],
)
def test_errors_name_the_same_line_whatever_the_pieces(data: bytes, line: int, words: str) -> None:
    for got in (whole(data), byte_by_byte(data)):
        assert isinstance(got, tuple), got
        assert got[0] == line, got
        assert words in got[1]
        assert f"f line {line}: " in got[1]


def test_a_character_split_across_pieces_is_read_whole() -> None:
    data = "number,name\n+447901614024,Zoë\n".encode()
    split = data.index("ë".encode()) + 1  # between the two bytes of ë
    reader = RecipientReader("f")
    assert reader.feed(data[:split]) == []
    assert reader.feed(data[split:]) == [Recipient("+447901614024", {"name": "Zoë"})]
    assert reader.close() == []


def test_invalid_utf8_after_a_split_character_names_its_line() -> None:
    # "€" split after its second byte: the decoder holds two bytes over to the next piece.
    reader = RecipientReader("f")
    assert reader.feed(b"+447901614024\nx\xe2\x82") == [Recipient("+447901614024")]
    with pytest.raises(RecipientsFileError) as info:
        reader.feed(b"\xac\n\xff\n+447911000001\n")
    assert info.value.line == 3


def test_invalid_utf8_in_a_file_of_cr_line_ends_names_its_line() -> None:
    assert whole(b"+447901614024\r+447911000001\r\xff\r") == (
        3,
        "recipients: f line 3: not valid UTF-8",
    )


def test_an_unclosed_quote_is_an_error_at_its_line_once_the_record_runs_too_long() -> None:
    data = b'number,name\n+447901614024,"Ann\n' + b"+447911000001,Bo\n" * 150
    reader = RecipientReader("list.csv")
    with pytest.raises(RecipientsFileError) as info:
        for i in range(0, len(data), 7):
            reader.feed(data[i : i + 7])
        reader.close()
    assert info.value.line == 2
    assert "malformed CSV" in str(info.value)


def test_a_record_is_handed_out_only_once_its_quote_closes() -> None:
    reader = RecipientReader("f")
    assert reader.feed(b'+447901614024,"Ann\n') == []
    assert reader.feed(b'Smith"\n') == [Recipient("+447901614024", {"name": "Ann\nSmith"})]
    assert reader.close() == []


def test_ndjson_strings_and_objects_in_pieces() -> None:
    data = (
        b'\xef\xbb\xbf"+447901614024"\r\n\n'
        b'{"number": "+447911000001", "name": "Zo\xc3\xab"}\n'
        b'{"email": "ann@example.com", "field2": "x"}'
    )
    expected = [
        Recipient("+447901614024"),
        Recipient("+447911000001", {"name": "Zoë"}),
        Recipient("ann@example.com", {"field2": "x"}),
    ]
    reader = NdjsonReader("f")
    assert reader.feed(data) + reader.close() == expected
    for cuts in ([7], list(range(1, len(data)))):
        assert fed_in_pieces(data, cuts, NdjsonReader("f")) == expected


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        (b'"+447901614024"\n{"number": \n', 2, "not JSON"),
        (b'"+447901614024"\n\n5\n', 3, "must be a number string or an object"),
        (b'{"name": "Ann"}\n', 1, "is required and must be a string"),
        (b'"+447901614024"\n{"number": "+447911000001", "name": 5}\n', 2, "must be a string"),
        (b'{"number": "+447911000001", "colour": "red"}\n', 1, "unknown field"),
        (b'"+447901614024"\r\n"\xff"\r\n', 2, "not valid UTF-8"),
    ],
)
def test_ndjson_errors_name_the_line(data: bytes, line: int, words: str) -> None:
    for cuts in ([], list(range(1, len(data)))):
        got = fed_in_pieces(data, cuts, NdjsonReader("list.ndjson"))
        assert isinstance(got, tuple), got
        assert got[0] == line
        assert f"list.ndjson line {line}: " in got[1] and words in got[1]


# Lines a generated file is made of: CSV rows, quoted cells with line breaks and delimiters,
# comments, blanks, non-ASCII text; joined with any of the three line ends.
CSV_LINES = st.sampled_from(
    [
        "+447901614024,Ann",
        '+447911000001,"Smith, Ann"',
        '+447911000002,"two\nlines"',
        '+447911000003,"three\r\nline\rends"',
        "+447911000004,Zoë 日本",
        '+447911000005,"say ""hi"""',
        "# a comment",
        "",
        "   ",
        "+447911000006,",
    ]
)
PLAIN_LINES = st.sampled_from(
    ["+447901614024", "07911 000001", "not a number", "# note", "", "Ölçü", "+44 7911 000002"]
)


@st.composite
def recipient_files(draw: st.DrawFn) -> bytes:
    csv_file = draw(st.booleans())
    lines = draw(st.lists(CSV_LINES if csv_file else PLAIN_LINES, max_size=12))
    header = draw(st.sampled_from(["", "number,name" if csv_file else "phone"]))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    last = draw(st.sampled_from(["", end]))
    return (bom + end.join([header, *lines] if header else lines) + last).encode()


@given(data=recipient_files(), cuts=st.lists(st.integers(min_value=0, max_value=400)))
@settings(max_examples=400, deadline=None)
def test_any_split_of_the_bytes_reads_the_same(data: bytes, cuts: list[int]) -> None:
    pieces = [c for c in cuts if c <= len(data)]
    assert fed_in_pieces(data, pieces, RecipientReader("f")) == whole(data)
