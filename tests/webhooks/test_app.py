"""The webhook receiver over real HTTP with a real Redis: each provider's pushes and answers,
and what it refuses (malformed, oversized, unauthenticated), fuzzed with hypothesis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.keys import Keys
from dispatcher.model import Campaign, Result, Status
from dispatcher.queue import Queue, Track
from dispatcher.webhooks.server import start
from tests.conftest import all_providers

SECRET = "s3cret-path-segment-0123456789"
NUMBERS = [f"+8526123{i:04d}" for i in range(4)]


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


@pytest.fixture
async def hooks(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hooks]:
    monkeypatch.setenv("DISPATCHER_WEBHOOK_SECRET", SECRET)
    settings = all_providers(prefix, "http://127.0.0.1:9")
    runner, port = await start(settings, redis_url, "127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        yield Hooks(session, f"http://127.0.0.1:{port}", settings)
    await runner.cleanup()


async def sent_campaign(redis: Redis, settings: Settings, provider: str) -> str:
    """A campaign whose four recipients were accepted (sid0…sid3)."""
    answer = await Client(settings=settings, redis=redis).enqueue(Campaign(provider, "hi", NUMBERS))
    k = Keys(settings.prefix)
    q = Queue(redis, k, "w", [k.queue(provider)])
    await q.setup()
    [lease] = await q.read(1, 100)
    results = [Result(i, n, Status.ACCEPTED, message_id=f"sid{i}") for i, n in enumerate(NUMBERS)]
    await q.record(lease, results, "ack", track=Track("default", True, True))
    return answer.id


async def snapshot(redis: Redis, prefix: str) -> dict[Any, Any]:
    """Every key of the test and its content, to show that a refused push changed nothing."""
    out: dict[Any, Any] = {}
    for key in sorted(await redis.keys(f"{prefix}*")):
        kind = await redis.type(key)
        if kind == b"hash":
            out[key] = await redis.hgetall(key)
        elif kind == b"stream":
            out[key] = await redis.xlen(key)
        elif kind == b"zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


async def status_of(redis: Redis, settings: Settings, cid: str, index: int) -> str:
    results = {r.index: r async for r in Client(settings=settings, redis=redis).results(cid)}
    return results[index].status


async def test_cloudaten_and_ycloud_reports(hooks: Hooks, redis: Redis) -> None:
    cid = await sent_campaign(redis, hooks.settings, "cloudaten")
    body = {"sid": "sid1", "status": "delivered", "status_timestamp": 1541580135423,
            "mobile": NUMBERS[1], "uid": f"{cid}.1"}  # fmt: skip
    assert await hooks.post("cloudaten", "dlr", orjson.dumps(body)) == (200, b"ok")
    assert await status_of(redis, hooks.settings, cid, 1) == "delivered"
    ycid = await sent_campaign(redis, hooks.settings, "ycloud")
    body = {"sid": "sid2", "status": "expired", "push_timestamp": 1541580135423,
            "mobile": NUMBERS[2], "uid": f"{ycid}.2"}  # fmt: skip
    assert await hooks.post("ycloud", "dlr", orjson.dumps(body)) == (200, b"ok")
    assert await status_of(redis, hooks.settings, ycid, 2) == "expired"


async def test_cloudsms_report_is_answered_with_its_serial(hooks: Hooks, redis: Redis) -> None:
    cid = await sent_campaign(redis, hooks.settings, "cloudsms")
    packet = {
        "METHOD": "SMS_PUSH_REPORT", "TYPE": "REQUEST", "SERIAL": 4242,
        "TIME": "2021-06-15 10:00:05", "REPORT_TIME": "2021-06-15 10:00:04",
        "SOURCE_MSISDN": "CloudSMS", "SMS_UID": "5A3B394096E50X01D1FA163E81BFFF",
        "SMS_RESULT_LIST": [{"COUNTRY_CODE": 852, "DEST_MSISDN": NUMBERS[3][4:],
                             "SMS_STATE": 2, "RESULT_DESC": "DELIVERED"}],
        "CUSTOMER_BODY": {"campaign": cid, "chunk": 0},
    }  # fmt: skip
    status, raw = await hooks.post("cloudsms", "dlr", orjson.dumps(packet))
    answer = orjson.loads(raw)
    assert status == 200
    assert answer["METHOD"] == "SMS_PUSH_REPORT" and answer["TYPE"] == "ANSWER"
    assert (answer["SERIAL"], answer["RESULT_CODE"], answer["RESULT_DESC"]) == (4242, 1, "OK")
    assert len(answer["TIME"]) == 19
    assert await status_of(redis, hooks.settings, cid, 3) == "delivered"


async def test_inbound_ycloud_and_smsclouds(hooks: Hooks, redis: Redis) -> None:
    inbound = {"id": "a1s1we1111", "mobile": "+8615355498966", "text": "Thank you",
               "inbound_timestamp": 1541580135423}  # fmt: skip
    assert await hooks.post("ycloud", "inbound", orjson.dumps(inbound)) == (200, b"ok")
    assert await hooks.post("ycloud", "inbound", orjson.dumps(inbound)) == (200, b"ok")
    mo = {"response": "Hi this is a mo", "cellphone": "4499157710", "message_id": "158562",
          "date": "2020-05-25 13:23:11"}  # fmt: skip
    assert await hooks.get("smsclouds", "mo", mo) == (200, "ok")
    kw = {"response": "chema test 2", "cellphone": "4498987281", "keyword": "chema",
          "date": "2020-05-25 11:13:49"}  # fmt: skip
    assert await hooks.get("smsclouds", "keyword", kw) == (
        200,
        hooks.settings.webhooks.keyword_response,
    )
    entries = await Client(settings=hooks.settings, redis=redis).inbound()
    assert [(e["provider"], e["text"]) for e in entries] == [
        ("ycloud", "Thank you"),  # once, though pushed twice
        ("smsclouds", "Hi this is a mo"),
        ("smsclouds", "chema test 2"),
    ]
    assert entries[2]["keyword"] == "chema"


PUSH_REPORT = {"METHOD": "SMS_PUSH_REPORT", "TYPE": "REQUEST", "SERIAL": 1, "SMS_UID": "u"}
BAD: list[tuple[str, str, bytes]] = [
    ("cloudaten", "dlr", b""),
    ("cloudaten", "dlr", b"{not json"),
    ("cloudaten", "dlr", b"[]"),
    ("cloudaten", "dlr", orjson.dumps(
        {"sid": 1, "status": "delivered", "status_timestamp": 1, "mobile": "+1"})),
    ("cloudaten", "dlr", orjson.dumps({"sid": "1", "status": "delivered", "mobile": "+1"})),
    ("ycloud", "dlr", orjson.dumps(
        {"sid": "1", "status": "delivered", "status_timestamp": 1, "mobile": "+1"})),
    ("ycloud", "inbound", orjson.dumps(
        {"id": "x", "mobile": "+1", "text": 5, "inbound_timestamp": 1})),
    ("cloudsms", "dlr", orjson.dumps({**PUSH_REPORT, "METHOD": "SMS_SEND_REQUEST"})),
    ("cloudsms", "dlr", orjson.dumps({**PUSH_REPORT, "SERIAL": 0})),
    ("cloudsms", "dlr", orjson.dumps(
        {**PUSH_REPORT, "SMS_RESULT_LIST": [{"COUNTRY_CODE": 852}]})),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "kind", "body"), BAD)
async def test_malformed_pushes_get_400_and_change_nothing(
    hooks: Hooks, redis: Redis, provider: str, kind: str, body: bytes
) -> None:
    await sent_campaign(redis, hooks.settings, "cloudaten")
    before = await snapshot(redis, hooks.settings.prefix)
    status, _ = await hooks.post(provider, kind, body)
    assert status == 400
    assert await snapshot(redis, hooks.settings.prefix) == before


async def test_unauthenticated_oversized_and_wrong_routes(hooks: Hooks, redis: Redis) -> None:
    cid = await sent_campaign(redis, hooks.settings, "cloudaten")
    before = await snapshot(redis, hooks.settings.prefix)
    good = orjson.dumps({"sid": "sid0", "status": "delivered", "status_timestamp": 1,
                         "mobile": NUMBERS[0], "uid": f"{cid}.0"})  # fmt: skip
    assert (await hooks.post("cloudaten", "dlr", good, secret="guess"))[0] == 404
    assert (await hooks.post("cloudaten", "nope", good))[0] == 404
    assert (await hooks.post("nope", "dlr", good))[0] == 404
    big = b'{"sid": "' + b"x" * 70_000 + b'"}'
    assert (await hooks.post("cloudaten", "dlr", big))[0] == 413
    async with hooks.session.get(f"{hooks.base}/hooks/{SECRET}/cloudaten/dlr") as r:
        assert r.status == 405
    assert (await hooks.get("smsclouds", "mo", {"response": "x"}))[0] == 400
    assert (await hooks.get("smsclouds", "keyword", {"cellphone": "1"}))[0] == 400
    assert await snapshot(redis, hooks.settings.prefix) == before


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=12,
)
REPORT_KEYS = st.fixed_dictionaries(
    {},
    optional={k: JSONISH for k in ("sid", "status", "status_timestamp", "push_timestamp",
                                   "mobile", "uid", "METHOD", "TYPE", "SERIAL", "SMS_UID",
                                   "SMS_RESULT_LIST", "CUSTOMER_BODY", "id", "text")},
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    target=st.sampled_from(
        [("cloudaten", "dlr"), ("ycloud", "dlr"), ("ycloud", "inbound"), ("cloudsms", "dlr")]
    ),
    body=st.one_of(
        st.binary(max_size=200), REPORT_KEYS.map(orjson.dumps), JSONISH.map(orjson.dumps)
    ),
)
async def test_fuzzed_bodies_never_break_anything(
    hooks: Hooks, redis: Redis, target: tuple[str, str], body: bytes
) -> None:
    cid = await sent_campaign(redis, hooks.settings, "cloudaten")
    results_key = Keys(hooks.settings.prefix).reports(cid)
    status, _ = await hooks.post(*target, body)
    assert status in (200, 400)
    assert await redis.hlen(results_key) == 0  # no fuzz can name this campaign's recipients
