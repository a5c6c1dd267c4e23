"""Which Smsclouds campaigns have their replies asked for, against a real Redis."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from dispatcher.keys import Keys
from dispatcher.providers.smsclouds import SmscloudsCodec
from dispatcher.responses import MAX_AGE_MS, Responses
from dispatcher.tracking import Tracker

CODEC = SmscloudsCodec()
MOST = CODEC.replies_most


async def refuse(provider: str, account: str, path: str, body: bytes) -> bytes:
    raise AssertionError(f"no call expected, got {path} {body!r}")


async def test_gone_and_old_campaigns_are_no_longer_asked_for(redis: Redis, prefix: str) -> None:
    keys = Keys(prefix)
    now = int(time.time() * 1000)
    await redis.hset(keys.meta("young"), "created_at", now)
    await redis.hset(keys.meta("old"), "created_at", now - MAX_AGE_MS - 1000)
    key = keys.at(0).responses("smsclouds", "default")
    members = {"11|young|0": 0, "12|old|0": 0, "13|gone|0": 0}
    await redis.zadd(key, members)
    responses = Responses(redis, keys, Tracker(redis, keys), refuse)
    every_ms = 60_000
    assert sorted(await responses.due("smsclouds", "default", every_ms, MOST)) == sorted(members)
    # Only the young one would be asked for: drop the young one first to see no call at all.
    await redis.delete(keys.meta("young"))
    tally = await responses.ask("smsclouds", "default", list(members), CODEC)
    assert tally == {"stored": 0, "repeated": 0, "not_indexed": 0}
    assert await redis.zcard(key) == 0


async def test_asked_campaigns_go_to_the_back_of_the_line(redis: Redis, prefix: str) -> None:
    keys = Keys(prefix)
    await redis.hset(keys.meta("c"), "created_at", int(time.time() * 1000))
    key = keys.at(0).responses("smsclouds", "default")
    await redis.zadd(key, {"21|c|0": 0, "22|c|1": 0})
    asked: list[bytes] = []

    async def answer(provider: str, account: str, path: str, body: bytes) -> bytes:
        asked.append(body)
        return b'{"message": "Completado Correctamente", "results": []}'

    responses = Responses(redis, keys, Tracker(redis, keys), answer)
    assert await responses.ask("smsclouds", "default", ["21|c|0"], CODEC) == {
        "stored": 0, "repeated": 0, "not_indexed": 0,
    }  # fmt: skip
    assert asked == [b'{"type":4,"campaigns":[21]}']
    assert await responses.due("smsclouds", "default", 60_000, MOST) == ["22|c|1"]
