"""How per-recipient records are laid out in Redis: small buckets and compact rows.

A campaign keeps up to three records per recipient: its send result, its latest delivery
report and the rank a report gave it (model.Rank; the result row is the rank until then).
One Redis hash field per recipient costs some 35-40 bytes of overhead in a big hash
(Redis' hashtable encoding), more than the rank itself. So each of these hashes is cut
into buckets of :data:`BUCKET` recipients, ``<base>:<index // BUCKET>`` with field
``index % BUCKET``: a hash that small with short values is stored as a listpack, a few
bytes of overhead per field (Redis' memory-optimisation guide). Every bucket shares the
campaign's ``{cid}`` hash tag, so a script still touches one Cluster slot.

The values are compact too: a status letter and ``|``-separated fields rather than JSON
(JSON only when a text holds a ``|``, a tab or a newline; a reader tells it by its ``[``,
which also reads rows written before). A result row leaves out the number when the
recipient's chunk holds it (every recipient but an invalid one) and its trailing empty
fields; a report leaves out what repeats another field. Rows of at most 64 bytes keep a
bucket a listpack under Redis' default ``hash-max-listpack-value``; a longer one (a
provider's very long message id) only turns its own bucket into a hashtable.

Python reads and writes through the functions here; the Lua scripts through
:data:`LUA_BUCKETS` (``bucket(base, index)`` gives the key and field).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from dispatcher.model import Result
from dispatcher.providers.base import Report

__all__ = [
    "BUCKET",
    "LUA_BUCKETS",
    "LUA_WORDS",
    "Lines",
    "bucket",
    "bucket_keys",
    "hmget",
    "hmget_many",
    "hset",
    "pack_report",
    "pack_row",
    "plain_field",
    "record_lines",
    "report_fields",
    "row_around",
    "unpack_row",
]

#: Recipients per bucket: at most Redis' default ``hash-max-listpack-entries`` (128).
BUCKET = 128

LUA_BUCKETS = f"""
local function bucket(base, index)
  local i = tonumber(index)
  return base .. ':' .. math.floor(i / {BUCKET}), tostring(i % {BUCKET})
end
"""


def bucket(base: str, index: int) -> tuple[str, str]:
    """The key and field that hold recipient ``index`` of the bucketed hash ``base``."""
    return f"{base}:{index // BUCKET}", str(index % BUCKET)


def bucket_keys(base: str, entries: int) -> list[str]:
    """Every bucket a campaign of ``entries`` recipients may have under ``base``."""
    return [f"{base}:{b}" for b in range(-(-entries // BUCKET))]


def _by_bucket(base: str, indexes: Iterable[int]) -> dict[str, list[tuple[int, str]]]:
    grouped: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for at, index in enumerate(indexes):
        key, field = bucket(base, index)
        grouped[key].append((at, field))
    return grouped


async def hmget(redis: Any, base: str, indexes: Sequence[int]) -> list[bytes | None]:
    """The values of ``indexes`` (None where a recipient has none), one HMGET per bucket
    in one pipeline."""
    return (await hmget_many(redis, [base], indexes))[0]


async def hmget_many(
    redis: Any, bases: Sequence[str], indexes: Sequence[int]
) -> list[list[bytes | None]]:
    """:func:`hmget` of the same ``indexes`` under each of ``bases`` (a campaign's results
    and reports, say), all in one pipeline: one round trip."""
    if not indexes:
        return [[] for _ in bases]
    groups = [_by_bucket(base, indexes) for base in bases]
    async with redis.pipeline(transaction=False) as pipe:
        for grouped in groups:
            for key, fields in grouped.items():
                pipe.hmget(key, [f for _, f in fields])
        answers = iter(await pipe.execute())
    out: list[list[bytes | None]] = []
    for grouped in groups:
        values: list[bytes | None] = [None] * len(indexes)
        for fields in grouped.values():
            for (at, _field), value in zip(fields, next(answers), strict=True):
                values[at] = value
        out.append(values)
    return out


def hset(pipe: Any, base: str, values: Mapping[int, Any]) -> None:
    """Queue HSETs of ``values`` (index → value) on ``pipe``, one per bucket."""
    grouped: dict[str, dict[str, Any]] = defaultdict(dict)
    for index, value in values.items():
        key, field = bucket(base, index)
        grouped[key][field] = value
    for key, mapping in grouped.items():
        pipe.hset(key, mapping=mapping)


def _trimmed(values: list[Any]) -> list[Any]:
    while values and values[-1] is None:
        values.pop()
    return values


#: One letter per status, the first of a compact value (model.Status).
CODES: dict[str, str] = {
    "pending": "p", "invalid": "i", "accepted": "a", "sent": "s", "delivered": "d",
    "undelivered": "u", "expired": "e", "rejected": "r", "failed": "f", "submitted": "b",
    "cancelled": "c",
}  # fmt: skip
STATUSES = {code: status for status, code in CODES.items()}
#: For the scripts: a row's first byte → its status (a JSON row, ``[``, says it itself).
LUA_WORDS = "{" + ", ".join(f"[{ord(c)}]='{s}'" for s, c in sorted(CODES.items())) + "}"
SAME = "="  # a report's field that repeats another: raw is the status, error is its code
_UNSAFE = frozenset("|\t\n")


def _compact(code: str, fields: list[Any], marks: Sequence[int] = ()) -> bytes | None:
    """``code`` then the fields joined by ``|``, trailing empty ones left out; None when a
    field cannot be written so (a text with ``|``, a tab or a newline, an empty text or a
    bare ``=``): the caller writes JSON instead, which a reader tells by its ``[``. The
    fields at ``marks`` are :data:`SAME` marks, written as they are."""
    out: list[str] = []
    for at, value in enumerate(fields):
        if at in marks:
            out.append(SAME)
        elif value is None:
            out.append("")
        elif isinstance(value, str):
            if not value or value == SAME or not _UNSAFE.isdisjoint(value):
                return None
            out.append(value)
        elif isinstance(value, bool):
            return None
        else:
            out.append(repr(value) if isinstance(value, float) else str(value))
    while out and not out[-1]:
        out.pop()
    return (code + "|".join(out)).encode()


def _text(value: str) -> str | None:
    return value or None


def _int(value: str) -> int | None:
    return int(value) if value else None


def _float(value: str) -> float | None:
    return float(value) if value else None


def plain_field(text: str | None) -> bool:
    """Whether ``text`` can be a ``|``-separated field (:data:`_UNSAFE`): three scans in C,
    where a set's isdisjoint looked up each character (a message id a recipient)."""
    return text is None or (
        text not in ("", SAME) and "|" not in text and "\t" not in text and "\n" not in text
    )


def _number(value: object) -> str | None:
    """An int or float field as :func:`_compact` writes it; None for another type."""
    if value is None:
        return ""
    if type(value) is int:
        return str(value)
    return repr(value) if type(value) is float else None


def _accepted_tail(r: Result) -> str | None:
    """What follows the message id in a result's row in the common form (every field but
    the message id, trailing empty ones left out); None where it does not apply."""
    if not plain_field(r.batch_id):
        return None
    segments, price, sent_at = _number(r.segments), _number(r.price), _number(r.sent_at)
    if segments is None or price is None or sent_at is None:
        return None
    return f"|||{segments}|{price}|{sent_at}|{r.batch_id or ''}".rstrip("|")


def row_around(result: Result) -> tuple[str, str] | None:
    """What comes before and after the message id in the row of ``result`` (its message id
    aside, a result with no error), so that rows alike but for their ids are made
    with one f-string each; None when such a row is not in the common form
    (:func:`pack_row` writes it then)."""
    code = CODES.get(result.status)
    tail = _accepted_tail(result) if code else None
    return None if code is None or tail is None else (code, tail)


def pack_row(result: Result, *, with_number: bool = False) -> bytes:
    """A result as stored: its status letter (:data:`CODES`), then ``message_id|error_code|
    error|segments|price|sent_at|batch_id|number`` without the trailing empty ones, e.g.
    ``a3321910441|||1||1764475000123``: some 30 bytes where a JSON list took 55. The number
    is kept only ``with_number`` (an invalid recipient, which no chunk holds). A result
    whose text fields cannot be written so is stored as a JSON list, in the same order."""
    r = result
    mid = r.message_id
    if not with_number and r.error_code is None and r.error is None and plain_field(mid):
        made = row_around(r)  # the common case, written without the general loop
        if made is not None:
            return f"{made[0]}{mid or ''}{made[1]}".encode()
    code = CODES.get(r.status)
    fields = [r.message_id, r.error_code, r.error, r.segments, r.price, r.sent_at, r.batch_id,
              r.number if with_number else None]  # fmt: skip
    packed = _compact(code, fields) if code else None
    return packed if packed is not None else orjson.dumps(_trimmed([r.status, *fields]))


def record_lines(results: Iterable[Result]) -> bytes:
    """The rows of ``results`` (:func:`pack_row`) for the record script (lua.WRITE_ROWS), a
    line each. A line ``=<index>`` gives the index of the row after it, and each row is for
    the index after the previous one's, so a chunk's rows (indexes mostly in a run) name
    no index and no status: the script reads the status from the row's first letter (a JSON
    row's first field). Parsing three fields a row was half of Redis' time for a batch.

    The fields a chunk's results mostly share (segments, price, when sent, batch) are
    packed once per distinct value, not once per recipient: a batch provider's chunk
    records tens of thousands of rows that differ only in their message ids. Rows alike
    in a run are written once and counted (:class:`Lines`)."""
    around: dict[tuple[Any, ...], tuple[str, str] | None] = {}
    lines = Lines()
    for r in results:
        lines.at(r.index)
        mid = r.message_id
        if r.error_code is None and r.error is None and (mid is None or plain_field(mid)):
            # the types too: 1 and 1.0 (or True) are one key but are written differently
            seg, price = r.segments, r.price
            key = (r.status, seg, type(seg), price, type(price), r.sent_at, r.batch_id)
            made = around[key] if key in around else around.setdefault(key, row_around(r))
            if made is not None:
                lines.row(f"{made[0]}{mid or ''}{made[1]}")
                continue
        lines.row(pack_row(r).decode())
    return lines.done()


class Lines:
    """The record script's lines, made a result at a time: :meth:`at` its index, then
    :meth:`row`. A row the same as the one before (a batch provider's chunk without message
    ids: tens of thousands alike) becomes a count, ``*<n>``, not a line each."""

    __slots__ = ("_again", "_expect", "_last", "_out")

    def __init__(self) -> None:
        self._out: list[str] = []
        self._expect = -1
        self._last: str | None = None
        self._again = 0  # rows like the last, not written yet

    def at(self, index: int) -> None:
        if index != self._expect:
            self._flush()
            self._out.append(f"={index}")
        self._expect = index + 1

    def row(self, row: str) -> None:
        if row == self._last:
            self._again += 1
            return
        self._flush()
        self._out.append(row)
        self._last = row

    def _flush(self) -> None:
        if self._again:
            self._out.append(f"*{self._again}")
            self._again = 0

    def done(self) -> bytes:
        self._flush()
        return "\n".join(self._out).encode()


def unpack_row(index: int, number: str | None, blob: bytes) -> Result:
    """The result :func:`pack_row` wrote; ``number`` is the chunk's (None: the row's)."""
    if blob[:1] == b"[":
        fields = orjson.loads(blob)
        fields += [None] * (9 - len(fields))
        status, mid, code, error, segments, price, sent_at, batch, own = fields
    else:
        text = blob.decode()
        parts = text[1:].split("|")
        parts += [""] * (8 - len(parts))
        status = STATUSES[text[0]]
        mid, code, error, batch, own = (_text(parts[i]) for i in (0, 1, 2, 6, 7))
        segments, price, sent_at = _int(parts[3]), _float(parts[4]), _int(parts[5])
    return Result(
        index, number or own or "", status, mid, code, error, segments, price, sent_at, batch
    )


def pack_report(report: Report, *, sent_id: str | None = None) -> bytes:
    """A delivery report as stored: its status letter, then ``raw|error_code|error|at|
    message_id`` without the trailing empty ones (JSON, ``[status, raw, …]``, when that
    cannot be written, as :func:`pack_row`). What repeats another field is left out, which
    keeps a report well under the 64 bytes of a listpack value: ``raw`` is ``=`` when it
    is the status word itself, ``error`` is ``=`` when it is the error code itself, and
    the message id is left out when it is ``sent_id``, the one the send result holds (a
    report whose recipient has no result yet keeps its own: unknown.py settles with it)."""
    r = report
    same_raw = r.raw_status == r.status
    same_error = r.error is not None and r.error == r.error_code
    mid = None if r.message_id == sent_id else r.message_id
    code = CODES.get(r.status)
    if code:
        marks = [at for at, same in ((0, same_raw), (2, same_error)) if same]
        packed = _compact(code, [r.raw_status, r.error_code, r.error, r.at, mid], marks)
        if packed is not None:
            return packed
    raw: Any = True if same_raw else r.raw_status
    error: Any = True if same_error else r.error
    return orjson.dumps(_trimmed([r.status, raw, r.error_code, error, r.at, mid]))


def report_fields(
    blob: bytes,
) -> tuple[str, str | None, str | None, str | None, int | None, str | None]:
    """``(status, raw, error_code, error, at, message_id)`` of :func:`pack_report`; the
    message id is None when it is the send result's."""
    if blob[:1] == b"[":
        fields = orjson.loads(blob)
        fields += [None] * (6 - len(fields))
        status, raw, code, error, at, mid = fields[:6]
        return (
            status,
            status if raw is True else raw,
            code,
            code if error is True else error,
            at,
            mid,
        )
    text = blob.decode()
    parts = text[1:].split("|")
    parts += [""] * (5 - len(parts))
    status = STATUSES[text[0]]
    raw = status if parts[0] == SAME else parts[0]
    code = _text(parts[1])
    error = code if parts[2] == SAME else _text(parts[2])
    return status, raw, code, error, _int(parts[3]), _text(parts[4])
