"""Smsclouds "Receive Responses MO (Option 1)" against seed 004's example."""

from __future__ import annotations

import orjson
import pytest

from dispatcher.providers.base import BadPush
from dispatcher.providers.smsclouds_responses import (
    Reply,
    mo_id,
    parse_mo,
    parse_replies,
    request_body,
)

# Seed 004, "Receive Responses MO (Option 1)": the answer of the example.
ANSWER = b"""{
  "message": "Completado Correctamente",
  "type": "4",
  "from": "2020-05-01 00:00:00",
  "to": "2020-05-25 13:25:22",
  "results": [
    {
      "received_id": 977929,
      "campaign_id": 8528381,
      "campaign_name": " my first campaign",
      "message_id": 46608336,
      "message": "hi mi name is Alex",
      "response": "Hi this is a mo",
      "sent_at": "2020-05-25 13:22:49",
      "received_at": "2020-05-25 13:23:11"
    }
  ]
}"""


def test_asks_by_campaign_ids_as_the_parameter_table_types_them() -> None:
    assert orjson.loads(request_body(["8528381", "12"])) == {
        "type": 4,
        "campaigns": [8528381, 12],
    }


def test_reads_the_seed_example() -> None:
    assert parse_replies(ANSWER) == [
        Reply("8528381", "46608336", "Hi this is a mo", "2020-05-25 13:23:11")
    ]


def test_a_reply_read_back_has_the_id_of_the_same_reply_pushed() -> None:
    pushed = parse_mo(
        {
            "response": "Hi this is a mo",
            "cellphone": "4499157710",
            "message_id": "46608336",
            "date": "2020-05-25 13:23:11",
        }
    )
    (read,) = parse_replies(ANSWER)
    assert pushed.id == mo_id(read.message_id, read.received_at)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b'{"error":{"information":"x","status_code":422}}', "body"),
        (b'{"message":"ok"}', "results"),
        (b'{"results":[1]}', "results[]"),
        (b'{"results":[{"campaign_id":1,"message_id":"\xd9\xa1","response":"a",'
         b'"received_at":"2020-05-25 13:23:11"}]}', "results[].message_id"),
        (b'{"results":[{"campaign_id":1,"message_id":2,"response":"a",'
         b'"received_at":"yesterday"}]}', "results[].received_at"),
        (b'{"results":[{"campaign_id":1,"message_id":2,"received_at":"2020-05-25 13:23:11"}]}',
         "results[].response"),
    ],
)  # fmt: skip
def test_refuses_what_the_seed_does_not_show(body: bytes, field: str) -> None:
    with pytest.raises(BadPush) as info:
        parse_replies(body)
    assert info.value.field == field
