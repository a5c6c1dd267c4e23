"""Bucketed per-recipient hashes and compact rows (rows.py), against a real Redis."""

from __future__ import annotations

import itertools

from hypothesis import example, given
from hypothesis import strategies as st
from redis.asyncio import Redis

from dispatcher import rows
from dispatcher.model import Result, Status
from dispatcher.providers.base import Report


def test_bucket_names_a_small_hash_and_a_field() -> None:
    assert rows.bucket("p:{c}:results", 0) == ("p:{c}:results:0", "0")
    assert rows.bucket("p:{c}:results", 127) == ("p:{c}:results:0", "127")
    assert rows.bucket("p:{c}:results", 128) == ("p:{c}:results:1", "0")
    assert rows.bucket_keys("b", 129) == ["b:0", "b:1"]
    assert rows.bucket_keys("b", 0) == []


def test_a_row_is_a_status_letter_and_its_fields_without_number_or_trailing_blanks() -> None:
    r = Result(5, "+447911000005", Status.ACCEPTED, "3321913197", segments=1, price=0.0087,
               sent_at=1795998888719)  # fmt: skip
    packed = rows.pack_row(r)
    assert packed == b"a3321913197|||1|0.0087|1795998888719"
    assert rows.unpack_row(5, "+447911000005", packed) == r
    invalid = Result(7, "12ab", Status.INVALID, error_code="INVALID_NUMBER", error="too short")
    kept = rows.pack_row(invalid, with_number=True)
    assert kept == b"i|INVALID_NUMBER|too short|||||12ab"
    assert rows.unpack_row(7, None, kept) == invalid
    assert rows.unpack_row(0, "+1", b"a") == Result(0, "+1", Status.ACCEPTED)


_TEXT = (
    st.none()
    | st.sampled_from(["", "=", "a|b", "x\ty", "3321913197", "BATCH-9"])
    | st.text(max_size=8)
)
#: The fields a row packs that a send result and a provider's outcome share, with the
#: values that make a row leave its common form (test_answers.py builds outcomes of them).
ROW_FIELDS = {
    "message_id": _TEXT,
    "error_code": st.none() | st.just("E1"),
    "error": st.none() | st.just("no"),
    "segments": st.none() | st.sampled_from([1, 2, True]),
    "price": st.none() | st.sampled_from([0.0087, 1, 1.0, True]),
    "batch_id": _TEXT,
}
_RESULTS = st.lists(
    st.builds(
        Result,
        index=st.integers(0, 10**6),
        number=st.just("+447911000005"),
        status=st.sampled_from(list(Status)),
        sent_at=st.none() | st.sampled_from([1795998888719, 1795998888720]),
        **ROW_FIELDS,
    ),
    max_size=12,
)


_ALIKE = [
    Result(i, "+1", Status.ACCEPTED, f"m{i}", segments=seg, price=price, sent_at=5)
    for i, (seg, price) in enumerate(
        [(1, 1.0), (True, 1), (True, 1.0), (1, True), (1, 1.0), (1, 1)]
    )
]


def _read_lines(blob: bytes) -> list[tuple[int, bytes]]:
    """(index, row) pairs as the record script reads its lines (lua.WRITE_ROWS)."""
    out: list[tuple[int, bytes]] = []
    index, row = 0, b""
    for line in blob.split(b"\n") if blob else []:
        if line[:1] == b"=":
            index = int(line[1:])
            continue
        times = int(line[1:]) if line[:1] == b"*" else 1
        row = row if line[:1] == b"*" else line
        out += [(index + k, row) for k in range(times)]
        index += times
    return out


@example(_ALIKE)
@given(_RESULTS)
def test_record_lines_write_each_result_as_pack_row_does(results: list[Result]) -> None:
    """The record's lines share the packing of a chunk's common fields: the rows are still
    exactly pack_row's, even where 1, 1.0 and True would be one dictionary key; and no row
    is written twice in a row (it is counted)."""
    blob = rows.record_lines(results)
    assert _read_lines(blob) == [(r.index, rows.pack_row(r)) for r in results]
    written = [line for line in blob.split(b"\n") if line[:1] not in (b"=", b"*")]
    assert all(a != b for a, b in itertools.pairwise(written))


def test_record_lines_name_an_index_only_where_the_run_breaks() -> None:
    got = [Result(i, "+1", Status.ACCEPTED, f"m{i}", sent_at=1) for i in (4, 5, 6, 9, 8)]
    lines = b"=4 am4|||||1 am5|||||1 am6|||||1 =9 am9|||||1 =8 am8|||||1".split()
    assert rows.record_lines(got) == b"\n".join(lines)


def test_rows_alike_are_written_once_and_counted() -> None:
    """A batch provider's chunk: 30,000 rows alike are two lines, wherever indexes jump."""
    same = [Result(i, "+1", Status.ACCEPTED, batch_id="7", sent_at=1) for i in range(30_000)]
    assert rows.record_lines(same).split(b"\n") == [b"=0", b"a|||||1|7", b"*29999"]
    jumps = [Result(i, "+1", Status.ACCEPTED, sent_at=1) for i in (0, 1, 2, 7, 8, 3)]
    assert rows.record_lines(jumps).split(b"\n") == [
        b"=0", b"a|||||1", b"*2", b"=7", b"*2", b"=3", b"*1"
    ]  # fmt: skip


def test_every_status_has_its_own_letter() -> None:
    assert sorted(rows.CODES) == sorted(s.value for s in Status)
    assert len(set(rows.CODES.values())) == len(rows.CODES)
    for status in Status:
        r = Result(1, "+1", status, "m")
        assert rows.unpack_row(1, "+1", rows.pack_row(r)) == r


def test_what_the_letters_cannot_hold_is_written_as_json_and_read_back() -> None:
    awkward = [
        Result(1, "+1", Status.FAILED, "m", "E|1", "a | b"),  # the separator
        Result(2, "+1", Status.FAILED, "m", "E1", "line\nbreak\ttab"),
        Result(3, "+1", Status.FAILED, "", "E1"),  # an empty text is not a missing one
        Result(4, "+1", Status.FAILED, "=", "E1"),  # the mark itself
        Result(5, "+1", "some-future-status", "m"),  # no letter
        Result(6, "+1", Status.ACCEPTED, "ü-ñ-中", price=1e-05),
    ]
    for r in awkward:
        packed = rows.pack_row(r)
        assert b"\t" not in packed and b"\n" not in packed  # the scripts' line format
        assert rows.unpack_row(r.index, "+1", packed) == r, packed
    assert rows.pack_row(awkward[0]).startswith(b"[")
    assert not rows.pack_row(awkward[5]).startswith(b"[")


def test_rows_written_as_json_before_are_still_read() -> None:
    old = b'["accepted","3321913197",null,null,1,0.0087,1795998888719]'
    assert rows.unpack_row(5, "+44", old) == Result(
        5, "+44", Status.ACCEPTED, "3321913197", segments=1, price=0.0087, sent_at=1795998888719
    )
    assert rows.report_fields(b'["delivered",true,null,null,1,"m"]') == (
        "delivered", "delivered", None, None, 1, "m",
    )  # fmt: skip


def test_a_report_keeps_its_raw_status_only_when_it_differs() -> None:
    same = Report(Status.DELIVERED, "delivered", "m", at=1)
    assert rows.pack_report(same) == b"d=|||1|m"
    assert rows.report_fields(rows.pack_report(same)) == (
        "delivered", "delivered", None, None, 1, "m",
    )  # fmt: skip
    other = Report(Status.UNDELIVERED, "EXPIRED", error_code="E1")
    assert rows.report_fields(rows.pack_report(other)) == (
        "undelivered", "EXPIRED", "E1", None, None, None,
    )  # fmt: skip
    blank = Report(Status.SENT, "")  # a raw status of nothing at all: kept as nothing
    assert rows.report_fields(rows.pack_report(blank))[:2] == ("sent", "")


def test_a_report_leaves_out_what_repeats_another_field() -> None:
    mid = "0f8c2d9e-5b1a-4c3e-9d7f-123456789abc"
    undelivered = Report(Status.UNDELIVERED, "UNDELIV", mid, error_code="UNDELIV",
                         error="UNDELIV", at=1_764_475_000_123)  # fmt: skip
    packed = rows.pack_report(undelivered, sent_id=mid)
    assert packed == b"uUNDELIV|UNDELIV|=|1764475000123"
    assert rows.report_fields(packed) == (
        "undelivered", "UNDELIV", "UNDELIV", "UNDELIV", 1_764_475_000_123, None,
    )  # fmt: skip
    # No send result to hold the message id (a report that came first): it keeps its own.
    assert rows.report_fields(rows.pack_report(undelivered))[5] == mid
    # Another id than the result's is kept too (tracking refuses that, but never lose it).
    assert rows.report_fields(rows.pack_report(undelivered, sent_id="other"))[5] == mid
    differs = Report(Status.UNDELIVERED, "X", error_code="E1", error="Expired")
    assert rows.report_fields(rows.pack_report(differs))[3] == "Expired"
    odd = Report(Status.FAILED, "X|Y", error_code="E", error="E")  # falls back to JSON
    assert rows.report_fields(rows.pack_report(odd)) == ("failed", "X|Y", "E", "E", None, None)


async def test_buckets_stay_small_listpacks_in_redis(redis: Redis, prefix: str) -> None:
    base = f"{prefix}{{c1}}:state"
    async with redis.pipeline(transaction=False) as pipe:
        rows.hset(pipe, base, {i: 3 for i in range(300)})
        await pipe.execute()
    assert sorted(await redis.keys(f"{base}:*")) == [f"{base}:{b}".encode() for b in range(3)]
    for key in rows.bucket_keys(base, 300):
        assert await redis.object("encoding", key) == b"listpack"
    got = await rows.hmget(redis, base, [299, 5, 1000, 128])
    assert got == [b"3", b"3", None, b"3"]
    assert await rows.hmget(redis, base, []) == []


async def test_several_bucketed_hashes_are_read_in_one_go(redis: Redis, prefix: str) -> None:
    results, reports = f"{prefix}{{c2}}:results", f"{prefix}{{c2}}:reports"
    async with redis.pipeline(transaction=False) as pipe:
        rows.hset(pipe, results, {i: f"r{i}" for i in range(200)})
        rows.hset(pipe, reports, {5: "x", 150: "y"})
        await pipe.execute()
    got = await rows.hmget_many(redis, [results, reports], [150, 5, 7])
    assert got == [[b"r150", b"r5", b"r7"], [b"y", b"x", None]]
    assert await rows.hmget_many(redis, [results, reports], []) == [[], []]
