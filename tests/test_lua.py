"""Every script gets its shared constants one way (lua.render) and its KEYS by name: no
placeholder is left, no events length is written by hand, and every script compiles."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher import control, fencing, lua, queue, rows, settle, tracking, unknown
from dispatcher.model import FINAL, Rank, Result, Status
from dispatcher.settle import RecordArgs, RecordKeys, Settle
from dispatcher.store import EVENTS_MAXLEN, PAUSED

SCRIPTS = {
    "record": settle.RECORD,
    "promote": queue._PROMOTE,
    "extend": queue._EXTEND,
    "apply": tracking._APPLY,
    "found": unknown._FOUND,
    "send_again": unknown._SEND_AGAIN,
    "hold": unknown._HOLD,
    "rescore": unknown._RESCORE,
    "resume": control._RESUME,
    "pause": control._PAUSE,
    "cancel": control._CANCEL,
    "retry": control._RETRY,
    "takeover": fencing._TAKEOVER,
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_constant_is_rendered_and_the_events_length_is_the_one(name: str) -> None:
    text = SCRIPTS[name]
    assert "@" not in text
    for length in re.findall(r"'MAXLEN', '~', ([^,]+),", text):
        assert length == str(EVENTS_MAXLEN)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
async def test_every_script_compiles(redis: Redis, name: str) -> None:
    assert await redis.script_load(SCRIPTS[name])


def test_render_fills_shared_and_own_constants_and_refuses_unknown_ones() -> None:
    assert lua.render("x = @MAXLEN@ + @PAUSED@ + @N@", N=7) == f"x = {EVENTS_MAXLEN} + {PAUSED} + 7"
    with pytest.raises(KeyError, match="@MAXLENGTH@"):
        lua.render("x = @MAXLENGTH@")


def test_script_names_keys_and_args_in_order() -> None:
    text = lua.script("return {a, b, c}", keys=("a", "b"), argv=("c",))
    assert text.splitlines()[:3] == ["local a = KEYS[1]", "local b = KEYS[2]", "local c = ARGV[1]"]
    with pytest.raises(ValueError, match="twice"):
        lua.script("", keys=("a",), argv=("a",))
    with pytest.raises(ValueError, match="cannot name"):
        lua.script("", keys=("end",))


def test_the_record_script_names_its_keys_and_args_from_the_tuples() -> None:
    for i, name in enumerate(RecordKeys._fields, 1):
        assert f"\nlocal {name} = KEYS[{i}]\n" in settle.RECORD
    for i, name in enumerate(RecordArgs._fields, 1):
        assert f"\nlocal {name} = ARGV[{i}]\n" in settle.RECORD
    last = f"local {RecordArgs._fields[-1]} = ARGV[{len(RecordArgs._fields)}]\n"
    body = settle.RECORD.split(last, 1)[1]
    assert "KEYS[" not in body and "ARGV[" not in body  # only the names are used


def test_the_record_script_knows_exactly_the_settle_modes() -> None:
    compared = set(re.findall(r"mode [~=]= '(\w+)'", settle.RECORD))
    assigned = set(re.findall(r"mode(?:, lost)? = '(\w+)'", settle.RECORD))
    assert compared | assigned <= {m.value for m in Settle}
    assert {Settle.KEEP, Settle.HOLD, Settle.REQUEUE, Settle.DELAY} <= compared


#: write_rows alone: ARGV[1] the rows, ARGV[2] the indexes ``keep`` lets through ('' all).
_WRITE = (
    lua.WRITE_ROWS
    + """
local keep = nil
if ARGV[2] ~= '' then
  local only = {}
  for i in string.gmatch(ARGV[2], '%d+') do only[tonumber(i)] = true end
  keep = function(i) return only[i] end
end
local k = {results=KEYS[1], counts=KEYS[2], meta=KEYS[3], state=KEYS[4], finals=KEYS[5],
  parked=KEYS[6]}
return {write_rows(ARGV[1], k, keep)}
"""
)
_KEYS = [f"w:{{t}}:{name}" for name in ("results", "counts", "meta", "state", "finals", "parked")]


async def _clear(redis: Redis) -> None:
    """Delete the keys above and their buckets: each test starts from none."""
    found = [key async for key in redis.scan_iter(match="w:{t}:*")]
    if found:
        await redis.delete(*found)


class _Model:
    """What write_rows should leave, worked out one row at a time as HSETNX would."""

    def __init__(self) -> None:
        self.results: dict[int, bytes] = {}
        self.ranks: dict[int, int] = {}
        self.counts: dict[str, int] = {}
        self.finals: dict[str, int] = {}

    def write(self, results: list[Result], keep: set[int] | None) -> tuple[int, int]:
        new = final_new = 0
        for r in results:
            if (keep is not None and r.index not in keep) or r.index in self.results:
                continue
            self.results[r.index] = rows.pack_row(r)
            self.counts[r.status] = self.counts.get(r.status, 0) + 1
            new += 1
            rank = Rank.FINAL if r.status in FINAL else Rank.ACCEPTED
            if rank > self.ranks.get(r.index, Rank.NONE):
                self.ranks[r.index] = rank
                if rank == Rank.FINAL:
                    self.finals[r.status] = self.finals.get(r.status, 0) + 1
                    final_new += 1
        return new, final_new


_Stored = tuple[dict[int, bytes], dict[int, int], dict[str, int], dict[str, int]]


async def _bucketed(redis: Redis, base: str, size: int = 600) -> dict[int, bytes]:
    values: dict[int, bytes] = {}
    for b in range(-(-size // rows.BUCKET)):
        hashed: dict[Any, Any] = await redis.hgetall(f"{base}:{b}")
        for field, value in hashed.items():
            values[b * rows.BUCKET + int(field)] = value
    return values


def _row_rank(index: int, row: bytes) -> Rank:
    return Rank.FINAL if rows.unpack_row(index, None, row).status in FINAL else Rank.ACCEPTED


async def _stored(redis: Redis, size: int = 600) -> _Stored:
    """The results and ranks by index (the higher of a row's and a report's), the counts
    and the finals, as stored."""
    results = await _bucketed(redis, _KEYS[0], size)
    state = await _bucketed(redis, _KEYS[3], size)
    ranks = {i: int(v) for i, v in state.items()}
    for i, row in results.items():
        ranks[i] = max(ranks.get(i, Rank.NONE), _row_rank(i, row))
    counts: dict[Any, Any] = await redis.hgetall(_KEYS[1])
    finals: dict[Any, Any] = await redis.hgetall(_KEYS[4])
    return (
        results,
        ranks,
        {k.decode(): int(v) for k, v in counts.items()},
        {k.decode(): int(v) for k, v in finals.items()},
    )


async def test_write_rows_writes_each_new_row_once_as_hsetnx_would(redis: Redis) -> None:
    """Calls over runs, gaps, indexes out of order and repeated, bucket edges, JSON rows,
    buckets that exist already (asked by HMGET) and new ones (by EXISTS), ranks a report
    set first, and ``keep``: the same rows, counts and ranks as one HSETNX a row."""
    rng = random.Random(15)
    model = _Model()
    await _clear(redis)
    reported = rng.sample(range(600), 40)  # a report came first: some final, some not
    for i in reported:
        rank = rng.choice([Rank.ACCEPTED, Rank.FINAL])
        await redis.hset(*rows.bucket(_KEYS[3], i), str(int(rank)))
        model.ranks[i] = rank
    statuses = [Status.ACCEPTED] * 6 + [Status.FAILED, Status.DELIVERED, Status.REJECTED]
    for call in range(12):
        indexes: list[int] = []
        while len(indexes) < rng.randint(1, 300):
            start = rng.randrange(600)
            indexes += range(start, min(600, start + rng.randint(1, 150)))
        indexes += rng.sample(indexes, min(5, len(indexes)))  # twice in one call
        # Most without a message id: runs of rows alike, written once and counted.
        results = [
            Result(i, "+1", rng.choice(statuses), f"m{i}-{call}" if rng.random() < 0.3 else None,
                   error="a|b" if rng.random() < 0.05 else None, sent_at=call)
            for i in indexes
        ]  # fmt: skip
        keep = set(rng.sample(range(600), 300)) if call % 4 == 3 else None
        expected = model.write(results, keep)
        only = " ".join(map(str, sorted(keep))) if keep is not None else ""
        got = await redis.eval(_WRITE, len(_KEYS), *_KEYS, rows.record_lines(results), only)
        assert tuple(got) == expected, call
    assert any(v.startswith(b"[") for v in model.results.values())  # JSON rows were written
    assert b"\n*" in rows.record_lines(results)  # and rows alike were counted
    assert await _stored(redis) == (model.results, model.ranks, model.counts, model.finals)
    # The rows are the ranks: only the reports' are in the state hash, as they were set.
    assert sorted(await _bucketed(redis, _KEYS[3])) == sorted(reported)


async def test_whole_buckets_of_one_row_are_written_as_row_by_row(redis: Redis) -> None:
    """A batch's shared answer comes as one row and a count: runs across many buckets,
    starting anywhere, into buckets written before (some rows there already), one index
    named again after its bucket went by whole, final statuses a report may have counted
    first, and ``keep``. The same rows, counts and ranks as one HSETNX a row."""
    rng = random.Random(16)
    model, size = _Model(), 2_000
    await _clear(redis)
    for i in rng.sample(range(size), 30):
        rank = rng.choice([Rank.ACCEPTED, Rank.FINAL])
        await redis.hset(*rows.bucket(_KEYS[3], i), str(int(rank)))
        model.ranks[i] = rank
    shared = [Status.ACCEPTED] * 4 + [Status.DELIVERED, Status.REJECTED]
    for call in range(14):
        status = rng.choice(shared)
        start = rng.choice([0, rows.BUCKET, rng.randrange(size - 700)])
        indexes = list(range(start, start + rng.randint(rows.BUCKET, 700)))
        if call % 3 == 1:
            indexes.append(start + rng.randrange(len(indexes)))  # named again, later
        results = [Result(i, "+1", status, batch_id="camp", sent_at=call) for i in indexes]
        keep = set(rng.sample(range(size), size // 2)) if call % 5 == 4 else None
        lines = rows.record_lines(results)
        assert lines.count(b"\n") <= 4  # one row and a count (and maybe one index again)
        expected = model.write(results, keep)
        only = " ".join(map(str, sorted(keep))) if keep is not None else ""
        got = await redis.eval(_WRITE, len(_KEYS), *_KEYS, lines, only)
        assert tuple(got) == expected, call
    assert await _stored(redis, size) == (model.results, model.ranks, model.counts, model.finals)


async def test_a_whole_bucket_settles_the_parked_among_it(redis: Redis) -> None:
    """Recipients parked of unknown fate whose rows come in a run of one shared row are
    settled, as row by row: out of the parked hash, their reason's count down."""
    await _clear(redis)
    parked = [5, 130, 131, 300]
    for i in parked:
        await redis.hset(_KEYS[5], str(i), f"x\t{i}\ttimeout")
    await redis.hset(_KEYS[2], "u:timeout", len(parked))
    results = [Result(i, "+1", Status.ACCEPTED, batch_id="c", sent_at=1) for i in range(260)]
    got = await redis.eval(_WRITE, len(_KEYS), *_KEYS, rows.record_lines(results), "")
    assert got == [260, 0]
    assert sorted(int(i) for i in await redis.hkeys(_KEYS[5])) == [300]
    assert await redis.hget(_KEYS[2], "u:timeout") == b"1"
    assert len(await _bucketed(redis, _KEYS[0], 260)) == 260
