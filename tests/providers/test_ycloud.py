"""The YCloud codec against the examples of seed 001."""

from __future__ import annotations

import orjson
import pytest

from dispatcher.model import CampaignError, Status
from dispatcher.providers.base import BuildContext, ChunkRecipient, HttpRequest, SendJob, Verdict
from dispatcher.providers.ycloud import CODES, YCloudCodec

codec = YCloudCodec()
CTX = BuildContext(api_key="you_api_key")
# Seed 001 §2.1 response examples and §1.2.
ACCEPTED = b"""{"code": 0, "data": {"status": "accepted", "price": 0.1582, "count": 2,
  "mobile": "+81486259891", "sid": "3321910440", "region_code": "JP",
  "create_timestamp": 1545040926268}, "msg": "SUCCESS"}"""
REJECTED = b'{"code": 2, "msg": "BAD_ARGUMENT The mobile is unverified"}'
UNVERIFIED = b"""{"timestamp": 1545033511912, "status": 401, "error": "Unauthorized",
  "message": "INVALID_API_KEY", "path": "/v1/account/balance"}"""


def request(**options: str) -> HttpRequest:
    job = SendJob("c1", 0, "hello,world!", options=options)
    return codec.build(job, [ChunkRecipient(3, "+8615355498963")], CTX).requests[0]


def test_request_example_with_uid_and_extend() -> None:
    req = request(extend="123")
    assert (req.method, req.path) == ("POST", "/v1/sms/send_messages")
    assert orjson.loads(req.body or b"") == {
        "mobile": "+8615355498963",
        "text": "hello,world!",
        "uid": "c1.3",
        "extend": "123",
    }
    assert codec.headers("you_api_key")["Authorization"] == "you_api_key"


def test_personal_text_is_rendered_per_recipient() -> None:
    job = SendJob("c1", 0, "Hi <+B+>, your code is <+C+>")
    built = codec.build(
        job, [ChunkRecipient(0, "+8615355498963", {"name": "Li", "field1": "42"})], CTX
    )
    assert orjson.loads(built.requests[0].body or b"")["text"] == "Hi Li, your code is 42"


def test_options_are_checked_at_enqueue() -> None:
    with pytest.raises(CampaignError, match=r"options\.extend"):
        codec.check("hi", None, {"extend": "12a"})
    with pytest.raises(CampaignError, match="signature"):
        codec.check("hi", "SIG", {})
    codec.check("hi", None, {"extend": "007"})


def test_accepted_rejected_and_unauthorised_examples() -> None:
    [ok] = codec.parse(request(), 200, ACCEPTED)
    assert (ok.verdict, ok.status, ok.message_id, ok.segments, ok.price) == (
        Verdict.OK,
        Status.ACCEPTED,
        "3321910440",
        2,
        0.1582,
    )
    [bad] = codec.parse(request(), 200, REJECTED)
    assert (bad.verdict, bad.status, bad.error_code) == (
        Verdict.PERMANENT,
        Status.REJECTED,
        "BAD_ARGUMENT",
    )
    [key] = codec.parse(request(), 401, UNVERIFIED)
    assert (key.verdict, key.error_code) == (Verdict.ACCOUNT, "INVALID_API_KEY")


def test_unaccepted_status_is_a_rejection() -> None:
    body = b'{"code": 0, "data": {"status": "unaccepted", "sid": "9"}, "msg": "SUCCESS"}'
    [out] = codec.parse(request(), 200, body)
    assert (out.verdict, out.status, out.error_code, out.message_id) == (
        Verdict.PERMANENT,
        Status.REJECTED,
        "UNACCEPTED",
        "9",
    )


@pytest.mark.parametrize(
    ("code", "name", "verdict"),
    [
        (-2, "NO_BASE_PRICE", Verdict.PERMANENT),
        (-1, "INVALID_API_KEY", Verdict.ACCOUNT),
        (1, "ARGUMENT_MISSING", Verdict.PERMANENT),
        (2, "BAD_ARGUMENT", Verdict.PERMANENT),
        (3, "NO_BALANCE", Verdict.ACCOUNT),
    ],
)
def test_appendix_codes(code: int, name: str, verdict: Verdict) -> None:
    [out] = codec.parse(request(), 200, orjson.dumps({"code": code, "msg": name}))
    assert (out.error_code, out.verdict) == (name, verdict)
    assert CODES[code] == (name, verdict)
