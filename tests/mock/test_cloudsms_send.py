"""CloudSMS's SMS_SEND_REQUEST refuses what seed 002's tables refuse, where the seed says:
the packet's RESULT_CODE, a DETAIL_LIST entry's RESULT_CODE, or SMS_STATE 60 LOCAL_REJECTED
in the delivery report."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.mock.conftest import MockClient
from tests.mock.test_cloudsms import URL, packet

INVALID_PARAMETER, INVALID_CONTEXT = 0x10000001, 0x10000003
HK = (852, "67000011")


def customer_body(size: int) -> dict[str, str]:
    """A CUSTOMER_BODY whose compact JSON is ``size`` bytes."""
    return {"k": "v" * (size - len(b'{"k":""}'))}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ORIGINAL_ADDR": "A" * 33}, INVALID_PARAMETER),
        ({"ORIGINAL_ADDR": "Café"}, INVALID_PARAMETER),
        ({"ORIGINAL_ADDR": "Cloud\x07"}, INVALID_PARAMETER),
        ({"ORIGINAL_ADDR": 12345}, INVALID_PARAMETER),
        ({"ROUTE_ID": "R" * 256}, INVALID_PARAMETER),
        ({"ROUTE_ID": 516}, INVALID_PARAMETER),
        ({"CUSTOMER_BODY": customer_body(256)}, INVALID_PARAMETER),
        ({"CUSTOMER_BODY": ["order", 1]}, INVALID_PARAMETER),
        ({"CUSTOMER_BODY": "order-1"}, INVALID_PARAMETER),
        ({"PRIORITY": 5}, INVALID_PARAMETER),
        ({"PRIORITY": 2}, INVALID_PARAMETER),
        ({"PRIORITY": -1}, INVALID_PARAMETER),
        ({"PRIORITY": True}, INVALID_PARAMETER),
        ({"PRIORITY": "0"}, INVALID_PARAMETER),
        ({"SIGNATURE_TYPE": 9}, INVALID_PARAMETER),
        ({"SIGNATURE_TYPE": 0}, INVALID_PARAMETER),
        ({"SIGNATURE": "S", "SIGNATURE_TYPE": "1"}, INVALID_PARAMETER),
        ({"SIGNATURE": "S"}, INVALID_PARAMETER),
        ({"SIGNATURE": "S" * 65, "SIGNATURE_TYPE": 1}, INVALID_PARAMETER),
        ({"SIGNATURE": "签" * 22, "SIGNATURE_TYPE": 1}, INVALID_PARAMETER),  # 66 bytes
        ({"SIGNATURE": 7, "SIGNATURE_TYPE": 1}, INVALID_PARAMETER),
        ({"TYPE": "REQUEST-"}, INVALID_PARAMETER),
        ({"SERIAL": "77"}, INVALID_PARAMETER),
        (
            {"MULTI_MSISDN_LIST": {"COUNTRY_CODE": 852, "DEST_MSISDN": "67000011"}},
            INVALID_PARAMETER,
        ),
        ({"SMS_CONTENT": 12345}, INVALID_CONTEXT),
        # One character that is not English makes every character two bytes: 766 × 2.
        ({"SMS_CONTENT": "你" + "a" * 765}, INVALID_CONTEXT),
        ({"SMS_CONTENT": "é" * 766}, INVALID_CONTEXT),
    ],
)
async def test_packet_refusals(mock_client: MockClient, change: dict[str, Any], code: int) -> None:
    _, answer = await mock_client.call("POST", URL, packet([HK], **change))
    assert (answer["RESULT_CODE"], answer["DETAIL_LIST"]) == (code, [])
    assert answer["SERIAL"] == (0 if "SERIAL" in change else 77)  # echoed when it is one
    assert (await mock_client.stats("cloudsms"))["accepted"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"ORIGINAL_ADDR": "A" * 32},
        {"ORIGINAL_ADDR": ""},  # "left unfilled or empty": the default SenderID
        {"ORIGINAL_ADDR": "CloudSMS 1~"},
        {"ROUTE_ID": "R" * 255},
        {"CUSTOMER_BODY": customer_body(255)},
        {"CUSTOMER_BODY": {}},
        {"PRIORITY": 0},
        {"PRIORITY": 1},
        *({"SIGNATURE": "S" * 64, "SIGNATURE_TYPE": t} for t in (1, 2, 3, 4, 5)),
        {"SIGNATURE": "签" * 21, "SIGNATURE_TYPE": 1},  # 63 bytes
        {"SIGNATURE_TYPE": 3},
        {"SMS_CONTENT": "a" * 1530},
        {"SMS_CONTENT": "你" + "a" * 764},  # 765 × 2 = 1530
        {"SMS_CONTENT": "你" * 765},
        {"REPEAT": 0},  # the seed's examples send it; custom parameters are allowed
    ],
)
async def test_accepted_at_the_limits(mock_client: MockClient, change: dict[str, Any]) -> None:
    _, answer = await mock_client.call("POST", URL, packet([HK], **change))
    assert answer["RESULT_CODE"] == 1
    assert [d["RESULT_CODE"] for d in answer["DETAIL_LIST"]] == [1]


@pytest.mark.parametrize(
    "number",
    [
        {"COUNTRY_CODE": 999, "DEST_MSISDN": "67000011"},  # "Invalid country code"
        {"COUNTRY_CODE": 0, "DEST_MSISDN": "67000011"},
        {"COUNTRY_CODE": -852, "DEST_MSISDN": "67000011"},
        {"COUNTRY_CODE": "852", "DEST_MSISDN": "67000011"},
        {"COUNTRY_CODE": True, "DEST_MSISDN": "67000011"},
        {"DEST_MSISDN": "67000011"},
        {"COUNTRY_CODE": 852, "DEST_MSISDN": ""},
        {"COUNTRY_CODE": 852, "DEST_MSISDN": "6700 0011"},
        {"COUNTRY_CODE": 852, "DEST_MSISDN": "٦٧٠٠٠٠١١"},
        {"COUNTRY_CODE": 852, "DEST_MSISDN": 67000011},
        {"COUNTRY_CODE": 852, "DEST_MSISDN": "1" * 33},
        {"COUNTRY_CODE": 86, "DEST_MSISDN": "1380013800"},
        "+85267000011",
    ],
)
async def test_number_refusals(mock_client: MockClient, number: Any) -> None:
    p = packet([HK])
    p["MULTI_MSISDN_LIST"].append(number)
    _, answer = await mock_client.call("POST", URL, p)
    assert answer["RESULT_CODE"] == 1
    ok, bad = answer["DETAIL_LIST"]
    assert (ok["RESULT_CODE"], bad["RESULT_CODE"]) == (1, INVALID_PARAMETER)
    assert ok["SMS_UID"] and "SMS_UID" not in bad
    assert (await mock_client.stats("cloudsms"))["accepted"] == 1


async def test_numbers_at_the_limits(mock_client: MockClient) -> None:
    numbers = [(852, "1" * 32), (1, "2025550123"), (86, "13800138000"), (800, "12345678")]
    _, answer = await mock_client.call("POST", URL, packet(numbers))
    assert [d["RESULT_CODE"] for d in answer["DETAIL_LIST"]] == [1, 1, 1, 1]


async def finals(mock: MockClient) -> dict[str, Any]:
    return {m["dest_msisdn"]: m["final_status"] for m in await mock.messages("cloudsms")}


async def test_singapore_rule_is_a_local_rejection(mock_client: MockClient) -> None:
    good, bad = ["91234567", "81234567"], ["71234567", "9123456", "912345678"]
    _, answer = await mock_client.call("POST", URL, packet([(65, n) for n in good + bad]))
    # Answered OK with an SMS_UID: LOCAL_REJECTED is a report state, not a RESULT_CODE.
    assert [(d["RESULT_CODE"], bool(d["SMS_UID"])) for d in answer["DETAIL_LIST"]] == [
        (1, True)
    ] * 5
    states = await finals(mock_client)
    assert {n: states[n] for n in bad} == dict.fromkeys(bad, 60)
    assert all(states[n] != 60 for n in good)
    stats = await mock_client.stats("cloudsms")
    assert (stats["accepted"], stats["local_rejected"]) == (5, 3)


async def test_wrong_route_id_is_a_local_rejection(mock_client: MockClient) -> None:
    await mock_client.call("POST", "/_mock/settings", {"cloudsms_routes": ["VerifyCode_516"]})
    await mock_client.call("POST", URL, packet([(852, "67000011")]))
    _, answer = await mock_client.call("POST", URL, packet([(852, "67000022")], ROUTE_ID="Other"))
    assert answer["DETAIL_LIST"][0]["RESULT_CODE"] == 1
    states = await finals(mock_client)
    assert states["67000022"] == 60 and states["67000011"] != 60


async def test_unconfigured_direction_is_a_local_rejection(mock_client: MockClient) -> None:
    await mock_client.call("POST", "/_mock/settings", {"unpriced_regions": ["SG"]})
    await mock_client.call("POST", URL, packet([(65, "91234567"), (852, "67000011")]))
    states = await finals(mock_client)
    assert states["91234567"] == 60 and states["67000011"] != 60


async def test_insufficient_balance_is_a_local_rejection(mock_client: MockClient) -> None:
    await mock_client.call("POST", "/_mock/settings", {"balance": 0.0087 * 1.5})
    await mock_client.call("POST", URL, packet([(852, "67000011"), (852, "67000022")]))
    states = await finals(mock_client)
    assert states["67000011"] != 60 and states["67000022"] == 60
    # The rejected one was not charged: half a segment's price is left.
    prices = [m["price"] for m in await mock_client.messages("cloudsms")]
    assert prices == [0.0087, 0.0]


@pytest.fixture
async def reports() -> AsyncIterator[tuple[str, asyncio.Queue[dict[str, Any]]]]:
    """A customer DR server on loopback: every packet goes to the queue, answered OK."""
    got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        p = orjson.loads(await request.read())
        await got.put(p)
        answer = {"METHOD": "SMS_PUSH_REPORT", "TYPE": "ANSWER", "SERIAL": p["SERIAL"],
                  "TIME": p["TIME"], "RESULT_CODE": 1, "RESULT_DESC": "OK"}  # fmt: skip
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/dr", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/dr", got
    await runner.cleanup()


async def test_local_rejected_is_the_one_report_pushed(
    mock_client: MockClient, reports: tuple[str, asyncio.Queue[dict[str, Any]]]
) -> None:
    url, got = reports
    await mock_client.call(
        "POST", "/_mock/settings", {"cloudsms_callback_url": url, "dlr_delay_ms": 20}
    )
    body = {"order": 1}
    _, first = await mock_client.call(
        "POST", URL, packet([(65, "71234567")], ORIGINAL_ADDR="ACME", CUSTOMER_BODY=body)
    )
    _, second = await mock_client.call("POST", URL, packet([HK]))
    rejected, other = first["DETAIL_LIST"][0]["SMS_UID"], second["DETAIL_LIST"][0]["SMS_UID"]
    seen: dict[str, list[dict[str, Any]]] = {rejected: [], other: []}
    while len(seen[rejected]) < 1 or len(seen[other]) < 2:  # the other: ENROUTE, final
        p = await asyncio.wait_for(got.get(), 10)
        seen[p["SMS_UID"]].append(p["SMS_RESULT_LIST"][0])
        if p["SMS_UID"] == rejected:
            assert (p["SOURCE_MSISDN"], p["CUSTOMER_BODY"]) == ("ACME", body)
    assert seen[rejected] == [
        {"COUNTRY_CODE": 65, "DEST_MSISDN": "71234567", "SMS_STATE": 60,
         "RESULT_DESC": "LOCAL_REJECTED"}
    ]  # fmt: skip
    assert 1 in {r["SMS_STATE"] for r in seen[other]}  # the others get ENROUTE too
