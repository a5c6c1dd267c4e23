"""How per-recipient records are laid out in Redis: small buckets and compact rows.

A campaign keeps three records per recipient: its send result, its latest delivery report
and its rank (model.Rank). One Redis hash field per recipient costs some 35-40 bytes of
overhead in a big hash (Redis' hashtable encoding), more than the rank itself. So each of
these hashes is cut into buckets of :data:`BUCKET` recipients, ``<base>:<index // BUCKET>``
with field ``index % BUCKET``: a hash that small with short values is stored as a listpack,
a few bytes of overhead per field (Redis' memory-optimisation guide). Every bucket shares
the campaign's ``{cid}`` hash tag, so a script still touches one Cluster slot.

The values are compact too: a result row leaves out the number when the recipient's chunk
holds it (every recipient but an invalid one) and its trailing empty fields; a report
leaves out the provider's status word when it is the status itself. Rows of at most 64
bytes keep a bucket a listpack under Redis' default ``hash-max-listpack-value``; a longer
one (a provider's very long message id) only turns its own bucket into a hashtable.

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
    "bucket",
    "bucket_keys",
    "hmget",
    "hset",
    "pack_report",
    "pack_row",
    "report_fields",
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
    if not indexes:
        return []
    grouped = _by_bucket(base, indexes)
    async with redis.pipeline(transaction=False) as pipe:
        for key, fields in grouped.items():
            pipe.hmget(key, [f for _, f in fields])
        answers = await pipe.execute()
    out: list[bytes | None] = [None] * len(indexes)
    for fields, values in zip(grouped.values(), answers, strict=True):
        for (at, _field), value in zip(fields, values, strict=True):
            out[at] = value
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


def pack_row(result: Result, *, with_number: bool = False) -> bytes:
    """A result as stored: ``[status, message_id, error_code, error, segments, price,
    sent_at, batch_id, number]`` without its trailing nulls. The number is kept only
    ``with_number`` (an invalid recipient, which no chunk holds)."""
    return orjson.dumps(
        _trimmed(
            [
                result.status,
                result.message_id,
                result.error_code,
                result.error,
                result.segments,
                result.price,
                result.sent_at,
                result.batch_id,
                result.number if with_number else None,
            ]
        )
    )


def unpack_row(index: int, number: str | None, blob: bytes) -> Result:
    """The result :func:`pack_row` wrote; ``number`` is the chunk's (None: the row's)."""
    fields = orjson.loads(blob)
    fields += [None] * (9 - len(fields))
    status, mid, code, error, segments, price, sent_at, batch, own = fields
    return Result(
        index, number or own or "", status, mid, code, error, segments, price, sent_at, batch
    )


def pack_report(report: Report) -> bytes:
    """A delivery report as stored: ``[status, raw, error_code, error, at, message_id]``
    without trailing nulls; ``raw`` is ``true`` when it is the status word itself."""
    r = report
    raw: Any = True if r.raw_status == r.status else r.raw_status
    return orjson.dumps(_trimmed([r.status, raw, r.error_code, r.error, r.at, r.message_id]))


def report_fields(
    blob: bytes,
) -> tuple[str, str | None, str | None, str | None, int | None, str | None]:
    """``(status, raw, error_code, error, at, message_id)`` of :func:`pack_report`."""
    fields = orjson.loads(blob)
    fields += [None] * (6 - len(fields))
    status, raw, code, error, at, mid = fields[:6]
    return status, status if raw is True else raw, code, error, at, mid
