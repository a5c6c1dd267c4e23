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

:class:`RecipientReader` reads a file as it arrives (the HTTP API's uploads), a piece at a
time: it keeps only the line being read and the record a quoted cell carries over lines, so
an upload of millions of recipients is never held whole. A file on disk goes through it in
one piece. :class:`NdjsonReader` does the same for JSON lines (a number string, or an object
``{"number": …, "name": …}`` a line).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from dispatcher.model import FIELD_NAMES, CampaignError, Recipient, recipient_from_json

#: Candidate delimiters, with their names for errors; on a tie the first wins.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
LINE_END = re.compile(rb"\r\n?|\n")
#: What a one-number-a-line file may not hold (_plain says which line, and why).
_PLAIN_FAULT = re.compile("[\x00" + re.escape("".join(DELIMITERS)) + "]")
#: A quoted cell may hold line breaks, but not a whole file's worth: a quote never closed
#: is an error at its line rather than the rest of the upload read as one cell.
MAX_RECORD_LINES = 100
#: Bytes of a file read at a time when it is streamed.
PIECE = 1 << 18


class RecipientsFileError(CampaignError):
    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__("recipients", f"{path} line {line}: {message}")
        self.path = path
        self.line = line


def is_header(cell: str) -> bool:
    """A first cell of words, which cannot be a number or an email address, names a column."""
    return any(c.isalpha() for c in cell) and not any(c.isdigit() for c in cell) and "@" not in cell


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


def _line_ends(data: bytes) -> int:
    """How many lines ``data`` ends (``\\r\\n``, ``\\n`` or ``\\r``)."""
    return len(LINE_END.findall(data))


class _Lines:
    """Bytes in, whole decoded lines out (``\\n``, ``\\r\\n`` or ``\\r`` ends, given as ``\\n``),
    with the number of the line each starts on."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._tail = ""  # the unfinished last line
        self.line = 0  # lines handed out so far

    def feed(self, data: bytes, final: bool = False) -> list[str]:
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            line = self.line + _line_ends(self._tail.encode() + exc.object[: exc.start]) + 1
            raise RecipientsFileError(self.path, line, "not valid UTF-8") from None
        text = self._tail + text
        if not final and text.endswith("\r"):
            cut = max(text.rfind("\n", 0, -1), text.rfind("\r", 0, -1)) + 1  # "\n" may follow
        else:
            cut = max(text.rfind("\n"), text.rfind("\r")) + 1
        if final:
            cut = len(text)
        done, self._tail = text[:cut], text[cut:]
        if not done:
            return []
        lines = done.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines[-1] == "":
            lines.pop()
        return [line + "\n" for line in lines]


class RecipientReader:
    """A recipients file read a piece at a time: :meth:`feed` bytes as they come, then
    :meth:`close`; each returns the recipients read so far. Errors name ``path`` and line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lines = _Lines(path)
        self._mode: str | None = None  # None until the first line with content: csv, plain
        self._delimiter = ","
        self._columns: list[str] | None = None
        self._record: list[str] = []  # lines of a CSV record a quoted cell carries on
        self._record_line = 0
        self._header_checked = False

    def feed(self, data: bytes) -> list[Recipient]:
        return [r if isinstance(r, Recipient) else Recipient(r) for r in self.read(data)]

    def close(self) -> list[Recipient]:
        return [r if isinstance(r, Recipient) else Recipient(r) for r in self.read(None)]

    def read(self, data: bytes | None) -> list[Recipient | str]:
        """:meth:`feed` (``None``: :meth:`close`), with a one-number-a-line file's numbers
        as plain strings: what enqueue takes, without an object per line."""
        if data is not None:
            return self._take(self._lines.feed(data))
        out = self._take(self._lines.feed(b"", final=True))
        if self._record:
            raise RecipientsFileError(
                self.path, self._record_line, "malformed CSV (unexpected end of data)"
            )
        return out

    def _take(self, lines: list[str]) -> list[Recipient | str]:
        if (
            self._mode == "plain"
            and self._header_checked
            and not _PLAIN_FAULT.search("".join(lines))
        ):
            # Nothing in these lines for _plain to refuse: take them in one pass.
            self._lines.line += len(lines)
            return [n for n in (t.strip() for t in lines) if n and n[0] != "#"]
        out: list[Recipient | str] = []
        for text in lines:
            self._lines.line += 1
            number = self._lines.line
            if self._mode is None:
                stripped = text.strip()
                if not stripped or stripped.startswith("#"):
                    continue
                delimiter = _delimiter(text.rstrip("\n"))
                self._mode = "plain" if delimiter is None else "csv"
                self._delimiter = delimiter or ","
            recipient: Recipient | str | None
            if self._mode == "plain":
                recipient = self._plain(number, text)
            else:
                recipient = self._csv(number, text)
            if recipient is not None:
                out.append(recipient)
        return out

    def _plain(self, number: int, raw: str) -> str | None:
        line = raw.strip()
        if not line or line.startswith("#"):
            return None
        if "\x00" in line:
            raise RecipientsFileError(self.path, number, "contains a NUL byte")
        if not self._header_checked:
            self._header_checked = True
            if is_header(line):
                return None
        for delimiter, called in DELIMITERS.items():
            if delimiter in line:
                raise RecipientsFileError(
                    self.path,
                    number,
                    f"a {called} in a one-number-a-line file (make line 1 CSV too)",
                )
        return line

    def _csv(self, number: int, text: str) -> Recipient | None:
        if not self._record:
            self._record_line = number
        self._record.append(text)
        try:
            rows = list(csv.reader(self._record, delimiter=self._delimiter, strict=True))
        except csv.Error as exc:
            # A quoted cell goes on over the next line: read on until it closes.
            if str(exc) == "unexpected end of data" and len(self._record) < MAX_RECORD_LINES:
                return None
            line = self._record_line
            self._record = []
            raise RecipientsFileError(self.path, line, f"malformed CSV ({exc})") from None
        self._record = []
        row = rows[0] if rows else []
        return self._row(self._record_line, row)

    def _row(self, line: int, row: list[str]) -> Recipient | None:
        if not row or all(not cell.strip() for cell in row):
            return None
        if row[0].lstrip().startswith("#"):
            return None
        cells = [cell.strip() for cell in row]
        if self._columns is None:
            if is_header(cells[0]):
                self._columns = ["number", *(c.lower() for c in cells[1:])]
                for name in self._columns[1:]:
                    if name not in FIELD_NAMES:
                        raise RecipientsFileError(self.path, line, f"unknown column {name!r}")
                return None
            self._columns = ["number", *FIELD_NAMES][: max(len(cells), 1)]
        if len(cells) != len(self._columns):
            raise RecipientsFileError(
                self.path, line, f"{len(cells)} columns, expected {len(self._columns)}"
            )
        if not cells[0]:
            raise RecipientsFileError(self.path, line, "empty number")
        fields = {k: v for k, v in zip(self._columns[1:], cells[1:], strict=True) if v}
        return Recipient(cells[0], fields)


class NdjsonReader:
    """JSON lines, a piece at a time: each line a number string or an object with
    ``number`` (or ``email``) and personalisation fields; blank lines are skipped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lines = _Lines(path)

    def feed(self, data: bytes) -> list[Recipient]:
        return self._take(self._lines.feed(data))

    def close(self) -> list[Recipient]:
        return self._take(self._lines.feed(b"", final=True))

    def _take(self, lines: list[str]) -> list[Recipient]:
        out: list[Recipient] = []
        for text in lines:
            self._lines.line += 1
            if not text.strip():
                continue
            try:
                item: Any = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise RecipientsFileError(
                    self.path, self._lines.line, f"not JSON ({exc})"
                ) from None
            try:
                got = recipient_from_json(item, "recipient")
            except CampaignError as exc:
                where = exc.field.removeprefix("recipient").lstrip(".")
                message = f"{where}: {exc.message}" if where else exc.message
                raise RecipientsFileError(self.path, self._lines.line, message) from None
            out.append(got if isinstance(got, Recipient) else Recipient(got))
        return out


def parse_recipients(path: str, data: bytes) -> list[Recipient]:
    reader = RecipientReader(path)
    return reader.feed(data) + reader.close()


def stream_recipients(path: str | Path, piece: int = PIECE) -> Iterator[Recipient | str]:
    """The recipients of a file read ``piece`` bytes at a time, for lists too long to hold
    whole (enqueue streams them: staging.py). The file is opened at once, so a missing one
    is an error before anything else; an empty one is, as :func:`read_recipients` says,
    once it has been read."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - the generator below closes it
    except OSError as exc:
        raise CampaignError("recipients", f"cannot read {path}: {exc.strerror}") from None
    return _stream(handle, str(path), piece)


def _stream(handle: BinaryIO, path: str, piece: int) -> Iterator[Recipient | str]:
    reader = RecipientReader(path)
    found = False
    with handle:
        while data := handle.read(piece):
            got = reader.read(data)
            found = found or bool(got)
            yield from got
        got = reader.read(None)
    yield from got
    if not found and not got:
        raise CampaignError("recipients", f"{path} has no numbers")


def read_recipients(path: str | Path) -> list[Recipient]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CampaignError("recipients", f"cannot read {path}: {exc.strerror}") from None
    recipients = parse_recipients(str(path), data)
    if not recipients:
        raise CampaignError("recipients", f"{path} has no numbers")
    return recipients
