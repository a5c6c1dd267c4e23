"""The CloudSMS UIP codec against the packets, RESULT_CODE table and rules of seed 002."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from dispatcher.model import CampaignError, Status
from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob, Verdict, split_e164
from dispatcher.providers.cloudsms import CODES, CloudSmsCodec, uip_time

codec = CloudSmsCodec()
OPTIONS = {"route_id": "VerifyCode_516"}
# 2021-01-01 00:00:00 UTC is 08:00:00 in UTC+8.
NOW = 1609459200.0


def ctx(serials: Any = None) -> BuildContext:
    counter = serials or itertools.count(1)
    return BuildContext(api_key="K" * 128, serial=lambda: next(counter), now=NOW)


def hk(i: int) -> ChunkRecipient:
    return ChunkRecipient(i, f"+852670000{i:02d}")


def packet(body: bytes | None) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(body or b"")
    return data


def test_single_sms_packet_like_example_1() -> None:
    job = SendJob(
        "cid",
        4,
        "Your verification code is 123345, please do not disclose it to others.",
        signature="CloudSMS",
        options={**OPTIONS, "signature_type": 1},
    )
    [req] = codec.build(job, [ChunkRecipient(0, "+85267000011")], ctx()).requests
    assert req.path == "/dave/io" and req.positions == (0,)
    p = packet(req.body)
    assert p == {
        "METHOD": "SMS_SEND_REQUEST",
        "TYPE": "REQUEST",
        "SERIAL": 1,
        "TIME": "2021-01-01 08:00:00",
        "AUTH_KEY": "K" * 128,
        "ROUTE_ID": "VerifyCode_516",
        "MULTI_MSISDN_LIST": [{"DEST_MSISDN": "67000011", "COUNTRY_CODE": 852}],
        "SMS_CONTENT": "Your verification code is 123345, please do not disclose it to others.",
        "SIGNATURE": "CloudSMS",
        "SIGNATURE_TYPE": 1,
        "VERSION": "2021-01-01",
        "PRIORITY": 0,
        "CUSTOMER_BODY": {"campaign": "cid", "chunk": 4},
    }


def test_200_numbers_a_packet_and_serials_wrap() -> None:
    serials = itertools.cycle([65534, 65535, 1, 2])
    job = SendJob("cid", 0, "hi", options=OPTIONS)
    numbers = [ChunkRecipient(i, f"+8526{i:07d}") for i in range(450)]
    reqs = codec.build(job, numbers, ctx(serials)).requests
    assert [len(r.positions) for r in reqs] == [200, 200, 50]
    assert [packet(r.body)["SERIAL"] for r in reqs] == [65534, 65535, 1]
    assert [len(packet(r.body)["MULTI_MSISDN_LIST"]) for r in reqs] == [200, 200, 50]


def test_personal_texts_are_grouped_by_rendering() -> None:
    job = SendJob("cid", 0, "Hi <+B+>", options=OPTIONS)
    people = [
        ChunkRecipient(i, f"+8526700{i:04d}", {"name": "Ann" if i % 2 else "Bob"}) for i in range(5)
    ]
    reqs = codec.build(job, people, ctx()).requests
    contents = {packet(r.body)["SMS_CONTENT"]: r.positions for r in reqs}
    assert contents == {"Hi Bob": (0, 2, 4), "Hi Ann": (1, 3)}


def test_number_rules_refuse_before_sending() -> None:
    job = SendJob("cid", 0, "hi", options=OPTIONS)
    recipients = [
        ChunkRecipient(0, "+8613800138000"),  # 11 digits: fine
        ChunkRecipient(1, "+861012345678"),  # a 10-digit Beijing landline
        ChunkRecipient(2, "+6581234567"),  # Singapore mobile: fine
        ChunkRecipient(3, "+6561234567"),  # Singapore landline: starts with 6
    ]
    built = codec.build(job, recipients, ctx())
    assert [r.positions for r in built.requests] == [(0, 2)]
    assert {p: (o.status, o.error_code) for p, o in built.refused.items()} == {
        1: (Status.REJECTED, "Invalid_parameter"),
        3: (Status.REJECTED, "LOCAL_REJECTED"),
    }


def test_split_number_and_time() -> None:
    assert split_e164("+85267000011") == (852, "67000011")
    assert split_e164("+8613800138000") == (86, "13800138000")
    assert split_e164("+447901614024") == (44, "7901614024")
    assert split_e164("+12015550123") == (1, "2015550123")
    assert split_e164("+390612345678") == (39, "0612345678")  # Italy keeps its leading 0
    assert uip_time(NOW) == "2021-01-01 08:00:00"
    # Where to cut is remembered by the first three digits: the same again for others.
    assert split_e164("+85267000012") == (852, "67000012")
    assert split_e164("+12125550123") == (1, "2125550123")
    assert split_e164("+8612345678901") == (86, "12345678901")
    for _ in range(2):  # a code no country has is refused each time
        with pytest.raises(ValueError, match="no known country calling code"):
            split_e164("+8099123456")


def test_bulk_answer_example_gives_one_uid_per_number() -> None:
    job = SendJob("cid", 0, "hi", options=OPTIONS)
    req = codec.build(
        job, [ChunkRecipient(0, "+85267000011"), ChunkRecipient(1, "+85267000028")], ctx()
    ).requests[0]
    # Seed 002, "SMS response (Bulk SMS)", with the order of the numbers reversed.
    ok = {"RESULT_CODE": 1, "RESULT_DESC": "'OK'", "COUNTRY_CODE": 852}
    answer = {
        "METHOD": "SMS_SEND_REQUEST",
        "TYPE": "ANSWER",
        "SERIAL": 1,
        "TIME": "2021-01-01 08:00:01",
        "RESULT_CODE": 1,
        "RESULT_DESC": "'OK'",
        "DETAIL_LIST": [
            {**ok, "DEST_MSISDN": "67000028", "SMS_UID": "5A3B394096E50X02D1FA163E81BCCC"},
            {**ok, "DEST_MSISDN": "67000011", "SMS_UID": "*5A3B394096E50X01D1FA163E81BFFF*"},
        ],
    }
    outcomes = codec.parse(req, 200, orjson.dumps(answer))
    assert [(o.verdict, o.status, o.message_id) for o in outcomes] == [
        (Verdict.OK, Status.ACCEPTED, "5A3B394096E50X01D1FA163E81BFFF"),
        (Verdict.OK, Status.ACCEPTED, "5A3B394096E50X02D1FA163E81BCCC"),
    ]


def test_per_number_codes_and_missing_numbers() -> None:
    job = SendJob("cid", 0, "hi", options=OPTIONS)
    req = codec.build(
        job, [ChunkRecipient(0, "+85267000011"), ChunkRecipient(1, "+85267000028")], ctx()
    ).requests[0]
    unpriced = {"RESULT_CODE": 0x1000000F, "RESULT_DESC": "Unpriced_area", "COUNTRY_CODE": 852}
    answer = {"RESULT_CODE": 1, "DETAIL_LIST": [{**unpriced, "DEST_MSISDN": "67000011"}]}
    first, second = codec.parse(req, 200, orjson.dumps(answer))
    assert (first.verdict, first.status, first.error_code) == (
        Verdict.PERMANENT,
        Status.REJECTED,
        "Unpriced_area",
    )
    assert (second.verdict, second.error_code) == (Verdict.PERMANENT, "MISSING_IN_ANSWER")


# The seed's RESULT_CODE table: code → (description, verdict, come back later).
TABLE = [
    (0x02, "Unknown_error", Verdict.RETRY, False),
    (0x03, "Busy", Verdict.RETRY, True),
    (0x04, "Empty_data", Verdict.PERMANENT, False),
    (0x05, "Channel_not_exist", Verdict.ACCOUNT, False),
    (0x10000001, "Invalid_parameter", Verdict.PERMANENT, False),
    (0x10000003, "Invalid_context", Verdict.PERMANENT, False),
    (0x10000004, "Send_failed", Verdict.PERMANENT, False),
    (0x10000005, "Queue_too_large", Verdict.RETRY, True),
    (0x10000006, "Intercept", Verdict.RETRY, True),
    (0x10000007, "Lost_info", Verdict.PERMANENT, False),
    (0x1000000D, "Empty_data", Verdict.PERMANENT, False),
    (0x1000000E, "DB_not_find", Verdict.RETRY, True),
    (0x1000000F, "Unpriced_area", Verdict.PERMANENT, False),
    (0x10000010, "Invalid_Version", Verdict.ACCOUNT, False),
]


@pytest.mark.parametrize(("code", "desc", "verdict", "later"), TABLE)
@pytest.mark.parametrize("as_hex", [False, True])
def test_packet_result_codes(
    code: int, desc: str, verdict: Verdict, later: bool, as_hex: bool
) -> None:
    job = SendJob("cid", 0, "hi", options=OPTIONS)
    req = codec.build(job, [hk(1), hk(2)], ctx()).requests[0]
    value: int | str = hex(code) if as_hex else code
    outs = codec.parse(req, 200, orjson.dumps({"RESULT_CODE": value, "RESULT_DESC": desc}))
    assert len(outs) == 2
    assert {(o.verdict, o.error_code, o.later) for o in outs} == {(verdict, desc, later)}
    assert CODES[code] == (desc, verdict, later)


def test_http_errors_and_garbage() -> None:
    req = codec.build(SendJob("cid", 0, "hi", options=OPTIONS), [hk(1)], ctx()).requests[0]
    assert codec.parse(req, 503, b"")[0].verdict is Verdict.RETRY
    assert codec.parse(req, 200, b"<html>")[0].error_code == "BAD_RESPONSE"


def test_enqueue_checks() -> None:
    with pytest.raises(CampaignError, match=r"options\.route_id"):
        codec.check("hi", None, {})
    with pytest.raises(CampaignError, match=r"options\.signature_type"):
        codec.check("hi", "S", {**OPTIONS, "signature_type": 6})
    with pytest.raises(CampaignError, match="11 segments"):
        codec.check("a" * 1531, None, OPTIONS)
    codec.check("a" * 1530, None, OPTIONS)
    with pytest.raises(CampaignError, match="11 segments"):  # the signature counts too
        codec.check("a" * 1525, "ABCDE", {**OPTIONS, "signature_type": 4})  # "[ABCDE]"


@pytest.mark.parametrize(
    ("sig_type", "shown"),
    [(1, "【S】hi"), (2, "hi【S】"), (3, "[S] hi"), (4, "hi[S]"), (5, "hi")],
)
def test_signature_forms(sig_type: int, shown: str) -> None:
    assert codec.content("hi", "S", {"signature_type": sig_type}) == shown
