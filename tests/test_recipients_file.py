"""Recipients files: CSV or one number a line; malformed lines are errors naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.model import CampaignError, Recipient
from dispatcher.recipients_file import RecipientsFileError, parse_recipients, read_recipients


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
