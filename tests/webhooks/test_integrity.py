"""A push lands only on the recipient everything in it names: the provider's own campaign,
a recipient it has, the number we sent that recipient, the message id the provider gave.
Each case below was found by fuzzing the receiver (issue 11); every refusal must leave
every key of the test exactly as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.embedded import free_port
from dispatcher.webhooks.server import start
from tests.conftest import all_providers
from tests.webhooks.support import (
    NUMBERS,
    SECRET,
    Hooks,
    cloudsms_packet,
    now_ms,
    one_mobile_report,
    sent_campaign,
    sid,
    smsclouds_mo,
    snapshot,
)

INVALID_PARAMETER = 0x10000001


@dataclass
class Scene:
    hooks: Hooks
    redis: Redis
    cids: dict[str, str]

    async def refused(self, call: Awaitable[tuple[int, Any]], status: int) -> Any:
        """Run ``call`` (a push); it must get ``status`` and change no key."""
        before = await snapshot(self.redis, self.hooks.settings.prefix)
        got, body = await call
        assert got == status, body
        assert await snapshot(self.redis, self.hooks.settings.prefix) == before
        return body

    async def dlr(self, provider: str, body: dict[str, Any]) -> tuple[int, bytes]:
        return await self.hooks.post(provider, "dlr", orjson.dumps(body))


@pytest.fixture
async def scene(hooks: Hooks, redis: Redis) -> Scene:
    cids = {p: await sent_campaign(redis, hooks.settings, p) for p in NUMBERS}
    return Scene(hooks, redis, cids)


async def test_a_push_naming_another_providers_campaign_is_refused(scene: Scene) -> None:
    ycid, acid = scene.cids["ycloud"], scene.cids["cloudaten"]
    # The fuzzer's case: a Cloud Aten push carrying a YCloud recipient's uid, number, sid.
    forged = one_mobile_report("ycloud", ycid, 2)
    forged["status_timestamp"] = forged.pop("push_timestamp")
    await scene.refused(scene.dlr("cloudaten", forged), 422)
    into_aten = one_mobile_report("cloudaten", acid, 1)
    into_aten["push_timestamp"] = into_aten.pop("status_timestamp")
    await scene.refused(scene.dlr("ycloud", into_aten), 422)
    packet = cloudsms_packet(acid, 0, serial=77)
    raw = await scene.refused(scene.dlr("cloudsms", packet), 422)
    answer = orjson.loads(raw)  # CloudSMS reads its answer packet: Invalid_parameter
    assert (answer["TYPE"], answer["SERIAL"], answer["RESULT_CODE"]) == (
        "ANSWER", 77, INVALID_PARAMETER
    )  # fmt: skip
    counts = await scene.hooks.stats()
    assert counts["cloudaten.refused.wrong_provider"] == 1
    assert counts["ycloud.refused.wrong_provider"] == 1
    assert counts["cloudsms.refused.wrong_provider"] == 1


async def test_a_wrong_mobile_within_the_right_campaign_is_refused(scene: Scene) -> None:
    cid = scene.cids["cloudaten"]
    other = NUMBERS["cloudaten"][2]
    await scene.refused(scene.dlr("cloudaten", one_mobile_report("cloudaten", cid, 1,
                                                                 mobile=other)), 422)  # fmt: skip
    stranger = one_mobile_report("cloudaten", cid, 1, mobile="+447700900123")
    await scene.refused(scene.dlr("cloudaten", stranger), 422)
    ccid = scene.cids["cloudsms"]
    entry = {"COUNTRY_CODE": 852, "DEST_MSISDN": "61239999", "SMS_STATE": 2}
    await scene.refused(
        scene.dlr("cloudsms", cloudsms_packet(ccid, 0, SMS_RESULT_LIST=[entry])), 422
    )
    assert (await scene.hooks.stats())["cloudaten.refused.wrong_number"] == 2
    # The same number without its "+" is the same number: applied.
    plain = one_mobile_report("cloudaten", cid, 1, mobile=NUMBERS["cloudaten"][1][1:])
    assert await scene.dlr("cloudaten", plain) == (200, b"ok")
    assert (await scene.hooks.stats())["cloudaten.applied"] == 1


async def test_a_wrong_message_id_is_refused(scene: Scene) -> None:
    cid, ccid = scene.cids["cloudaten"], scene.cids["cloudsms"]
    await scene.refused(
        scene.dlr("cloudaten", one_mobile_report("cloudaten", cid, 1, sid=sid("cloudaten", 2))),
        422,
    )
    await scene.refused(scene.dlr("cloudsms", cloudsms_packet(ccid, 0, SMS_UID="ABC123")), 422)
    # Recipient 0's SMS_UID with recipient 1's number: it would have landed on recipient 1.
    moved = cloudsms_packet(ccid, 0)
    moved["SMS_RESULT_LIST"][0]["DEST_MSISDN"] = NUMBERS["cloudsms"][1][4:]
    await scene.refused(scene.dlr("cloudsms", moved), 422)
    counts = await scene.hooks.stats()
    assert counts["cloudaten.refused.wrong_message_id"] == 1
    assert counts["cloudsms.refused.wrong_message_id"] == 2


@pytest.mark.parametrize("digit", ["²", "١", "１", "٣"])
async def test_unicode_digits_are_refused_not_500(scene: Scene, digit: str) -> None:
    cid, ccid = scene.cids["cloudaten"], scene.cids["cloudsms"]
    report = one_mobile_report("cloudaten", cid, 1, uid=f"{cid}.{digit}")
    await scene.refused(scene.dlr("cloudaten", report), 400)
    mobile = NUMBERS["cloudaten"][1][:-1] + digit
    await scene.refused(scene.dlr("cloudaten", one_mobile_report("cloudaten", cid, 1,
                                                                 mobile=mobile)), 400)  # fmt: skip
    packet = cloudsms_packet(ccid, 1)
    packet["SMS_RESULT_LIST"][0]["DEST_MSISDN"] = NUMBERS["cloudsms"][1][4:-1] + digit
    raw = await scene.refused(scene.dlr("cloudsms", packet), 400)
    assert orjson.loads(raw)["RESULT_CODE"] == INVALID_PARAMETER
    for field in ("cellphone", "message_id"):
        query = smsclouds_mo(1)
        query[field] = query[field][:-1] + digit
        await scene.refused(scene.hooks.get("smsclouds", "mo", query), 400)


@pytest.mark.parametrize("uid_tail", ["01", "1 ", "+1", "-1", "1.0", "", "99999999999"])
async def test_a_uid_that_is_not_ours_is_refused(scene: Scene, uid_tail: str) -> None:
    cid = scene.cids["cloudaten"]
    report = one_mobile_report("cloudaten", cid, 1, uid=f"{cid}.{uid_tail}")
    await scene.refused(scene.dlr("cloudaten", report), 400)


async def test_out_of_range_recipient_is_refused(scene: Scene) -> None:
    cid = scene.cids["cloudaten"]
    await scene.refused(scene.dlr("cloudaten", one_mobile_report("cloudaten", cid, 1,
                                                                 uid=f"{cid}.4")), 422)  # fmt: skip
    assert (await scene.hooks.stats())["cloudaten.refused.wrong_recipient"] == 1


BAD_TIMES: dict[str, Any] = {
    "negative": -1, "zero": 0, "before 2000": 946_684_799_999, "two days ahead": None,
    "float": 1.5e12, "string": "1700000000000", "bool": True,
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_TIMES))
async def test_implausible_timestamps_are_refused(scene: Scene, name: str) -> None:
    at = BAD_TIMES[name] if BAD_TIMES[name] is not None else now_ms() + 2 * 24 * 3600 * 1000
    cid, ycid = scene.cids["cloudaten"], scene.cids["ycloud"]
    report = one_mobile_report("cloudaten", cid, 1, status_timestamp=at)
    await scene.refused(scene.dlr("cloudaten", report), 400)
    await scene.refused(scene.dlr("ycloud", one_mobile_report("ycloud", ycid, 1,
                                                              push_timestamp=at)), 400)  # fmt: skip
    inbound = {"id": "in1", "mobile": "+8615355498966", "text": "hi", "inbound_timestamp": at}
    await scene.refused(scene.hooks.post("ycloud", "inbound", orjson.dumps(inbound)), 400)


@pytest.mark.parametrize(
    "when",
    ["1999-12-31 23:59:59", "2021-02-30 10:00:00", "2999-01-01 00:00:00", "٢٠٢١-01-01 00:00:00"],
)
async def test_implausible_times_of_cloudsms_and_smsclouds(scene: Scene, when: str) -> None:
    packet = cloudsms_packet(scene.cids["cloudsms"], 1, REPORT_TIME=when)
    await scene.refused(scene.dlr("cloudsms", packet), 400)
    await scene.refused(scene.hooks.get("smsclouds", "mo", smsclouds_mo(1, date=when)), 400)


async def test_unknown_campaigns_are_answered_and_dropped(scene: Scene) -> None:
    report = one_mobile_report("cloudaten", "0123456789abcdef", 1)
    await scene.refused(scene.dlr("cloudaten", report), 200)
    assert (await scene.hooks.stats())["cloudaten.unknown"] == 1


async def test_an_mo_lands_on_its_recipient_only_from_its_number(scene: Scene) -> None:
    cid = scene.cids["smsclouds"]
    other = NUMBERS["smsclouds"][2][3:]
    await scene.refused(scene.hooks.get("smsclouds", "mo", smsclouds_mo(1, cellphone=other)), 422)
    assert await scene.hooks.get("smsclouds", "mo", smsclouds_mo(1)) == (200, "ok")
    [entry] = await Client(settings=scene.hooks.settings, redis=scene.redis).inbound()
    assert (entry["recipient"], entry["text"]) == (f"{cid}.1", "yes please")
    assert (await scene.hooks.stats())["smsclouds.refused.wrong_number"] == 1


@pytest.fixture
async def no_redis(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """The receiver pointed at a loopback port where no Redis listens."""
    monkeypatch.setenv("DISPATCHER_WEBHOOK_SECRET", SECRET)
    settings = all_providers(prefix, "http://127.0.0.1:9")
    runner, port = await start(settings, f"redis://127.0.0.1:{free_port()}", "127.0.0.1", 0)
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{port}/hooks/{SECRET}"
    await runner.cleanup()


async def test_redis_down_gets_503_with_retry_after(
    no_redis: tuple[aiohttp.ClientSession, str],
) -> None:
    session, base = no_redis
    report = orjson.dumps(one_mobile_report("cloudaten", "0123456789abcdef", 1))
    async with session.post(f"{base}/cloudaten/dlr", data=report) as r:
        assert r.status == 503 and int(r.headers["Retry-After"]) > 0
    packet = orjson.dumps(cloudsms_packet("0123456789abcdef", 1, serial=9))
    async with session.post(f"{base}/cloudsms/dlr", data=packet) as r:
        answer = orjson.loads(await r.read())
        assert r.status == 503 and "Retry-After" in r.headers
        assert (answer["SERIAL"], answer["RESULT_CODE"]) == (9, 0x03)  # Busy: try later
