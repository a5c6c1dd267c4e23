"""Smsclouds' other send endpoints against seed 004's tables: SMS CLIC (``url`` and
``route`` required), Send Blaster, Send Email."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mock.conftest import MockClient
from tests.mock.test_smsclouds import AUTH

CLIC = "/smsclouds/api/v3/smsclic/campaign"
VOICE = "/smsclouds/api/v3/voice"
EMAIL = "/smsclouds/api/v1/email"


def clic(**change: Any) -> dict[str, Any]:
    body = {"text": "Para mayores informes dar clic aqui <+DYNAMICSHORTURL_IVX4+> .",
            "recipients": [{"cellphone": "4498987281"}, {"cellphone": "4498987285"}],
            "route": 87, "country": 1, "campaign_name": "sms clic test", "encode": False,
            "long_message": False, "url": "4"}  # fmt: skip
    body.update(change)
    return body


def blaster(**change: Any) -> dict[str, Any]:
    body = {"type": 2, "campaign_name": "test api audio",
            "text": "hola, como estas <+B+> ? esta es una llamada blaster",
            "recipients": [{"cellphone": "4498752325", "name": "Jack", "field1": "52452245"}],
            "remittent": "5570055780"}  # fmt: skip
    body.update(change)
    return body


def email(**change: Any) -> dict[str, Any]:
    body = {"body": "Hola mi nombre es <+B+>", "subject": "importante",
            "recipients": [{"email": "jose@max4technologies.com", "name": "Jack",
                            "field1": "52452245"}]}  # fmt: skip
    body.update(change)
    return body


async def status_of(mock: MockClient, path: str, body: dict[str, Any]) -> int:
    status, answer = await mock.call("POST", path, body, AUTH)
    if status != 200:
        assert answer["error"]["status_code"] == status
    return status


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (clic(), 200),  # the manual's example: "url": "4", an integer as a string
        (clic(url=4, route="87"), 200),
        (clic(route=None), 422),  # SMS CLIC: route "required" (country optional)
        (clic(url=None), 422),
        (clic(url="four"), 422),
        (clic(recipients=[{"cellphone": "4498987281", "nombre": "x"}]), 422),
        (clic(encode="no"), 422),
    ],
)
async def test_clic(mock_client: MockClient, body: dict[str, Any], status: int) -> None:
    assert await status_of(mock_client, CLIC, body) == status


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (blaster(), 200),
        (blaster(type="2"), 200),
        (blaster(type=1, audio=12, text=None), 200),
        (blaster(transfer_num="4491234567", transfer_key=1, scheduledDate="2030-01-01 10:00:00"),
         200),
        (blaster(type=3), 422),
        (blaster(type=1, audio="twelve"), 422),
        (blaster(type=1, text=None), 422),
        (blaster(text=5), 422),
        (blaster(campaign_name=None), 422),
        (blaster(remittent=5570055780), 422),
        (blaster(transfer_num="4491234567"), 422),  # transfer_key "required if transfer_num"
        (blaster(transfer_num=4491234567, transfer_key=1), 422),
        (blaster(transfer_num="4491234567", transfer_key="star"), 422),
        (blaster(scheduledDate="mañana"), 422),
        (blaster(recipients=[{"cellphone": "4498752325", "edad": "30"}]), 422),
        (blaster(recipients=[{"cellphone": "44987523"}]), 422),
    ],
)  # fmt: skip
async def test_blaster(mock_client: MockClient, body: dict[str, Any], status: int) -> None:
    assert await status_of(mock_client, VOICE, body) == status


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (email(), 200),
        (email(template=3, body=None, image="https://127.0.0.1/a.png"), 200),
        (email(template="4", image="https://127.0.0.1/a.png", attachment="12", header="Hola",
               sender="ventas", scheduledDate="2030-01-01 10:00:00"), 200),
        (email(template=5), 422),
        (email(template=3), 422),  # template 3 needs the image
        (email(subject=None), 422),
        (email(body=["x"]), 422),
        (email(attachment="file.pdf"), 422),
        (email(header=1), 422),
        (email(scheduledDate="2030-13-01 10:00:00"), 422),
        (email(recipients=[{"email": "not-an-address"}]), 422),
        (email(recipients=[{"email": "a@b.mx", "cellphone": "4498752325"}]), 422),
    ],
)  # fmt: skip
async def test_email(mock_client: MockClient, body: dict[str, Any], status: int) -> None:
    assert await status_of(mock_client, EMAIL, body) == status


@pytest.mark.parametrize("path", [CLIC, VOICE, EMAIL])
async def test_without_content_type_400(mock_client: MockClient, path: str) -> None:
    headers = AUTH | {"Accept": "application/json"}
    status, answer = await mock_client.call("POST", path, blaster(), headers, bare=True)
    assert (status, answer["error"]["status_code"]) == (400, 400)
