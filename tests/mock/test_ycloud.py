"""The YCloud mock against seed 001."""

from __future__ import annotations

import pytest

from tests.mock.conftest import MockClient

KEY = {"Authorization": "mock-ycloud-key"}
SEND = "/ycloud/v1/sms/send_messages"


async def test_accepts_with_the_seed_message_object(mock_client: MockClient) -> None:
    status, body = await mock_client.call(
        "POST", SEND, {"mobile": "+8615355498963", "text": "hello,world!", "extend": "12"}, KEY
    )
    assert status == 200 and body["code"] == 0 and body["msg"] == "SUCCESS"
    assert set(body["data"]) == {
        "status",
        "price",
        "count",
        "mobile",
        "sid",
        "region_code",
        "create_timestamp",
    }
    assert (body["data"]["status"], body["data"]["region_code"]) == ("accepted", "CN")
    assert (await mock_client.stats("ycloud"))["accepted"] == 1


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "nope"}, {"X-API-Key": "mock-ycloud-key"}]
)
async def test_401_body(mock_client: MockClient, headers: dict[str, str]) -> None:
    status, body = await mock_client.call(
        "POST", SEND, {"mobile": "+8615355498963", "text": "x"}, headers
    )
    assert status == 401
    assert (body["status"], body["error"], body["message"], body["path"]) == (
        401,
        "Unauthorized",
        "INVALID_API_KEY",
        "/v1/sms/send_messages",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": "x"}, 1),
        ({"mobile": "+8615355498963"}, 1),
        ({"mobile": "8615355498963", "text": "x"}, 2),
        ({"mobile": "+8615355498963", "text": "x", "extend": "12a"}, 2),
    ],
)
async def test_codes(mock_client: MockClient, body: dict[str, str], code: int) -> None:
    status, answer = await mock_client.call("POST", SEND, body, KEY)
    assert (status, answer["code"]) == (200, code)
    assert (await mock_client.stats("ycloud"))["rejected"] == 1


async def test_balance_and_no_balance(mock_client: MockClient) -> None:
    await mock_client.call("POST", "/_mock/settings", {"balance": 0.0})
    _, answer = await mock_client.call("POST", SEND, {"mobile": "+8615355498963", "text": "x"}, KEY)
    assert (answer["code"], answer["msg"]) == (3, "NO_BALANCE")
    status, bal = await mock_client.call("GET", "/ycloud/v1/account/balance", headers=KEY)
    assert status == 200 and bal["data"] == {"currency": "USD", "amount": 0.0}
