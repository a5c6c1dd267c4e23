"""Smsclouds blaster, email, SMS CLIC and HLR codecs against the examples of seed 004."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dispatcher.model import CampaignError, Status
from dispatcher.providers import codec_for
from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob, Verdict
from dispatcher.providers.smsclouds import SmscloudsCodec
from dispatcher.providers.smsclouds_blaster import BlasterCodec, parse_cancel

CTX = BuildContext(api_key="tok")
blaster = codec_for("smsclouds", "blaster")
email = codec_for("smsclouds", "email")
clic = codec_for("smsclouds", "smsclic")


def body_of(req_body: bytes | None) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(req_body or b"")
    return data


def test_blaster_request_like_the_seed() -> None:
    text = "hola, como estas <+B+> ? esta es una llamada blaster, tenemos tu nuevo id <+C+>"
    job = SendJob("cid", 1, text, options={"type": 2, "remittent": "5570055780"})
    people = [ChunkRecipient(0, "+524498752325", {"name": "Jack", "field1": "52452245"})]
    [req] = blaster.build(job, people, CTX).requests
    assert (req.method, req.path) == ("POST", "/api/v3/voice")
    assert body_of(req.body) == {
        "type": 2,
        "campaign_name": "dsp:cid:1",
        "text": text,
        "recipients": [{"cellphone": "4498752325", "name": "Jack", "field1": "52452245"}],
        "remittent": "5570055780",
    }
    answer = orjson.dumps(
        {
            "message": "Completado Correctamente",
            "voice_campaign": 481776,
            "status": "TO_SEND",
            "recipients_count": 1,
        }
    )
    [out] = blaster.parse(req, 200, answer)
    assert (out.verdict, out.batch_id) == (Verdict.OK, "481776")


def test_blaster_status_and_cancel_examples() -> None:
    status = orjson.dumps(
        {
            "message": "Completado Correctamente",
            "voice_campaign": 481779,
            "status": "COMPLETED",
            "voice_messages": [
                {
                    "voice_message": 754061,
                    "cellphone": "4498987281",
                    "sent_date": "2020-05-25 14:36:55",
                    "voice_message_status": 2,
                }
            ],
        }
    )
    assert isinstance(blaster, BlasterCodec)
    [report] = blaster.parse_batch(status, {})
    assert (report.status, report.message_id, report.number) == (
        Status.SUBMITTED,
        "754061",
        "+524498987281",  # the seed's national cellphone, in the route's country (+52)
    )
    ok = orjson.dumps(
        {
            "message": "Completado Correctamente",
            "voice_campaign": 15,
            "name": "api test",
            "status": "CANCELLED",
        }
    )
    assert parse_cancel(200, ok) == (True, "cancelled")
    refused = orjson.dumps({"error": {"information": "Only queued", "status_code": 422}})
    assert parse_cancel(422, refused) == (False, "Only queued")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"type": 3, "remittent": "1"}, "options.type"),
        ({"type": 1, "remittent": "1"}, "options.audio"),
        ({"type": 2}, "options.remittent"),
        ({"type": 2, "remittent": "1", "transfer_num": "4491234567"}, "options.transfer_key"),
    ],
)
def test_blaster_checks(options: dict[str, Any], field: str) -> None:
    with pytest.raises(CampaignError) as info:
        blaster.check("hola", None, options)
    assert info.value.field == field


def test_email_request_and_answer() -> None:
    job = SendJob(
        "cid", 0, "Hola mi nombre es <+B+> y tengo un id <+C+>,", options={"subject": "importante"}
    )
    people = [
        ChunkRecipient(0, "jose@max4technologies.com", {"name": "Jack", "field1": "52452245"})
    ]
    [req] = email.build(job, people, CTX).requests
    assert req.path == "/api/v1/email"
    assert body_of(req.body) == {
        "body": "Hola mi nombre es <+B+> y tengo un id <+C+>,",
        "subject": "importante",
        "template": 2,
        "recipients": [
            {"email": "jose@max4technologies.com", "name": "Jack", "field1": "52452245"}
        ],
    }
    answer = b'{"message": "New Email Campaign created successfully", "email_campaign_id": 28648}'
    [out] = email.parse(req, 200, answer)
    assert (out.status, out.batch_id) == (Status.SUBMITTED, "28648")


@pytest.mark.parametrize(
    ("text", "options", "field"),
    [
        ("hi", {"template": 5, "subject": "s"}, "options.template"),
        ("hi", {"template": 2}, "options.subject"),
        ("", {"template": 3, "subject": "s"}, "options.image"),
        ("hi", {"template": 3, "subject": "s", "image": "https://x.test/i.png"}, "text"),
        ("", {"template": 1, "subject": "s"}, "text"),
    ],
)
def test_email_template_rules(text: str, options: dict[str, Any], field: str) -> None:
    with pytest.raises(CampaignError) as info:
        email.check(text, None, options)
    assert info.value.field == field


def test_sms_clic_request_like_the_seed() -> None:
    text = "Para mayores informes dar clic aqui <+DYNAMICSHORTURL_IVX4+> ."
    job = SendJob("cid", 0, text, options={"route": 85, "country": 1, "url": 4})
    [req] = clic.build(job, [ChunkRecipient(0, "+524498987281")], CTX).requests
    b = body_of(req.body)
    assert req.path == "/api/v3/smsclic/campaign"
    assert (b["text"], b["url"], b["route"], b["recipients"]) == (
        text,
        4,
        85,
        [{"cellphone": "4498987281"}],
    )
    with pytest.raises(CampaignError, match=r"options\.url"):
        clic.check(text, None, {"route": 85})
    with pytest.raises(CampaignError, match="DYNAMICSHORTURL"):
        clic.check("no link", None, {"route": 85, "url": 4})


def test_hlr_path_and_answers() -> None:
    assert SmscloudsCodec.scrub_path("+524498987282") == "/api/v3/hlr/4498987282"
    assert SmscloudsCodec.scrub_path("+447901614024") is None  # Mexico only
    assert SmscloudsCodec.scrub_invalid(200, b'{"valid": false}')
    assert not SmscloudsCodec.scrub_invalid(200, b'{"valid": true}')
    assert not SmscloudsCodec.scrub_invalid(500, b"")
