"""What the webhook tests share: a client for the receiver, campaigns sent as a worker would
record them, valid pushes for their recipients, and a full snapshot of the test's keys."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from dispatcher import chunkblob
from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.keys import Keys
from dispatcher.model import Campaign, Result, Status
from dispatcher.providers.cloudsms import uip_time
from dispatcher.queue import Queue, Settle, Track
from dispatcher.store import ENQUEUE_ADMITS

SECRET = "s3cret-path-segment-0123456789"
#: Each provider's campaign sends to its own numbers, so no number is shared by mistake.
NUMBERS = {
    "cloudaten": [f"+4479110{i:05d}" for i in range(4)],
    "ycloud": [f"+4479220{i:05d}" for i in range(4)],
    "cloudsms": [f"+8526123{i:04d}" for i in range(4)],
    "smsclouds": [f"+5244991577{i:02d}" for i in range(4)],
}


#: Message ids as each provider writes them: int64 digits, or CloudSMS's hex-like SMS_UID.
SID_PREFIX = {
    "cloudaten": "331022",
    "ycloud": "332191",
    "cloudsms": "5A3B394096E50X",
    "smsclouds": "466083",
}


def sid(provider: str, index: int) -> str:
    """The message id the provider gave recipient ``index``."""
    return f"{SID_PREFIX[provider]}{index:04d}"


class Hooks:
    def __init__(self, session: aiohttp.ClientSession, base: str, settings: Settings) -> None:
        self.session = session
        self.base = base
        self.settings = settings
        self.keys = Keys(settings.prefix)

    async def post(
        self, provider: str, kind: str, body: bytes, secret: str = SECRET
    ) -> tuple[int, bytes]:
        async with self.session.post(
            f"{self.base}/hooks/{secret}/{provider}/{kind}", data=body
        ) as r:
            return r.status, await r.read()

    async def get(self, provider: str, kind: str, params: dict[str, str]) -> tuple[int, str]:
        async with self.session.get(
            f"{self.base}/hooks/{SECRET}/{provider}/{kind}", params=params
        ) as r:
            return r.status, await r.text()

    async def stats(self) -> dict[str, int]:
        async with self.session.get(f"{self.base}/healthz") as r:
            counts: dict[str, int] = orjson.loads(await r.read())
            return counts


async def sent_campaign(
    redis: Redis, settings: Settings, provider: str, numbers: list[str] | None = None
) -> str:
    """A campaign whose recipients were all accepted, with message ids :func:`sid`, recorded
    the way the worker records them (message index included)."""
    numbers = NUMBERS[provider] if numbers is None else numbers
    answer = await Client(settings=settings, redis=redis).enqueue(Campaign(provider, "hi", numbers))
    k = Keys(settings.prefix)
    chunks = int(await redis.hget(k.meta(answer.id), "chunks") or 0)
    assert chunks <= ENQUEUE_ADMITS, "only the chunks an enqueue admits can be read here"
    q = Queue(redis, k, "w", [k.at(0).queue(provider)])
    await q.setup()
    recorded = 0
    while recorded < chunks:
        leases = await q.read(chunks, 100)
        assert leases, "the campaign's chunks are not in the queue"
        for lease in leases:
            blob = await redis.hget(k.chunks(answer.id), str(lease.chunk))
            results = [
                Result(m.index, m.number, Status.ACCEPTED, message_id=sid(provider, m.index),
                       sent_at=1)
                for m in chunkblob.decode(blob or b"")
            ]  # fmt: skip
            await q.record(lease, results, Settle.ACK, track=Track("default", True, True))
        recorded += len(leases)
    return answer.id


def now_ms() -> int:
    return int(time.time() * 1000)


def one_mobile_report(
    provider: str, cid: str, index: int, status: str = "delivered", **override: Any
) -> dict[str, Any]:
    """A Cloud Aten or YCloud report that agrees with what we sent recipient ``index``."""
    body: dict[str, Any] = {
        "sid": sid(provider, index),
        "status": status,
        ("status_timestamp" if provider == "cloudaten" else "push_timestamp"): now_ms(),
        "uid": f"{cid}.{index}",
    }
    if "mobile" not in override:
        body["mobile"] = NUMBERS[provider][index]
    body.update(override)
    return body


def cloudsms_packet(cid: str, index: int, serial: int = 4242, **override: Any) -> dict[str, Any]:
    """A CloudSMS SMS_PUSH_REPORT that agrees with what we sent recipient ``index``."""
    number = NUMBERS["cloudsms"][index]
    packet: dict[str, Any] = {
        "METHOD": "SMS_PUSH_REPORT", "TYPE": "REQUEST", "SERIAL": serial,
        "TIME": uip_time(time.time()), "REPORT_TIME": uip_time(time.time()),
        "SOURCE_MSISDN": "CloudSMS", "SMS_UID": sid("cloudsms", index),
        "SMS_RESULT_LIST": [{"COUNTRY_CODE": 852, "DEST_MSISDN": number[4:],
                             "SMS_STATE": 2, "RESULT_DESC": "DELIVERED"}],
        "CUSTOMER_BODY": {"campaign": cid, "chunk": 0},
    }  # fmt: skip
    packet.update(override)
    return packet


def smsclouds_mo(index: int, **override: str) -> dict[str, str]:
    """An MO response answering recipient ``index``'s message, from its number."""
    query = {
        "response": "yes please",
        "cellphone": NUMBERS["smsclouds"][index][3:],  # national: Smsclouds drops the 52
        "message_id": sid("smsclouds", index),
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    query.update(override)
    return query


async def snapshot(redis: Redis, prefix: str) -> dict[bytes, Any]:
    """Every key under ``prefix`` with its whole content (type-aware, order-free) and
    whether it expires: what a refused push must leave exactly as it was."""
    keys = sorted([key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)])
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.type(key)
        kinds = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for key, kind in zip(keys, kinds, strict=True):
            if kind == b"string":
                pipe.get(key)
            elif kind == b"hash":
                pipe.hgetall(key)
            elif kind == b"stream":
                pipe.xrange(key, "-", "+")
            elif kind == b"zset":
                pipe.zrange(key, 0, -1, withscores=True)
            elif kind == b"set":
                pipe.smembers(key)
            else:
                pipe.lrange(key, 0, -1)  # a list: dispatcher keeps no other type
            pipe.pttl(key)
        values = await pipe.execute()
    return {
        key: (kind, values[2 * i], values[2 * i + 1] >= 0)
        for i, (key, kind) in enumerate(zip(keys, kinds, strict=True))
    }
