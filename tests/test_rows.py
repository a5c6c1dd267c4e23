"""Bucketed per-recipient hashes and compact rows (rows.py), against a real Redis."""

from __future__ import annotations

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


def test_a_row_leaves_out_the_number_and_trailing_nulls_unless_asked() -> None:
    r = Result(5, "+447911000005", Status.ACCEPTED, "3321913197", segments=1, price=0.0087,
               sent_at=1795998888719)  # fmt: skip
    packed = rows.pack_row(r)
    assert packed == b'["accepted","3321913197",null,null,1,0.0087,1795998888719]'
    assert len(packed) <= 64  # a listpack value under Redis' default limit
    assert rows.unpack_row(5, "+447911000005", packed) == r
    invalid = Result(7, "12ab", Status.INVALID, error_code="INVALID_NUMBER", error="too short")
    kept = rows.pack_row(invalid, with_number=True)
    assert rows.unpack_row(7, None, kept) == invalid


def test_a_report_keeps_its_raw_status_only_when_it_differs() -> None:
    same = Report(Status.DELIVERED, "delivered", "m", at=1)
    assert rows.pack_report(same) == b'["delivered",true,null,null,1,"m"]'
    assert rows.report_fields(rows.pack_report(same)) == (
        "delivered",
        "delivered",
        None,
        None,
        1,
        "m",
    )
    other = Report(Status.UNDELIVERED, "EXPIRED", error_code="E1")
    assert rows.report_fields(rows.pack_report(other)) == (
        "undelivered", "EXPIRED", "E1", None, None, None,
    )  # fmt: skip


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
