"""The mock's lean front (mock/front.py) on a real loopback socket: it answers the one-mobile
send endpoints itself, in order, and hands a connection to aiohttp at the first request it
does not take, without losing a byte of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiohttp import web

from dispatcher.mock import MockSettings, start
from dispatcher.mock.server import STATE

SEND = "/cloudaten/v1/sms/send_messages"
KEY = "mock-cloudaten-key"


def send_request(mobile: str, *, extra: str = "", body: bytes | None = None) -> bytes:
    payload = body if body is not None else orjson.dumps({"mobile": mobile, "text": "hi"})
    return (
        f"POST {SEND} HTTP/1.1\r\nHost: mock\r\nX-API-Key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n{extra}\r\n"
    ).encode() + payload


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    async with asyncio.timeout(10):
        return await _read_answer(reader)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.strip().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, orjson.loads(body)


@pytest.fixture
async def served() -> AsyncIterator[tuple[web.AppRunner, int]]:
    runner, port = await start(MockSettings(port=0))
    yield runner, port
    await runner.cleanup()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def by_aiohttp(headers: dict[str, str]) -> bool:
    return "aiohttp" in headers.get("server", "")


async def test_answers_sends_in_order_on_one_connection(served: Any) -> None:
    _, port = served
    reader, writer = await connect(port)
    # Two requests in one write (pipelined), then one split across three writes.
    writer.write(send_request("+6591234567") + send_request("+6591234568"))
    third = send_request("+6591234569")
    answers = [await read_answer(reader), await read_answer(reader)]
    for piece in (third[:10], third[10:-5], third[-5:]):
        writer.write(piece)
        await writer.drain()
    answers.append(await read_answer(reader))
    assert [a[0] for a in answers] == [200, 200, 200]
    assert [a[2]["data"]["mobile"] for a in answers] == [
        "+6591234567",
        "+6591234568",
        "+6591234569",
    ]
    sids = [int(a[2]["data"]["sid"]) for a in answers]
    assert sids == sorted(sids) and len(set(sids)) == 3
    assert not any(by_aiohttp(a[1]) for a in answers)  # the front answered each
    assert answers[0][1]["content-type"] == "application/json"
    writer.close()


async def test_hands_the_connection_to_aiohttp_at_another_path(served: Any) -> None:
    runner, port = served
    reader, writer = await connect(port)
    writer.write(send_request("+6591234567"))
    status, headers, _ = await read_answer(reader)
    assert status == 200 and not by_aiohttp(headers)
    # Another path on the same connection, with the next send right behind it in one write:
    # aiohttp must read both from their first byte.
    balance = f"GET /cloudaten/v1/account/balance HTTP/1.1\r\nHost: m\r\nX-API-Key: {KEY}\r\n\r\n"
    writer.write(balance.encode() + send_request("+6591234568"))
    status, headers, body = await read_answer(reader)
    assert status == 200 and by_aiohttp(headers) and body["data"]["currency"] == "USD"
    status, headers, body = await read_answer(reader)
    assert status == 200 and by_aiohttp(headers) and body["data"]["mobile"] == "+6591234568"
    assert runner.app[STATE].recorder("cloudaten").stats.accepted == 2
    writer.close()


async def test_leaves_what_it_does_not_read_to_aiohttp(served: Any) -> None:
    runner, port = served
    chunked = orjson.dumps({"mobile": "+6591234567", "text": "hi"})
    cases = [
        # a chunked body
        (
            f"POST {SEND} HTTP/1.1\r\nHost: m\r\nX-API-Key: {KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"{len(chunked):x}\r\n".encode()
            + chunked
            + b"\r\n0\r\n\r\n",
            200,
        ),
        # a query string
        (send_request("+6591234568").replace(SEND.encode(), SEND.encode() + b"?x=1", 1), 200),
        # a header name with a space: aiohttp refuses it
        (send_request("+6591234569", extra="Bad Name: 1\r\n"), 400),
    ]
    for raw, expected in cases:
        reader, writer = await connect(port)
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert int(head.split()[1]) == expected, raw[:80]
        assert b"aiohttp" in head
        writer.close()
    assert runner.app[STATE].recorder("cloudaten").stats.accepted == 2


async def test_connection_close_is_honoured(served: Any) -> None:
    _, port = served
    reader, writer = await connect(port)
    writer.write(send_request("+6591234567", extra="Connection: close\r\n"))
    status, headers, _ = await read_answer(reader)
    assert status == 200 and headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    writer.close()


async def test_a_lost_answer_closes_the_connection_after_acceptance(served: Any) -> None:
    runner, port = served
    state = runner.app[STATE]
    state.settings = replace(state.settings, faults=(("lost", 1.0),))
    reader, writer = await connect(port)
    writer.write(send_request("+6591234567"))
    assert await asyncio.wait_for(reader.read(), 10) == b""  # no answer at all
    assert state.recorder("cloudaten").stats.accepted == 1  # yet the provider has it
    writer.close()


async def test_refusals_match_aiohttp(served: Any) -> None:
    """The same handler behind both: a bad key and a body that is not JSON get the
    documents' answers through the front too."""
    _, port = served
    reader, writer = await connect(port)
    wrong_key = send_request("+6591234567").replace(KEY.encode(), b"nope")
    writer.write(wrong_key)
    status, _, body = await read_answer(reader)
    assert (status, body["message"], body["path"]) == (
        401,
        "INVALID_API_KEY",
        "/v1/sms/send_messages",
    )
    writer.write(send_request("", body=b"{not json"))
    status, _, body = await read_answer(reader)
    assert (status, body) == (200, {"code": -101, "msg": "JSON_PARSE_ERROR"})
    writer.close()


async def test_cleanup_closes_kept_alive_connections() -> None:
    runner, port = await start(MockSettings(port=0))
    reader, writer = await connect(port)
    writer.write(send_request("+6591234567"))
    await read_answer(reader)
    await runner.cleanup()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
