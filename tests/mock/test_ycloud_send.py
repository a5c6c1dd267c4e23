"""YCloud's send endpoint refuses what seed 001's table refuses (§1, §2.1, Appendix 1):
its code table has no JSON_PARSE_ERROR, so every refusal here is BAD_ARGUMENT (2)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mock.conftest import MockClient

KEY = {"Authorization": "mock-ycloud-key"}
SEND = "/ycloud/v1/sms/send_messages"
GOOD = {"mobile": "+8615355498963", "text": "hello,world!"}


async def assert_refused(mock: MockClient, answer: Any, msg: str) -> None:
    status, body = answer
    assert (status, body) == (200, {"code": 2, "msg": msg})
    stats = await mock.stats("ycloud")
    assert (stats["rejected"], stats["accepted"]) == (1, 0)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json; charset=gbk"])
async def test_a_body_not_sent_as_json(mock_client: MockClient, content_type: str | None) -> None:
    headers = KEY | ({"Content-Type": content_type} if content_type else {})
    answer = await mock_client.call("POST", SEND, GOOD, headers, bare=True)
    await assert_refused(mock_client, answer, "BAD_ARGUMENT The body is not a JSON object")


@pytest.mark.parametrize("name", ["signature", "sender", "text2"])
async def test_a_parameter_the_table_does_not_list(mock_client: MockClient, name: str) -> None:
    answer = await mock_client.call("POST", SEND, GOOD | {name: "x"}, KEY)
    await assert_refused(mock_client, answer, f"BAD_ARGUMENT The {name} is not a parameter")


@pytest.mark.parametrize(
    ("extra", "msg"),
    [
        ({"extend": 12}, "BAD_ARGUMENT The extend is invalid"),
        ({"extend": "١٢"}, "BAD_ARGUMENT The extend must be numbers only"),
        ({"extend": "12a"}, "BAD_ARGUMENT The extend must be numbers only"),
        ({"uid": 1}, "BAD_ARGUMENT The uid is invalid"),
        ({"callback_url": {"url": "x"}}, "BAD_ARGUMENT The callback_url is invalid"),
        ({"text": ["hi"]}, "BAD_ARGUMENT The text is invalid"),
    ],
)
async def test_types_of_the_table(mock_client: MockClient, extra: dict[str, Any], msg: str) -> None:
    answer = await mock_client.call("POST", SEND, GOOD | extra, KEY)
    await assert_refused(mock_client, answer, msg)


async def test_every_listed_parameter_is_taken(mock_client: MockClient) -> None:
    body = GOOD | {"uid": "1234567", "callback_url": "http://127.0.0.1:9/cb", "extend": "12"}
    headers = KEY | {"Content-Type": "application/json;charset=utf-8;"}
    _, answer = await mock_client.call("POST", SEND, body, headers)
    assert answer["code"] == 0


async def test_sid_alone_lists_that_message(mock_client: MockClient) -> None:
    _, sent = await mock_client.call("POST", SEND, GOOD, KEY)
    sid = sent["data"]["sid"]
    _, listed = await mock_client.call("GET", f"/ycloud/v1/sms/list?sid={sid}", headers=KEY)
    assert [m["sid"] for m in listed["data"]] == [sid]
    assert (listed["page_no"], listed["page_size"]) == (1, 100)  # §2.3: default 100
