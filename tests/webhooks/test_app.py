"""The webhook receiver over real HTTP with a real Redis: each provider's pushes and answers,
and what it refuses (malformed, oversized, unauthenticated). Refusals of pushes that
contradict what we sent: test_integrity.py; fuzzing: test_fuzz.py."""

from __future__ import annotations

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from tests.webhooks.support import (
    NUMBERS,
    SECRET,
    Hooks,
    cloudsms_packet,
    one_mobile_report,
    sent_campaign,
    snapshot,
)


async def status_of(redis: Redis, settings: Settings, cid: str, index: int) -> str:
    results = {r.index: r async for r in Client(settings=settings, redis=redis).results(cid)}
    return results[index].status


async def test_cloudaten_and_ycloud_reports(hooks: Hooks, redis: Redis) -> None:
    cid = await sent_campaign(redis, hooks.settings, "cloudaten")
    body = one_mobile_report("cloudaten", cid, 1)
    assert await hooks.post("cloudaten", "dlr", orjson.dumps(body)) == (200, b"ok")
    assert await status_of(redis, hooks.settings, cid, 1) == "delivered"
    ycid = await sent_campaign(redis, hooks.settings, "ycloud")
    body = one_mobile_report("ycloud", ycid, 2, "expired")
    assert await hooks.post("ycloud", "dlr", orjson.dumps(body)) == (200, b"ok")
    assert await status_of(redis, hooks.settings, ycid, 2) == "expired"
    counts = await hooks.stats()
    assert counts["cloudaten.applied"] == 1 and counts["ycloud.applied"] == 1


async def test_cloudsms_report_is_answered_with_its_serial(hooks: Hooks, redis: Redis) -> None:
    cid = await sent_campaign(redis, hooks.settings, "cloudsms")
    packet = cloudsms_packet(cid, 3, TIME="2021-06-15 10:00:05", REPORT_TIME="2021-06-15 10:00:04")
    status, raw = await hooks.post("cloudsms", "dlr", orjson.dumps(packet))
    answer = orjson.loads(raw)
    assert status == 200
    assert answer["METHOD"] == "SMS_PUSH_REPORT" and answer["TYPE"] == "ANSWER"
    assert (answer["SERIAL"], answer["RESULT_CODE"], answer["RESULT_DESC"]) == (4242, 1, "OK")
    assert len(answer["TIME"]) == 19
    assert await status_of(redis, hooks.settings, cid, 3) == "delivered"
    assert NUMBERS["cloudsms"][3].endswith(packet["SMS_RESULT_LIST"][0]["DEST_MSISDN"])


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
    good = orjson.dumps(one_mobile_report("cloudaten", cid, 0))
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
