"""The Smsclouds mock against seed 004: tokens, 400/401/422 bodies, limits, token filling."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mock.conftest import MockClient

AUTH = {"Authorization": "Bearer mock-smsclouds-token"}
URL = "/smsclouds/api/v3/campaign"


def campaign(**change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": "hi mi name y jose",
        "recipients": [{"cellphone": "4498987282"}, {"cellphone": "4498987283"}],
        "campaign_name": "my campaign",
        "route": 87,
        "country": 1,
        "encode": False,
        "long_message": False,
    }
    body.update(change)
    return body


async def test_campaign_like_the_seed_example(mock_client: MockClient) -> None:
    status, answer = await mock_client.call("POST", URL, campaign(), AUTH)
    assert status == 200
    assert answer["message"] == "Completado Correctamente"
    assert isinstance(answer["campaign"], int) and answer["recipients_count"] == 2
    assert (answer["route"], answer["country"]) == ("Premium 2 Masiva", "Mexico")
    stats = await mock_client.stats("smsclouds")
    assert (stats["accepted"], stats["largest_batch"]) == (2, 2)


async def test_tokens_are_filled_per_recipient(mock_client: MockClient) -> None:
    people = [
        {"cellphone": "4498752325", "name": "Jack", "field1": "52452245"},
        {"cellphone": "4498752326", "name": "Ana"},
    ]
    await mock_client.call(
        "POST", URL, campaign(text="Hola <+B+> id <+C+>", recipients=people), AUTH
    )
    texts = [m["text"] for m in await mock_client.messages("smsclouds")]
    assert texts == ["Hola Jack id 52452245", "Hola Ana id "]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "mock-smsclouds-token"}]
)
async def test_401(mock_client: MockClient, headers: dict[str, str]) -> None:
    status, body = await mock_client.call("POST", URL, campaign(), headers)
    assert status == 401 and body["error"]["status_code"] == 401


async def test_400_without_json(mock_client: MockClient) -> None:
    status, body = await mock_client.call("POST", URL, raw=b"text=hi", headers=AUTH)
    assert status == 400 and body == {
        "error": {"information": body["error"]["information"], "status_code": 400}
    }


@pytest.mark.parametrize(
    "change",
    [
        {"text": ""},
        {"recipients": []},
        {"route": None, "country": None},
        {"route": 1},
        {"country": 9},
        {"text": "a" * 161},
        {"text": "a" * 307, "long_message": True},
        {"text": "á" * 71, "encode": True},
        {"scheduled_date": "tomorrow"},
        {"recipients": [{"cellphone": "12"}]},
        {"recipients": [{"cellphone": "4498987282"}] * 50_001},
    ],
)
async def test_422(mock_client: MockClient, change: dict[str, Any]) -> None:
    status, body = await mock_client.call("POST", URL, campaign(**change), AUTH)
    assert status == 422 and body["error"]["status_code"] == 422
    assert (await mock_client.stats("smsclouds"))["accepted"] == 0


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({"text": "a" * 306, "long_message": True}, True),
        ({"text": "á" * 70, "encode": True}, True),
        ({"text": "á" * 128, "encode_2": True}, True),
        ({"text": "á" * 192, "encode_3": True}, True),
        ({"text": "á" * 193, "encode_3": True}, False),
    ],
)
async def test_flag_limits(mock_client: MockClient, change: dict[str, Any], ok: bool) -> None:
    status, _ = await mock_client.call("POST", URL, campaign(**change), AUTH)
    assert status == (200 if ok else 422)


async def test_routes_countries_user(mock_client: MockClient) -> None:
    _, routes = await mock_client.call("GET", "/smsclouds/api/v3/user/routes", headers=AUTH)
    assert {r["route"] for r in routes} >= {77, 79}
    _, countries = await mock_client.call("GET", "/smsclouds/api/v3/user/countries", headers=AUTH)
    assert countries[:2] == [{"country": 1, "name": "Mexico"}, {"country": 2, "name": "USA"}]
    _, user = await mock_client.call("GET", "/smsclouds/api/v1/user", headers=AUTH)
    assert user["data"]["information"] == "User Found" and "credit" in user["data"]
    status, _ = await mock_client.call("GET", "/smsclouds/api/v1/user")
    assert status == 401
