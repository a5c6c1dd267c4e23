"""Cloud Aten's send endpoints refuse what seed 000's parameter tables refuse (§1, §2.1,
§3.1, Appendix 1), and list one record by sid (§2.3)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mock.conftest import MockClient

KEY = {"X-API-Key": "mock-cloudaten-key"}
SMS = "/cloudaten/v1/sms/send_messages"
VOICE = "/cloudaten/v1/voice/send"
GOOD = {"mobile": "+447901614024", "text": "hello,world!"}
CODE = {"mobile": "+447901614024", "verification_code": "1234"}


async def refused(mock: MockClient, answer: Any, provider: str = "cloudaten") -> None:
    status, body = answer
    assert status == 200 and "data" not in body
    stats = await mock.stats(provider)
    assert (stats["rejected"], stats["accepted"]) == (1, 0)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
async def test_a_body_not_sent_as_json_is_a_json_parse_error(
    mock_client: MockClient, content_type: str | None
) -> None:
    headers = dict(KEY) | ({"Content-Type": content_type} if content_type else {})
    answer = await mock_client.call("POST", SMS, GOOD, headers, bare=True)
    assert answer[1] == {"code": -101, "msg": "JSON_PARSE_ERROR"}
    await refused(mock_client, answer)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json;charset=utf-8;", "Application/JSON; charset=UTF-8"],
)
async def test_json_with_or_without_its_charset_is_taken(
    mock_client: MockClient, content_type: str
) -> None:
    headers = KEY | {"Content-Type": content_type}
    _, body = await mock_client.call("POST", SMS, GOOD, headers, bare=True)
    assert body["code"] == 0


@pytest.mark.parametrize("extra", [{"sender": "ACME"}, {"extend": "12"}, {"Mobile": "+1"}])
async def test_a_parameter_the_table_does_not_list_is_a_bad_argument(
    mock_client: MockClient, extra: dict[str, str]
) -> None:
    answer = await mock_client.call("POST", SMS, GOOD | extra, KEY)
    name = next(iter(extra))
    assert answer[1] == {"code": 2, "msg": f"BAD_ARGUMENT The {name} is not a parameter"}
    await refused(mock_client, answer)


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        ({"uid": 5}, "uid"),
        ({"uid": None}, "uid"),
        ({"callback_url": ["http://127.0.0.1/cb"]}, "callback_url"),
        ({"signature": 1}, "signature"),
        ({"mobile": 447901614024}, "mobile"),
    ],
)
async def test_every_parameter_is_a_string(
    mock_client: MockClient, extra: dict[str, Any], name: str
) -> None:
    answer = await mock_client.call("POST", SMS, GOOD | extra, KEY)
    assert answer[1] == {"code": 2, "msg": f"BAD_ARGUMENT The {name} is invalid"}
    await refused(mock_client, answer)


async def test_every_listed_parameter_is_taken(mock_client: MockClient) -> None:
    body = GOOD | {"signature": "YCSMS", "uid": "1234567",
                   "callback_url": "http://127.0.0.1:9/callback"}  # fmt: skip
    _, answer = await mock_client.call("POST", SMS, body, KEY)
    assert answer["code"] == 0


@pytest.mark.parametrize("mobile", ["+447901614024\n", "+44790161402٤"])
async def test_e164_is_ascii_digits_to_the_end(mock_client: MockClient, mobile: str) -> None:
    _, answer = await mock_client.call("POST", SMS, GOOD | {"mobile": mobile}, KEY)
    assert answer == {"code": 2, "msg": "BAD_ARGUMENT The mobile is invalid"}


# -- §3.1 voice -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "msg"),
    [
        ({"text": "1234"}, "BAD_ARGUMENT The text is not a parameter"),
        ({"language": ["en"]}, "BAD_ARGUMENT The language is invalid"),
        ({"language": "es"}, "BAD_ARGUMENT The language is not supported"),
        ({"uid": 7}, "BAD_ARGUMENT The uid is invalid"),
        ({"callback_url": 7}, "BAD_ARGUMENT The callback_url is invalid"),
        ({"verification_code": "123"}, "BAD_ARGUMENT The verification_code must be 4 to 6"),
        ({"verification_code": "1234567"}, "BAD_ARGUMENT The verification_code must be 4 to 6"),
        ({"verification_code": "1234\n"}, "BAD_ARGUMENT The verification_code must be 4 to 6"),
        ({"verification_code": 1234}, "BAD_ARGUMENT The verification_code is invalid"),
        ({"verification_code": ""}, "ARGUMENT_MISSING verification_code"),
    ],
)
async def test_voice_refusals(mock_client: MockClient, change: dict[str, Any], msg: str) -> None:
    answer = await mock_client.call("POST", VOICE, CODE | change, KEY)
    assert answer[1]["msg"].startswith(msg)
    await refused(mock_client, answer, "cloudaten_voice")


async def test_voice_not_sent_as_json(mock_client: MockClient) -> None:
    answer = await mock_client.call("POST", VOICE, CODE, KEY | {"Content-Type": "text/plain"})
    assert answer[1] == {"code": -101, "msg": "JSON_PARSE_ERROR"}


@pytest.mark.parametrize("code", ["1234", "123456"])
async def test_voice_takes_4_to_6_digits_and_every_listed_parameter(
    mock_client: MockClient, code: str
) -> None:
    body = {"mobile": "+447901614024", "verification_code": code, "language": "pt",
            "uid": "u1", "callback_url": "http://127.0.0.1:9/cb"}  # fmt: skip
    _, answer = await mock_client.call("POST", VOICE, body, KEY)
    assert answer["code"] == 0


# -- §2.3 / §3.2 records ----------------------------------------------------------------


async def test_sid_alone_lists_that_message(mock_client: MockClient) -> None:
    await mock_client.call("POST", "/_mock/settings", {"list_interval_s": 0})
    _, first = await mock_client.call("POST", SMS, GOOD, KEY)
    await mock_client.call("POST", SMS, GOOD | {"text": "second"}, KEY)
    sid = first["data"]["sid"]
    _, listed = await mock_client.call("GET", f"/cloudaten/v1/sms/list?sid={sid}", headers=KEY)
    assert listed["code"] == 0 and listed["count"] == 1
    assert [m["sid"] for m in listed["data"]] == [sid]
    _, none = await mock_client.call("GET", "/cloudaten/v1/sms/list?sid=1", headers=KEY)
    assert (none["code"], none["data"]) == (0, [])
    _, missing = await mock_client.call("GET", "/cloudaten/v1/sms/list?page_no=1", headers=KEY)
    assert missing["code"] == 1 and missing["msg"].startswith("ARGUMENT_MISSING")


@pytest.mark.parametrize(("path", "size", "code"), [
    ("/cloudaten/v1/voice/list", 100, 0), ("/cloudaten/v1/voice/list", 101, 2),
    ("/cloudaten/v1/sms/list", 5000, 0), ("/cloudaten/v1/sms/list", 5001, 2),
])  # fmt: skip
async def test_page_size_maximum(mock_client: MockClient, path: str, size: int, code: int) -> None:
    query = f"?page_no=1&page_size={size}&from=0&until=1"
    _, answer = await mock_client.call("GET", path + query, headers=KEY)
    assert answer["code"] == code
