"""Smsclouds' Send Messages "MT" refuses what seed 004's table and headers refuse: 400 for
a request without ``Accept`` / ``Content-Type: application/json``, 422 for a parameter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mock.conftest import MockClient
from tests.mock.test_smsclouds import AUTH, URL, campaign

JSON = {"Accept": "application/json", "Content-Type": "application/json"}
EVERY_FIELD = {"cellphone": "4498987282", "name": "Jack", "field1": "1", "field2": "2",
               "field3": "3", "field4": "4"}  # fmt: skip


def refusal(status: int, answer: Any) -> None:
    code, body = answer
    assert code == status
    assert set(body) == {"error"} and set(body["error"]) == {"information", "status_code"}
    assert body["error"]["status_code"] == status


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json", "Accept": "*/*"},
        {"Content-Type": "application/json", "Accept": "text/html"},
        {"Accept": "application/json"},
        {"Accept": "application/json", "Content-Type": "text/plain"},
    ],
)
async def test_headers_the_manual_lists_or_400(
    mock_client: MockClient, headers: dict[str, str]
) -> None:
    answer = await mock_client.call("POST", URL, campaign(), AUTH | headers, bare=True)
    refusal(400, answer)
    assert (await mock_client.stats("smsclouds"))["accepted"] == 0


async def test_accept_may_list_more_types(mock_client: MockClient) -> None:
    headers = AUTH | JSON | {"Accept": "text/html, application/json;q=0.9"}
    status, _ = await mock_client.call("POST", URL, campaign(), headers, bare=True)
    assert status == 200


async def test_a_bad_token_is_401_before_the_headers(mock_client: MockClient) -> None:
    answer = await mock_client.call("POST", URL, campaign(), {"Authorization": "x"}, bare=True)
    refusal(401, answer)


@pytest.mark.parametrize(
    "path",
    ["/smsclouds/api/v3/user/routes", "/smsclouds/api/v3/user/countries", "/smsclouds/api/v1/user",
     "/smsclouds/api/v3/campaign/1/messages", "/smsclouds/api/v3/hlr/4498987282"],
)  # fmt: skip
async def test_get_endpoints_want_accept_json(mock_client: MockClient, path: str) -> None:
    refusal(400, await mock_client.call("GET", path, headers=AUTH, bare=True))
    status, _ = await mock_client.call("GET", path, headers=AUTH | {"Accept": "application/json"})
    assert status != 400


@pytest.mark.parametrize(
    "change",
    [
        {"text": "a" * 71, "encode": True},  # encode: "a maximum of 70 characters"
        {"text": "á" * 71, "encode": True},
        {"text": "a" * 129, "encode_2": True},
        {"text": "a" * 193, "encode_3": True},
        {"text": "a" * 100, "encode": True, "long_message": True},
        {"text": "a" * 161, "long_message": False},
        {"text": "á"},  # special characters need an encode flag
        {"text": 123},
        {"text": ["hi"]},
        {"encode": "true"},
        {"encode_2": 1},
        {"long_message": "false"},
        {"route": 87.5, "country": None},
        {"route": "eighty-seven", "country": None},
        {"route": True, "country": None},
        {"country": "Mexico"},
        {"campaign_name": 7},
        {"scheduled_date": "2023-02-30 10:00:00"},
        {"scheduled_date": "2023-10-05T10:00:00"},
        {"recipients": [{"cellphone": "4498987282", "email": "a@b.mx"}]},
        {"recipients": [{"cellphone": "4498987282", "field5": "x"}]},
        {"recipients": [{"cellphone": "4498987282", "name": 5}]},
        {"recipients": [{"cellphone": "4498987282", "field1": None}]},
        {"recipients": [{"cellphone": "449898728.2"}]},
        {"recipients": [{"cellphone": 449898728}]},
        {"recipients": ["4498987282"]},
        {"recipients": {"cellphone": "4498987282"}},
        {"text": "Hola <+B+>", "recipients": [{"cellphone": "4498987282", "name": "x" * 160}]},
        {"text": "Hola <+B+>", "recipients": [{"cellphone": "4498987282", "name": "María"}]},
    ],
)
async def test_422(mock_client: MockClient, change: dict[str, Any]) -> None:
    refusal(422, await mock_client.call("POST", URL, campaign(**change), AUTH))
    assert (await mock_client.stats("smsclouds"))["accepted"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"text": "a" * 70, "encode": True},
        {"text": "á" * 70, "encode": True},
        {"text": "a" * 128, "encode_2": True},
        {"text": "a" * 192, "encode_3": True},
        {"text": "á" * 128, "encode": True, "encode_2": True},  # the largest flag set wins
        {"text": "a" * 160},
        {"text": "a" * 306, "long_message": True},
        {"route": "87", "country": "1"},  # integers as the manual's examples send them
        {"route": None, "country": 1},
        {"country": None},
        {"encode": None, "long_message": None},
        {"scheduled_date": "2030-01-31 23:59:59"},
        {"recipients": [{"cellphone": 4498987282}]},
        {"recipients": [EVERY_FIELD]},
        {"recipients": [{"cellphone": "4498987282"}] * 50_000},
    ],
)
async def test_accepted_at_the_limits(mock_client: MockClient, change: dict[str, Any]) -> None:
    status, answer = await mock_client.call("POST", URL, campaign(**change), AUTH)
    assert status == 200 and answer["message"] == "Completado Correctamente"
