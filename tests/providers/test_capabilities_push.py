"""The push, balance and cancel capabilities of each codec against the seeds' examples: what
the webhooks process and the account queries ask a codec, without naming its provider."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from dispatcher.model import Status
from dispatcher.providers import CODECS, KINDS
from dispatcher.providers.base import BadPush
from dispatcher.providers.capabilities import (
    Balance,
    Cancelling,
    PushContext,
    Pushed,
    Pushes,
    PushRoute,
    capability,
)
from dispatcher.providers.cloudsms import uip_time

NOW = time.time()
CTX = PushContext(NOW, "gracias")
NO_QUERY: dict[str, str] = {}


def route(provider: str, kind: str, name: str) -> PushRoute:
    pushes = capability(KINDS[(provider, kind)], Pushes)
    assert pushes is not None
    return pushes.push_routes()[name]


def test_which_codecs_take_pushes_and_where() -> None:
    routes = {
        key: sorted(p.push_routes()) for key, c in KINDS.items() if (p := capability(c, Pushes))
    }
    assert routes[("cloudaten", "sms")] == ["dlr"]
    assert routes[("cloudaten", "voice")] == ["voice"]
    assert routes[("ycloud", "sms")] == ["dlr", "inbound"]
    assert routes[("cloudsms", "sms")] == ["dlr"]
    assert routes[("smsclouds", "sms")] == ["keyword", "mo"]
    assert capability(object(), Pushes) is None


# -- seed 000 §2.2 and §3.3 --------------------------------------------------------------------

ATEN_PUSH = (
    b'{"sid":"3310228982","status":"delivered","status_timestamp":1541580135423,'
    b'"mobile":"+447901614024"}'
)


@pytest.mark.parametrize(("kind", "name"), [("sms", "dlr"), ("voice", "voice")])
def test_cloud_aten_reports(kind: str, name: str) -> None:
    r = route("cloudaten", kind, name)
    assert r.method == "POST"
    pushed = r.parse(ATEN_PUSH, NO_QUERY, CTX)
    assert (pushed.answer, pushed.content_type, pushed.inbound) == (
        b"ok", "text/plain; charset=utf-8", None
    )  # fmt: skip
    [report] = pushed.reports
    assert (report.status, report.message_id, report.number, report.at) == (
        Status.DELIVERED, "3310228982", "+447901614024", 1541580135423
    )  # fmt: skip
    assert report.campaign_id is None  # no uid: matched by sid
    with pytest.raises(BadPush) as info:  # YCloud's time field is not Cloud Aten's
        r.parse(ATEN_PUSH.replace(b"status_timestamp", b"push_timestamp"), NO_QUERY, CTX)
    assert info.value.field == "status_timestamp"


# -- seed 001 §2.2 and §2.4 --------------------------------------------------------------------


def test_ycloud_report_and_inbound() -> None:
    body = (
        b'{"sid":"3310228982","status":"expired","push_timestamp":1541580135423,'
        b'"mobile":"+8615355498963","uid":"c0ffee.7"}'
    )
    [report] = route("ycloud", "sms", "dlr").parse(body, NO_QUERY, CTX).reports
    assert (report.status, report.campaign_id, report.index) == (Status.EXPIRED, "c0ffee", 7)
    inbound = route("ycloud", "sms", "inbound")
    assert (inbound.method, inbound.what) == ("POST", "inbound")
    body = (
        b'{"id":"a1s1we1111","mobile":"+8615355498966","text":"Thank you",'
        b'"inbound_timestamp": 1541580135423}'
    )
    pushed = inbound.parse(body, NO_QUERY, CTX)
    assert pushed.reports == () and pushed.answer == b"ok"
    assert pushed.inbound is not None
    assert (pushed.inbound.provider, pushed.inbound.id, pushed.inbound.text) == (
        "ycloud", "a1s1we1111", "Thank you"
    )  # fmt: skip


def test_one_mobile_refusals_are_the_http_status() -> None:
    for provider in ("cloudaten", "ycloud"):
        pushes = capability(CODECS[provider], Pushes)
        assert pushes is not None
        assert pushes.push_refusal(ATEN_PUSH, False, NOW) is None
        assert pushes.push_refusal(ATEN_PUSH, True, NOW) is None


# -- seed 002, "Delivery Report" ---------------------------------------------------------------


def dr_packet(**override: Any) -> bytes:
    """The seed's DR callback sample (its ``67xxxx11`` made digits, its times real)."""
    packet: dict[str, Any] = {
        "METHOD": "SMS_PUSH_REPORT", "TYPE": "REQUEST", "SERIAL": 2,
        "TIME": uip_time(NOW), "REPORT_TIME": uip_time(NOW - 5),
        "SOURCE_MSISDN": "CloudSMS", "SMS_UID": "5A3B394096E50X01D1FA163E81BFFF",
        "SMS_RESULT_LIST": [{"COUNTRY_CODE": 852, "DEST_MSISDN": "67000011", "SMS_STATE": 2,
                             "RESULT_DESC": "DELIVERED"}],
        "CUSTOMER_BODY": {},
    }  # fmt: skip
    packet.update(override)
    return orjson.dumps(packet)


def test_cloudsms_report_is_answered_with_an_answer_packet() -> None:
    pushed = route("cloudsms", "sms", "dlr").parse(dr_packet(), NO_QUERY, CTX)
    [report] = pushed.reports
    assert (report.status, report.number, report.message_id) == (
        Status.DELIVERED, "+85267000011", "5A3B394096E50X01D1FA163E81BFFF"
    )  # fmt: skip
    assert pushed.content_type == "application/json"
    assert orjson.loads(pushed.answer) == {
        "METHOD": "SMS_PUSH_REPORT", "TYPE": "ANSWER", "SERIAL": 2, "TIME": uip_time(NOW),
        "RESULT_CODE": 1, "RESULT_DESC": "OK",
    }  # fmt: skip


def test_cloudsms_refusals_echo_the_serial() -> None:
    pushes = capability(CODECS["cloudsms"], Pushes)
    assert pushes is not None
    refused = pushes.push_refusal(dr_packet(SERIAL=77, METHOD="X"), False, NOW)
    assert refused is not None and refused[1] == "application/json"
    answer = orjson.loads(refused[0])
    assert (answer["TYPE"], answer["SERIAL"], answer["RESULT_CODE"], answer["RESULT_DESC"]) == (
        "ANSWER", 77, 0x10000001, "Invalid_parameter"
    )  # fmt: skip
    busy = pushes.push_refusal(dr_packet(SERIAL=9), True, NOW)
    assert busy is not None
    assert (orjson.loads(busy[0])["SERIAL"], orjson.loads(busy[0])["RESULT_CODE"]) == (9, 0x03)
    for body in (b"{not json", b"[]", dr_packet(SERIAL=0), dr_packet(SERIAL="2")):
        assert pushes.push_refusal(body, False, NOW) is None  # nothing to echo


# -- seed 004, MO responses and keywords by GET -------------------------------------------------


def test_smsclouds_mo_and_keyword() -> None:
    mo = route("smsclouds", "sms", "mo")
    assert (mo.method, mo.what) == ("GET", "mo")
    query = {"response": "This is a response text", "cellphone": "4499157710",
             "message_id": "158562", "date": "2020-05-25 13:23:11"}  # fmt: skip
    pushed = mo.parse(b"", query, CTX)
    assert pushed.answer == b"ok" and pushed.inbound is not None
    assert (pushed.inbound.mobile, pushed.inbound.message_id) == ("4499157710", "158562")
    keyword = route("smsclouds", "sms", "keyword")
    assert (keyword.method, keyword.what) == ("GET", "keyword")
    query = {"response": "mykeyword this is a response text", "cellphone": "4499157710",
             "keyword": "mykeyword", "date": "2020-05-25 11:13:49"}  # fmt: skip
    pushed = keyword.parse(b"", query, PushContext(NOW, "¡Gracias!"))
    assert pushed.answer == "¡Gracias!".encode()  # printed back as the auto-response
    assert pushed.content_type == "text/plain; charset=utf-8"
    assert pushed.inbound is not None and pushed.inbound.keyword == "mykeyword"
    with pytest.raises(BadPush) as info:
        keyword.parse(b"", {**query, "date": "1970-01-01 00:00:00"}, CTX)
    assert info.value.field == "date"
    pushes = capability(CODECS["smsclouds"], Pushes)
    assert pushes is not None and pushes.push_refusal(b"", False, NOW) is None


def test_pushed_defaults() -> None:
    assert Pushed() == Pushed((), None, b"ok", "text/plain; charset=utf-8")


# -- balances: seed 000 §4.1, seed 001 §3.1, seed 004 "User Credentials" -----------------------

ONE_MOBILE_BALANCE = {"code": 0, "data": {"currency": "USD", "amount": 10000010190.07658},
                      "msg": "SUCCESS"}  # fmt: skip


@pytest.mark.parametrize(
    ("provider", "query", "answer", "credit"),
    [("cloudaten", "balance", ONE_MOBILE_BALANCE, 10000010190.07658),
     ("ycloud", "balance", ONE_MOBILE_BALANCE, 10000010190.07658),
     ("ycloud", "balance", {"amount": 10000010190.07658, "currency": "USD"}, 10000010190.07658),
     ("ycloud", "balance", {"amount": 3}, 3.0),
     ("smsclouds", "user", {"data": {"information": "User Found", "credit": 468062.11}},
      468062.11),
     ("cloudaten", "balance", {"code": 0}, None),
     ("cloudaten", "balance", {"data": {"amount": "12"}}, None),
     ("ycloud", "balance", {"amount": True}, None),
     ("smsclouds", "user", {"data": {"amount": 5}}, None),
     ("smsclouds", "user", ["credit"], None)],
)  # fmt: skip
def test_balances(provider: str, query: str, answer: Any, credit: float | None) -> None:
    codec = capability(CODECS[provider], Balance)
    assert codec is not None
    assert codec.balance_query == query and query in CODECS[provider].queries
    assert codec.balance_of(answer) == credit


def test_cloudsms_has_no_balance() -> None:
    assert capability(CODECS["cloudsms"], Balance) is None


# -- cancelling: seed 004 "Blaster (RoboCall) Cancel Campaigns" --------------------------------


def test_only_the_blaster_cancels() -> None:
    assert [key for key, c in KINDS.items() if capability(c, Cancelling)] == [
        ("smsclouds", "blaster")
    ]
    codec = capability(KINDS[("smsclouds", "blaster")], Cancelling)
    assert codec is not None
    assert codec.cancel_path("1955452") == "/api/v3/voice/1955452/cancel"
    done = {"message": "Completado Correctamente", "voice_campaign": 15, "name": "api test",
            "status": "CANCELLED", "scheduled_date": "2019-02-06 15:02:38"}  # fmt: skip
    assert codec.parse_cancel(200, orjson.dumps(done)) == (True, "cancelled")
    late = {
        "error": {"information": "Only a queued campaign can be cancelled.", "status_code": 422}
    }
    assert codec.parse_cancel(422, orjson.dumps(late)) == (
        False, "Only a queued campaign can be cancelled."
    )  # fmt: skip
    assert codec.parse_cancel(500, b"<html>") == (False, "HTTP 500")
