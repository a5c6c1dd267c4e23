"""The Cloud Aten mock against seed 000: auth, validation codes, message object, counters."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from dispatcher.mock import MockSettings, start
from dispatcher.mock.segments import segments

KEY = "mock-cloudaten-key"


class Mock:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def send(
        self, body: Any, key: str | None = KEY, raw: bytes | None = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["X-API-Key"] = key
        data = raw if raw is not None else orjson.dumps(body)
        async with self.session.post(
            f"{self.base}/cloudaten/v1/sms/send_messages", data=data, headers=headers
        ) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def get(self, path: str, key: str | None = None) -> tuple[int, Any]:
        headers = {"X-API-Key": key} if key else {}
        async with self.session.get(self.base + path, headers=headers) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.base + path, json=body) as resp:
            return resp.status, orjson.loads(await resp.read())

    async def stats(self) -> dict[str, int]:
        _, data = await self.get("/_mock/stats")
        stats: dict[str, int] = data["providers"]["cloudaten"]
        return stats


@pytest.fixture
async def mock() -> AsyncIterator[Mock]:
    runner, port = await start(MockSettings(port=0, balance=1.0, sensitive_words=("casino",)))
    async with aiohttp.ClientSession() as session:
        yield Mock(session, f"http://127.0.0.1:{port}")
    await runner.cleanup()


async def test_success_has_the_seed_message_object(mock: Mock) -> None:
    before = int(time.time() * 1000)
    status, body = await mock.send({"mobile": "+447901614024", "text": "hello,world!", "uid": "u1"})
    assert status == 200
    assert (body["code"], body["msg"]) == (0, "SUCCESS")
    data = body["data"]
    assert set(data) == {
        "status",
        "price",
        "count",
        "mobile",
        "sid",
        "region_code",
        "create_timestamp",
    }
    assert data["status"] == "accepted" and data["mobile"] == "+447901614024"
    assert data["region_code"] == "GB" and data["count"] == 1
    assert isinstance(data["price"], float) and data["price"] == 0.0087
    assert data["sid"].isdigit() and data["create_timestamp"] >= before
    _, again = await mock.send({"mobile": "+447901614024", "text": "hello"})
    assert int(again["data"]["sid"]) > int(data["sid"])


@pytest.mark.parametrize("key", [None, "wrong"])
async def test_unauthorized_is_the_seed_401_body(mock: Mock, key: str | None) -> None:
    status, body = await mock.send({"mobile": "+447901614024", "text": "hi"}, key=key)
    assert status == 401
    assert set(body) == {"timestamp", "status", "error", "message", "path"}
    assert (body["status"], body["error"], body["message"], body["path"]) == (
        401,
        "Unauthorized",
        "INVALID_API_KEY",
        "/v1/sms/send_messages",
    )
    assert (await mock.stats())["unauthorized"] == 1


@pytest.mark.parametrize(
    ("body", "raw", "code", "msg"),
    [
        (None, b"{not json", -101, "JSON_PARSE_ERROR"),
        (None, b"[1, 2]", -101, "JSON_PARSE_ERROR"),
        ({"text": "hi"}, None, 1, "ARGUMENT_MISSING mobile"),
        ({"mobile": "+447901614024"}, None, 1, "ARGUMENT_MISSING text"),
        ({"mobile": "+447901614024", "text": ""}, None, 1, "ARGUMENT_MISSING text"),
        ({"mobile": "447901614024", "text": "hi"}, None, 2, "BAD_ARGUMENT The mobile is invalid"),
        ({"mobile": "+44 7901", "text": "hi"}, None, 2, "BAD_ARGUMENT The mobile is invalid"),
        ({"mobile": "+4412", "text": "hi"}, None, 2, "BAD_ARGUMENT The mobile is invalid"),
        (
            {"mobile": "+447901614024", "text": "hi", "uid": 5},
            None,
            2,
            "BAD_ARGUMENT The uid is invalid",
        ),
        ({"mobile": "+8613800138000", "text": "hi"}, None, 2, "BAD_ARGUMENT The signature"),
        ({"mobile": "+447901614024", "text": "big casino"}, None, 52, "SENSITIVE_WORD"),
    ],
)
async def test_validation_codes(
    mock: Mock, body: Any, raw: bytes | None, code: int, msg: str
) -> None:
    status, answer = await mock.send(body, raw=raw)
    assert status == 200
    assert answer["code"] == code
    assert answer["msg"].startswith(msg)
    assert "data" not in answer
    stats = await mock.stats()
    assert (stats["rejected"], stats["accepted"]) == (1, 0)


async def test_signature_is_prefixed_and_china_accepted_with_it(mock: Mock) -> None:
    _, body = await mock.send(
        {"mobile": "+8613800138000", "text": "Hello world", "signature": "YCSMS"}
    )
    assert body["code"] == 0 and body["data"]["region_code"] == "CN"
    _, messages = await mock.get("/_mock/messages?provider=cloudaten")
    assert messages[0]["text"] == "【YCSMS】Hello world"


async def test_unpriced_region_and_balance(mock: Mock) -> None:
    await mock.post("/_mock/settings", {"unpriced_regions": ["JP"]})
    _, body = await mock.send({"mobile": "+81312345678", "text": "hi"})
    assert (body["code"], body["msg"]) == (-2, "NO_BASE_PRICE")
    # Balance 1.0 at 0.0087 a segment: 114 single messages fit, the 115th does not.
    for _ in range(114):
        _, ok = await mock.send({"mobile": "+447901614024", "text": "hi"})
        assert ok["code"] == 0
    _, body = await mock.send({"mobile": "+447901614024", "text": "hi"})
    assert (body["code"], body["msg"]) == (3, "NO_BALANCE")
    status, balance = await mock.get("/cloudaten/v1/account/balance", key=KEY)
    assert status == 200 and balance["data"]["currency"] == "USD"
    assert balance["data"]["amount"] == pytest.approx(1.0 - 114 * 0.0087)
    status, _ = await mock.get("/cloudaten/v1/account/balance")
    assert status == 401


async def test_counters_messages_and_reset(mock: Mock) -> None:
    for uid, mobile in [("a", "+447901614024"), ("b", "+447901614024"), ("a", "+447911000001")]:
        await mock.send({"mobile": mobile, "text": "hi", "uid": uid})
    stats = await mock.stats()
    assert (stats["requests"], stats["accepted"], stats["uids_repeated"]) == (3, 3, 1)
    assert (stats["mobiles_repeated"], stats["largest_batch"]) == (1, 1)
    _, messages = await mock.get("/_mock/messages?provider=cloudaten")
    assert [m["uid"] for m in messages] == ["a", "b", "a"]
    assert (await mock.get("/_mock/messages?provider=nope"))[0] == 404
    await mock.post("/_mock/reset", {})
    assert (await mock.stats())["accepted"] == 0
    assert (await mock.get("/_mock/messages"))[1] == []


async def test_settings_change_latency_and_never_show_keys(mock: Mock) -> None:
    status, public = await mock.post("/_mock/settings", {"latency_ms": 80})
    assert status == 200 and public["latency_ms"] == 80
    assert KEY not in orjson.dumps(public).decode()
    started = time.monotonic()
    await mock.send({"mobile": "+447901614024", "text": "hi"})
    assert time.monotonic() - started >= 0.08
    assert (await mock.post("/_mock/settings", {"cloudaten_keys": ["x"]}))[0] == 400


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters count double: 160
        ("[" * 81, 2),
        ("你" * 70, 1),
        ("你" * 71, 2),
        ("你" * 134, 2),
        ("你" * 135, 3),
    ],
)
async def test_segments_counted_as_billed(mock: Mock, text: str, count: int) -> None:
    assert segments(text) == count
    await mock.post("/_mock/settings", {"balance": 100.0})
    _, body = await mock.send({"mobile": "+447901614024", "text": text})
    assert body["data"]["count"] == count
