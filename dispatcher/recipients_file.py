"""Read a recipients file: CSV, or one number a line.

The delimiter is the first line's: whichever of ``,`` ``;`` tab or ``|`` splits it into the
most cells, quotes read right; a first line none of them splits makes a one-number-a-line
file. Phone numbers and email addresses never hold those characters, and Excel writes ``;``
in many locales.

The first row is a header when its first cell has letters but no digit and no ``@``, so it
cannot be a number or an address (``number``, ``phone``, ``Mobile``…); in a one-column file
it is just skipped. A CSV header names the personalisation columns after the first
(``name``, ``field1``…``field4``); without a header the columns are taken in that order.
Blank lines and lines starting with ``#`` are skipped.

A structural fault (bad encoding, an unterminated quote, a row with the wrong number of
columns, an empty number cell) is an error naming the file and line, and the campaign is not
enqueued. A cell that is merely not a phone number is read as is: validation records it as
that recipient's ``invalid`` result.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dispatcher.model import FIELD_NAMES, CampaignError, Recipient

#: Candidate delimiters, with their names for errors; on a tie the first wins.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


class RecipientsFileError(CampaignError):
    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__("recipients", f"{path} line {line}: {message}")
        self.path = path
        self.line = line


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecipientsFileError(path, line, "not valid UTF-8") from None


def is_header(cell: str) -> bool:
    """A first cell of words, which cannot be a number or an email address, names a column."""
    return any(c.isalpha() for c in cell) and not any(c.isdigit() for c in cell) and "@" not in cell


def _plain(path: str, lines: list[str]) -> list[Recipient]:
    out = []
    first = True
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\x00" in line:
            raise RecipientsFileError(path, number, "contains a NUL byte")
        if first and is_header(line):
            first = False
            continue
        first = False
        for delimiter, called in DELIMITERS.items():
            if delimiter in line:
                raise RecipientsFileError(
                    path, number, f"a {called} in a one-number-a-line file (make line 1 CSV too)"
                )
        out.append(Recipient(line))
    return out


def _delimiter(first: str) -> str | None:
    """The delimiter that splits the first line into the most cells, preferring one whose
    cells hold no stray quote (it read the quoting right); None: not CSV."""
    best, score = None, (False, 1)
    for delimiter in DELIMITERS:
        cells = next(csv.reader([first], delimiter=delimiter), [])
        mine = ('"' not in "".join(cells), len(cells))
        if len(cells) > 1 and mine > score:
            best, score = delimiter, mine
    return best


def _csv(path: str, text: str, delimiter: str) -> list[Recipient]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    columns: list[str] | None = None
    out = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if row[0].lstrip().startswith("#"):
                continue
            cells = [cell.strip() for cell in row]
            if columns is None:
                if is_header(cells[0]):
                    columns = ["number", *(c.lower() for c in cells[1:])]
                    for name in columns[1:]:
                        if name not in FIELD_NAMES:
                            raise RecipientsFileError(path, line, f"unknown column {name!r}")
                    continue
                columns = ["number", *FIELD_NAMES][: max(len(cells), 1)]
            if len(cells) != len(columns):
                raise RecipientsFileError(
                    path, line, f"{len(cells)} columns, expected {len(columns)}"
                )
            if not cells[0]:
                raise RecipientsFileError(path, line, "empty number")
            fields = {k: v for k, v in zip(columns[1:], cells[1:], strict=True) if v}
            out.append(Recipient(cells[0], fields))
    except csv.Error as exc:
        raise RecipientsFileError(path, reader.line_num, f"malformed CSV ({exc})") from None
    return out


def parse_recipients(path: str, data: bytes) -> list[Recipient]:
    text = _decode(path, data)
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    delimiter = _delimiter(first)
    if delimiter is not None:
        return _csv(path, text, delimiter)
    return _plain(path, lines)


def read_recipients(path: str | Path) -> list[Recipient]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CampaignError("recipients", f"cannot read {path}: {exc.strerror}") from None
    recipients = parse_recipients(str(path), data)
    if not recipients:
        raise CampaignError("recipients", f"{path} has no numbers")
    return recipients
