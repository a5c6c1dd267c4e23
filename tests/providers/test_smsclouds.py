"""The Smsclouds v3 codec against the examples and limits of seed 004."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest

from dispatcher.model import CampaignError, Status
from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob, Verdict
from dispatcher.providers.smsclouds import SmscloudsCodec, flag_for

codec = SmscloudsCodec()
CTX = BuildContext(api_key="eyJ0eXAi")
OPTIONS = {"route": 87, "country": 1}
# Seed 004, "Send Messages MT": the response to the JSON example.
CREATED = b"""{"message": "Completado Correctamente", "campaign": 11060007,
  "campaign_name": "my campaign", "route": "Premium 2 Masiva", "country": "Mexico",
  "scheduled_date": null, "recipients_count": 3, "encode": false, "long_message": false,
  "balance": 468071.11, "token_expires": "2021-11-11 17:49:53"}"""


def body(req_body: bytes | None) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(req_body or b"")
    return data


def test_request_like_the_seed_example() -> None:
    job = SendJob("cid", 2, "hi mi name y jose", options=OPTIONS)
    recipients = [ChunkRecipient(i, n) for i, n in enumerate(["+524498987282", "+524498987283"])]
    [req] = codec.build(job, recipients, CTX).requests
    assert (req.method, req.path, req.positions) == ("POST", "/api/v3/campaign", (0, 1))
    assert body(req.body) == {
        "text": "hi mi name y jose",
        "recipients": [{"cellphone": "4498987282"}, {"cellphone": "4498987283"}],
        "campaign_name": "dsp:cid:2",
        "route": 87,
        "country": 1,
        "encode": False,
        "encode_2": False,
        "encode_3": False,
        "long_message": False,
    }
    assert codec.headers("tok") == {
        "Authorization": "Bearer tok",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def test_fields_travel_and_tokens_stay_for_smsclouds_to_fill() -> None:
    job = SendJob("cid", 0, "Hola <+B+>, id <+C+>", options=OPTIONS)
    [req] = codec.build(
        job, [ChunkRecipient(0, "+524498752325", {"name": "Jack", "field1": "52452245"})], CTX
    ).requests
    b = body(req.body)
    assert b["text"] == "Hola <+B+>, id <+C+>"
    assert b["recipients"] == [{"cellphone": "4498752325", "name": "Jack", "field1": "52452245"}]


def test_response_example_accepts_all_with_the_campaign_id() -> None:
    job = SendJob("cid", 0, "hi", options=OPTIONS)
    [req] = codec.build(
        job, [ChunkRecipient(i, f"+52449898728{i}") for i in range(3)], CTX
    ).requests
    outs = codec.parse(req, 200, CREATED)
    assert {(o.verdict, o.status, o.batch_id, o.segments) for o in outs} == {
        (Verdict.OK, Status.ACCEPTED, "11060007", 1)
    }


@pytest.mark.parametrize(
    ("status", "verdict", "state"),
    [
        (400, Verdict.PERMANENT, Status.REJECTED),
        (422, Verdict.PERMANENT, Status.REJECTED),
        (401, Verdict.ACCOUNT, Status.FAILED),
        (404, Verdict.ACCOUNT, Status.FAILED),
        (500, Verdict.RETRY, Status.FAILED),
    ],
)
def test_error_bodies(status: int, verdict: Verdict, state: Status) -> None:
    job = SendJob("cid", 0, "hi", options=OPTIONS)
    [req] = codec.build(job, [ChunkRecipient(0, "+524498987282")], CTX).requests
    err = orjson.dumps(
        {"error": {"information": "Information about the error", "status_code": status}}
    )
    [out] = codec.parse(req, status, err)
    assert (out.verdict, out.status, out.error_code, out.error) == (
        verdict,
        state,
        f"HTTP_{status}",
        "Information about the error",
    )


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("a" * 160, None),
        ("a" * 161, "long_message"),
        ("a" * 306, "long_message"),
        ("á" * 70, "encode"),
        ("á" * 71, "encode_2"),
        ("á" * 128, "encode_2"),
        ("á" * 129, "encode_3"),
        ("á" * 192, "encode_3"),
    ],
)
def test_flags_follow_the_seed_limits(text: str, flag: str | None) -> None:
    fit = flag_for([text])
    assert fit is not None and fit[0] == flag
    job = SendJob("cid", 0, text, options=OPTIONS)
    [req] = codec.build(job, [ChunkRecipient(0, "+524498987282")], CTX).requests
    b = body(req.body)
    assert [f for f in ("encode", "encode_2", "encode_3", "long_message") if b[f]] == (
        [flag] if flag else []
    )
    # The segments the flag stands for ride with the request; else the body says them.
    [out] = codec.parse(req, 200, CREATED)
    assert out.segments == req.context == fit[1]
    assert codec.parse(replace(req, context=None), 200, CREATED) == [out]


def test_too_long_and_foreign_numbers_are_refused_per_recipient() -> None:
    job = SendJob("cid", 0, "Hola <+B+>", options=OPTIONS)
    recipients = [
        ChunkRecipient(0, "+524498987282", {"name": "x" * 400}),
        ChunkRecipient(1, "+447901614024"),
        ChunkRecipient(2, "+524498987283", {"name": "Ana"}),
    ]
    built = codec.build(job, recipients, CTX)
    assert [r.positions for r in built.requests] == [(2,)]
    assert {p: o.error_code for p, o in built.refused.items()} == {
        0: "TEXT_TOO_LONG",
        1: "WRONG_COUNTRY",
    }
    assert flag_for(["a" * 307]) is None and flag_for(["á" * 193]) is None


@pytest.mark.parametrize("text", ["plain GSM text", "Olá, acentuação e ç", "x" * 200])
def test_a_plain_chunk_is_built_as_the_per_recipient_path_builds_it(text: str) -> None:
    """A chunk with no fields, all of the route's country (the quick path), gives the very
    requests the per-recipient path gives the same recipients beside one it must refuse,
    split at the seed's 50,000 a campaign."""
    job = SendJob("cid", 3, text, options={"route": 87, "country": 52})
    plain = [ChunkRecipient(i, f"+52449{i:07d}") for i in range(50_001)]
    quick = codec.build(job, plain, CTX)
    each = codec.build(job, [*plain, ChunkRecipient(50_001, "+447901614024")], CTX)
    assert quick.refused == {} and list(each.refused) == [50_001]
    assert [r.positions for r in quick.requests] == [tuple(range(50_000)), (50_000,)]
    assert [(r.body, r.positions, r.context) for r in quick.requests] == [
        (r.body, r.positions, r.context) for r in each.requests
    ]


def test_enqueue_checks() -> None:
    with pytest.raises(CampaignError, match=r"options\.route"):
        codec.check("hi", None, {})
    with pytest.raises(CampaignError, match=r"options\.scheduled_date"):
        codec.check("hi", None, {**OPTIONS, "scheduled_date": "tomorrow"})
    with pytest.raises(CampaignError, match="text"):
        codec.check("a" * 307, None, OPTIONS)
    codec.check("hi", None, {"country": 1, "scheduled_date": "2030-01-01 10:00:00"})
