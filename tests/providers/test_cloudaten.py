"""The Cloud Aten codec against the request and response examples of seed 000."""

from __future__ import annotations

import orjson
import pytest

from dispatcher.model import Status
from dispatcher.providers.base import BuildContext, ChunkRecipient, HttpRequest, SendJob, Verdict
from dispatcher.providers.cloudaten import CODES, CloudAtenCodec, parse_uid, uid

codec = CloudAtenCodec()
JOB = SendJob(campaign_id="c0ffee", chunk=3, text="hello,world!")

# Seed 000 §2.1, "Response example: Accepted".
ACCEPTED = b"""{
    "code": 0,
    "data": {
        "status": "accepted",
        "price": 0.1582,
        "count": 2,
        "mobile": "+447901614024",
        "sid": "3321910440",
        "region_code": "JP",
        "create_timestamp": 1545040926268
    },
    "msg": "SUCCESS"
}"""
# Seed 000 §2.1, "Rejected".
REJECTED = b'{"code": 2, "msg": "BAD_ARGUMENT The mobile is unverified"}'
# Seed 000 §1.2.
UNAUTHORIZED = b"""{
    "timestamp": 1545033511912,
    "status": 401,
    "error": "Unauthorized",
    "message": "INVALID_API_KEY",
    "path": "/v1/account/balance"
}"""


CTX = BuildContext(api_key="K")


def one_request() -> HttpRequest:
    return codec.build(JOB, [ChunkRecipient(7, "+447901614024")], CTX).requests[0]


def test_request_matches_the_seed_example_plus_our_uid() -> None:
    req = one_request()
    assert (req.method, req.path, req.positions) == ("POST", "/v1/sms/send_messages", (0,))
    assert req.body is not None
    assert orjson.loads(req.body) == {
        "mobile": "+447901614024",
        "text": "hello,world!",
        "uid": "c0ffee.7",
    }


def test_one_request_per_mobile_with_signature_and_callback() -> None:
    job = SendJob("abc", 0, "Hello world", signature="YCSMS", callback_url="https://x.test/cb")
    reqs = codec.build(
        job, [ChunkRecipient(0, "+447901614024"), ChunkRecipient(5, "+8613800138000")], CTX
    ).requests
    assert [r.positions for r in reqs] == [(0,), (1,)]
    bodies = [orjson.loads(r.body or b"") for r in reqs]
    assert [b["mobile"] for b in bodies] == ["+447901614024", "+8613800138000"]
    assert all(
        b["signature"] == "YCSMS" and b["callback_url"] == "https://x.test/cb" for b in bodies
    )
    assert [b["uid"] for b in bodies] == ["abc.0", "abc.5"]


def test_headers_carry_the_api_key() -> None:
    assert codec.headers("K")["X-API-Key"] == "K"


def test_uid_round_trip() -> None:
    assert parse_uid(uid("0123abcd", 42)) == ("0123abcd", 42)
    assert parse_uid("1234567") is None  # the seed's example uid is not ours
    assert parse_uid("abc.x") is None


def test_accepted_example_gives_message_id_segments_and_price() -> None:
    [out] = codec.parse(one_request(), 200, ACCEPTED)
    assert out.verdict is Verdict.OK
    assert out.status is Status.ACCEPTED
    assert (out.message_id, out.segments, out.price) == ("3321910440", 2, 0.1582)


def test_rejected_example_is_permanent_for_that_recipient() -> None:
    [out] = codec.parse(one_request(), 200, REJECTED)
    assert out.verdict is Verdict.PERMANENT
    assert out.status is Status.REJECTED
    assert out.error_code == "BAD_ARGUMENT"
    assert out.error == "BAD_ARGUMENT The mobile is unverified"


def test_unauthorized_body_pauses_the_campaign() -> None:
    [out] = codec.parse(one_request(), 401, UNAUTHORIZED)
    assert out.verdict is Verdict.ACCOUNT
    assert out.error_code == "INVALID_API_KEY"


@pytest.mark.parametrize(
    ("code", "name", "verdict"),
    [
        (-101, "JSON_PARSE_ERROR", Verdict.PERMANENT),
        (-100, "UNKNOWN_ERROR", Verdict.RETRY),
        (-3, "NO_CURRENCY_SETTING", Verdict.ACCOUNT),
        (-2, "NO_BASE_PRICE", Verdict.PERMANENT),
        (-1, "INVALID_API_KEY", Verdict.ACCOUNT),
        (1, "ARGUMENT_MISSING", Verdict.PERMANENT),
        (2, "BAD_ARGUMENT", Verdict.PERMANENT),
        (3, "NO_BALANCE", Verdict.ACCOUNT),
        (52, "SENSITIVE_WORD", Verdict.PERMANENT),
    ],
)
def test_every_appendix_1_code_is_classified(code: int, name: str, verdict: Verdict) -> None:
    body = orjson.dumps({"code": code, "msg": name})
    [out] = codec.parse(one_request(), 200, body)
    assert (out.error_code, out.verdict) == (name, verdict)
    assert CODES[code] == (name, verdict)


def test_an_unknown_code_is_permanent_not_resent() -> None:
    [out] = codec.parse(one_request(), 200, b'{"code": 77, "msg": "NEW_THING"}')
    assert (out.verdict, out.error_code) == (Verdict.PERMANENT, "CODE_77")


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (429, Verdict.RETRY),
        (404, Verdict.ACCOUNT),
        (400, Verdict.PERMANENT),
    ],
)
def test_http_statuses(status: int, verdict: Verdict) -> None:
    [out] = codec.parse(one_request(), status, b"oops")
    assert out.verdict is verdict
    assert out.error_code == f"HTTP_{status}"


def test_a_200_without_a_code_is_not_resent() -> None:
    [out] = codec.parse(one_request(), 200, b"<html>gateway</html>")
    assert (out.verdict, out.status, out.error_code) == (
        Verdict.PERMANENT,
        Status.FAILED,
        "BAD_RESPONSE",
    )
