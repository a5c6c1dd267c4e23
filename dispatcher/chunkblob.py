"""How a chunk's recipients are stored: one value of the campaign's chunks hash (keys.py).

Two forms, told apart by the first byte:

- ``=<index>`` then one number a line: a run of recipients with consecutive indexes and
  no fields, the first at ``<index>`` (the usual chunk of a list of plain numbers). It is
  made by one join and read by one split: no object per recipient at enqueue, and about
  half the bytes.
- ``[``: JSON, a list of ``[index, number]`` or ``[index, number, fields]``: any chunk
  (every chunk was written so before the run form).

Only numbers take the run form: an E.164 number holds no newline. Addresses are JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

import orjson

from dispatcher.providers.base import ChunkRecipient

#: A run of numbers: its first recipient's index, then the numbers.
Run = tuple[int, list[str]]
#: One recipient: ``[index, number]`` or ``[index, number, fields]``.
Entry = Sequence[Any]


def decode(blob: bytes | str) -> list[ChunkRecipient]:
    """The recipients of a stored chunk, in order."""
    if isinstance(blob, str):  # a client that decodes responses
        blob = blob.encode()
    if blob[:1] == b"=":
        head, _, body = blob.partition(b"\n")
        first = int(head[1:])
        numbers = body.decode().split("\n")
        return list(map(ChunkRecipient, range(first, first + len(numbers)), numbers))
    return [ChunkRecipient(m[0], m[1], m[2] if len(m) > 2 else None) for m in orjson.loads(blob)]


def _follow_on(runs: list[Run]) -> bool:
    at = runs[0][0]
    for start, numbers in runs:
        if start != at:
            return False
        at = start + len(numbers)
    return True


def _run_form(first: int, numbers: Iterable[str]) -> bytes:
    return f"={first}\n".encode() + "\n".join(numbers).encode()


def _blob(pieces: Sequence[Run | list[Entry]], runs_ok: bool) -> bytes:
    """One chunk's value: the run form if ``runs_ok`` (numbers), its recipients have no
    fields and their indexes follow on, else JSON. Pieces that are all runs need no step
    per recipient to tell."""
    runs = [p for p in pieces if isinstance(p, tuple)]
    if runs_ok and len(runs) == len(pieces) and _follow_on(runs):
        # each run joined, then the runs: no step per number in Python
        return _run_form(runs[0][0], ["\n".join(numbers) for _, numbers in runs])
    entries: list[Entry] = []
    for p in pieces:
        entries.extend([[i, n] for i, n in enumerate(p[1], p[0])] if isinstance(p, tuple) else p)
    first = entries[0][0]
    plain = runs_ok and all(len(e) == 2 for e in entries)
    if plain and [e[0] for e in entries] == list(range(first, first + len(entries))):
        return _run_form(first, (e[1] for e in entries))
    return orjson.dumps(entries)


class Chunker:
    """Cuts recipients into chunks of ``size``: :meth:`entries` adds them one entry each
    (``[index, number(, fields)]``), :meth:`run` adds a run of plain numbers with
    consecutive indexes as it is. Full chunks gather in :attr:`chunks`; :meth:`close` cuts
    the last, partial one. ``numbers``: False for email addresses, which stay JSON."""

    def __init__(self, size: int, numbers: bool = True) -> None:
        self.size = size
        self.numbers = numbers
        self.chunks: list[bytes] = []
        self._pieces: list[Run | list[Entry]] = []
        self._filled = 0

    def entries(self, entries: Iterable[Entry]) -> None:
        it = iter(entries)
        while part := list(islice(it, self.size - self._filled)):
            self._add(part, len(part))

    def run(self, first: int, numbers: list[str]) -> None:
        at = 0
        while at < len(numbers):
            part = numbers[at : at + self.size - self._filled]
            self._add((first + at, part), len(part))
            at += len(part)

    def _add(self, piece: Run | list[Entry], n: int) -> None:
        self._pieces.append(piece)
        self._filled += n
        if self._filled == self.size:
            self.close()

    def close(self) -> None:
        if self._pieces:
            self.chunks.append(_blob(self._pieces, self.numbers))
            self._pieces, self._filled = [], 0
