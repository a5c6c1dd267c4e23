"""The Cloud Aten voice codec against seed 000 §3."""

from __future__ import annotations

import orjson
import pytest

from dispatcher.model import CampaignError, Status
from dispatcher.providers import codec_for
from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob, Verdict
from dispatcher.providers.common import parse_list

codec = codec_for("cloudaten", "voice")
CTX = BuildContext(api_key="K")
# §3.1 response example.
ACCEPTED = b"""{"code": 0, "data": {"status": "accepted", "price": 0.1582, "count": 2,
  "mobile": "+447901614024", "sid": "3321910440", "region_code": "JP",
  "create_timestamp": 1545040926268}, "msg": "SUCCESS"}"""
# §3.2 response example 1.
LISTED = b"""{"code": 0, "data": [{"status": "delivering", "price": 0.0087, "count": 1,
  "mobile": "15158567221", "sid": "3321910100", "verification_code": "123456",
  "region_code": "CN", "create_timestamp": 1545038673722, "status_timestamp": 1545038680937}],
  "msg": "SUCCESS", "count": 0, "page_no": 1, "page_size": 1}"""


def test_request_like_the_curl_example() -> None:
    job = SendJob("c1", 0, "1234", options={"language": "en"})
    [req] = codec.build(job, [ChunkRecipient(3, "+447901614024")], CTX).requests
    assert (req.method, req.path) == ("POST", "/v1/voice/send")
    assert orjson.loads(req.body or b"") == {
        "mobile": "+447901614024",
        "verification_code": "1234",
        "uid": "c1.3",
        "language": "en",
    }
    assert codec.headers("K")["X-API-Key"] == "K"


def test_codes_per_recipient_and_refusals() -> None:
    job = SendJob("c1", 0, "<+C+>")
    built = codec.build(
        job,
        [ChunkRecipient(0, "+447901614024", {"field1": "987654"}),
         ChunkRecipient(1, "+447911000001", {"field1": "12ab"})],
        CTX,
    )  # fmt: skip
    assert orjson.loads(built.requests[0].body or b"")["verification_code"] == "987654"
    assert built.refused[1].status is Status.REJECTED


def test_answer_and_list() -> None:
    req = codec.build(SendJob("c1", 0, "1234"), [ChunkRecipient(0, "+447901614024")], CTX)
    [out] = codec.parse(req.requests[0], 200, ACCEPTED)
    assert (out.verdict, out.message_id) == (Verdict.OK, "3321910440")
    [report] = parse_list(LISTED, codec.statuses)  # type: ignore[attr-defined]
    assert (report.status, report.message_id) == (Status.SENT, "3321910100")


def test_checks_and_the_30_second_rule() -> None:
    assert codec.number_spacing_seconds == 30 and codec.dedupe is False
    with pytest.raises(CampaignError, match=r"options\.language"):
        codec.check("1234", None, {"language": "xx"})
    with pytest.raises(CampaignError, match="text"):
        codec.check("12", None, {})
    codec.check("<+C+>", None, {"language": "pt"})
