"""Smsclouds "Receive Responses MO (Option 1)" (seed 004): ``POST api/v3/responses`` (and
the ``api/v3/response`` of its HTTP Request line) lists the replies ``/_mock/inbound`` made
handsets send, by date, message ids, cellphone or campaign ids."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.mock.conftest import MockClient
from tests.mock.test_smsclouds import AUTH, URL, campaign

RESPONSES = "/smsclouds/api/v3/responses"
FIELDS = {"received_id", "campaign_id", "campaign_name", "message_id", "message", "response",
          "sent_at", "received_at"}  # fmt: skip


async def reply(mock: MockClient, mobile: str, text: str, **extra: Any) -> dict[str, Any]:
    body = {"provider": "smsclouds", "mobile": mobile, "text": text, **extra}
    status, answer = await mock.call("POST", "/_mock/inbound", body)
    assert status == 200 and answer["pushed"] is False  # no smsclouds_mo_url: kept only
    result: dict[str, Any] = answer
    return result


async def ask(mock: MockClient, body: Any, path: str = RESPONSES) -> tuple[int, Any]:
    return await mock.call("POST", path, body, AUTH)


@pytest.fixture
async def sent(mock_client: MockClient) -> dict[str, Any]:
    """Two campaigns sent, three replies received: 4498987282 answers the first campaign's
    message, 4498987283 the second's (its last), and once more by message id."""
    _, first = await mock_client.call("POST", URL, campaign(campaign_name="uno"), AUTH)
    people = [{"cellphone": "4498987283"}]
    _, second = await mock_client.call(
        "POST", URL, campaign(recipients=people, campaign_name="dos", text="hola dos"), AUTH
    )
    messages = await mock_client.messages("smsclouds")
    ids = {m["mobile"] + ":" + str(m["campaign"]): int(m["sid"]) for m in messages}
    a = await reply(mock_client, "4498987282", "Hi this is a mo")
    b = await reply(mock_client, "4498987283", "second")
    c = await reply(mock_client, "4498987283", "to the first", message_id=ids[
        f"4498987283:{first['campaign']}"])  # fmt: skip
    return {"first": first["campaign"], "second": second["campaign"], "ids": ids,
            "replies": [a, b, c]}  # fmt: skip


async def test_by_campaign_ids_like_the_seed_example(
    mock_client: MockClient, sent: dict[str, Any]
) -> None:
    status, answer = await ask(mock_client, {"type": "4", "campaigns": [str(sent["second"])]})
    assert status == 200
    assert (answer["message"], answer["type"]) == ("Completado Correctamente", "4")
    assert answer["from"] == time.strftime("%Y-%m-01 00:00:00", time.gmtime())
    assert answer["to"] >= answer["from"]
    [result] = answer["results"]
    assert set(result) == FIELDS
    assert result["received_id"] == sent["replies"][1]["received_id"]
    assert (result["campaign_id"], result["campaign_name"]) == (sent["second"], "dos")
    assert (result["message"], result["response"]) == ("hola dos", "second")
    assert result["message_id"] == sent["ids"][f"4498987283:{sent['second']}"]
    assert result["sent_at"] <= result["received_at"]
    _, both = await ask(mock_client, {"type": 4, "campaigns": [sent["first"], sent["second"]]})
    assert [r["response"] for r in both["results"]] == ["Hi this is a mo", "second",
                                                        "to the first"]  # fmt: skip
    _, one = await ask(mock_client, {"type": 4, "campaigns": sent["first"]})
    assert [r["response"] for r in one["results"]] == ["Hi this is a mo", "to the first"]


async def test_by_message_ids_cellphone_and_date(
    mock_client: MockClient, sent: dict[str, Any]
) -> None:
    wanted = sent["ids"][f"4498987282:{sent['first']}"]
    for name in ("messages", "message"):  # the bullets say messages, the table message
        _, by_id = await ask(mock_client, {"type": 2, name: [wanted]})
        assert [r["response"] for r in by_id["results"]] == ["Hi this is a mo"]
    _, by_phone = await ask(mock_client, {"type": 3, "cellphone": 4498987283})
    assert [r["response"] for r in by_phone["results"]] == ["second", "to the first"]
    _, by_date = await ask(mock_client, {"type": 1, "from": "2000-01-01 00:00:00"})
    assert len(by_date["results"]) == 3 and by_date["from"] == "2000-01-01 00:00:00"
    _, before = await ask(
        mock_client, {"type": 1, "from": "2000-01-01 00:00:00", "to": "2000-12-31 23:59:59"}
    )
    assert (before["to"], before["results"]) == ("2000-12-31 23:59:59", [])


async def test_both_paths_and_no_list_limit(mock_client: MockClient, sent: dict[str, Any]) -> None:
    """The manual gives Smsclouds no request-frequency limit: asked twice, answered twice."""
    for path in (RESPONSES, "/smsclouds/api/v3/response", RESPONSES):
        status, answer = await ask(mock_client, {"type": 1}, path)
        assert status == 200 and len(answer["results"]) == 3
    stats = await mock_client.stats("smsclouds")
    assert (stats["list_calls"], stats["list_refused"]) == (3, 0)


async def test_a_reply_to_nothing_sent_and_reset(mock_client: MockClient) -> None:
    answer = await reply(mock_client, "4499157710", "hola", message_id="158562")
    assert (answer["message_id"], answer["campaign_id"]) == (158562, None)
    _, found = await ask(mock_client, {"type": 2, "messages": 158562})
    [result] = found["results"]
    assert (result["message"], result["sent_at"], result["response"]) == (None, None, "hola")
    await mock_client.call("POST", "/_mock/reset", {})
    _, after = await ask(mock_client, {"type": 3, "cellphone": "4499157710"})
    assert after["results"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"type": None},
        {"type": 5},
        {"type": 0},
        {"type": "four"},
        {"type": 1, "from": "2020-05-01"},
        {"type": 1, "to": "2020-05-32 00:00:00"},
        {"type": 2},
        {"type": 2, "messages": []},
        {"type": 2, "messages": ["abc"]},
        {"type": 3},
        {"type": 3, "cellphone": "44-99"},
        {"type": 4},
        {"type": 4, "campaigns": [8528381, None]},
    ],
)
async def test_422(mock_client: MockClient, body: dict[str, Any]) -> None:
    status, answer = await ask(mock_client, body)
    assert (status, answer["error"]["status_code"]) == (422, 422)


async def test_400_401(mock_client: MockClient) -> None:
    status, answer = await mock_client.call("POST", RESPONSES, raw=b"type=4", headers=AUTH)
    assert (status, answer["error"]["status_code"]) == (400, 400)
    status, _ = await mock_client.call("POST", RESPONSES, [4], AUTH)
    assert status == 400
    no_accept = AUTH | {"Content-Type": "application/json"}
    status, _ = await mock_client.call("POST", RESPONSES, {"type": 1}, no_accept, bare=True)
    assert status == 400
    status, answer = await mock_client.call("POST", RESPONSES, {"type": 1})
    assert (status, answer["error"]["status_code"]) == (401, 401)


async def test_pushed_as_well_when_a_url_is_set(mock_client: MockClient) -> None:
    """Option 2 and Option 1 see the same reply (the push itself is tested end to end)."""
    await mock_client.call(
        "POST",
        "/_mock/settings",
        {"smsclouds_mo_url": "http://127.0.0.1:9/mo", "retry_time_factor": 0},
    )
    body = {"provider": "smsclouds", "mobile": "4498987282", "text": "hola"}
    _, answer = await mock_client.call("POST", "/_mock/inbound", body)
    assert answer["pushed"] is True
    _, found = await ask(mock_client, {"type": 3, "cellphone": "4498987282"})
    assert [r["received_id"] for r in found["results"]] == [answer["received_id"]]
