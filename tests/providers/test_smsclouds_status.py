"""Smsclouds message statuses read as the seed's "Status of message" example answers them."""

from __future__ import annotations

import orjson
import pytest

from dispatcher.model import Status
from dispatcher.providers.base import BadPush
from dispatcher.providers.smsclouds import SmscloudsCodec
from dispatcher.providers.smsclouds_status import STATUSES, messages_path, parse_messages

SEED_ANSWER = {
    "message": "Completado Correctamente",
    "campaign": 8528381,
    "name": " my first campaign",
    "campaign_status": "inserted",
    "scheduled_date": "2020-05-25 13:22:38",
    "recipients_count": 3,
    "percentage": 100,
    "balance": 470533.043,
    "data": [
        {"id": 46608336, "cellphone": "4498987281", "status": "sent",
         "sent_date": "2020-05-25 13:22:49", "text": "hi mi name is Alex"},
        {"id": 46608337, "cellphone": "4498987282", "status": "failed",
         "sent_date": "2020-05-25 13:22:49", "text": "hi mi name is Alex"},
        {"id": 46608338, "cellphone": "4498987283", "status": "in progress",
         "sent_date": "2020-05-25 13:22:49", "text": "hi mi name is Alex"},
    ],
}  # fmt: skip


def test_the_seed_example_is_a_report_a_message() -> None:
    assert messages_path("8528381") == "/api/v3/campaign/8528381/messages"
    reports = parse_messages(orjson.dumps(SEED_ANSWER))
    assert [(r.message_id, r.number, r.status, r.error_code) for r in reports] == [
        ("46608336", "4498987281", Status.SUBMITTED, None),
        ("46608337", "4498987282", Status.FAILED, "FAILED"),
        ("46608338", "4498987283", Status.SENT, "IN_PROGRESS"),
    ]
    # the codec puts the route's country back in front of the national numbers
    codec = SmscloudsCodec()
    got = codec.parse_batch(orjson.dumps(SEED_ANSWER), {"route": 7, "country": 52})
    assert [r.number for r in got] == ["+524498987281", "+524498987282", "+524498987283"]
    assert codec.batch_path("8528381") == messages_path("8528381")


def test_every_status_of_the_seed_table_is_mapped() -> None:
    table = ["in progress", "sent", "failed", "paused", "retried", "cancelled"]
    assert sorted(STATUSES) == sorted(table)


def test_a_refusal_is_not_read_as_no_messages() -> None:
    with pytest.raises(BadPush, match="messages call refused"):
        parse_messages(b'{"error": "Unauthenticated."}')
