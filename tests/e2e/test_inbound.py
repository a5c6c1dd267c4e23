"""Inbound SMS (YCloud) and MO responses and keywords (Smsclouds) pushed by the mock to the
webhooks process, stored once, and listed by ``python -m dispatcher inbound``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from tests.e2e.conftest import SECRET, System

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster


async def test_inbound_reaches_the_stream_and_the_cli(system: System, redis: Redis) -> None:
    hooks = system.webhooks()
    system.write_config()
    await system.mock_settings(
        ycloud_inbound_url=f"{hooks}/hooks/{SECRET}/ycloud/inbound",
        smsclouds_mo_url=f"{hooks}/hooks/{SECRET}/smsclouds/mo",
        smsclouds_keyword_url=f"{hooks}/hooks/{SECRET}/smsclouds/keyword",
    )
    async with aiohttp.ClientSession() as s:
        for body in (
            {"provider": "ycloud", "mobile": "+8615355498966", "text": "Thank you"},
            {"provider": "smsclouds", "mobile": "4499157710", "text": "Hi this is a mo",
             "message_id": "158562"},
        ):  # fmt: skip
            async with s.post(f"{system.mock_url}/_mock/inbound", json=body) as r:
                assert r.status == 200
        keyword = {"provider": "smsclouds", "mobile": "4498987281", "text": "chema test 2",
                   "keyword": "chema"}  # fmt: skip
        async with s.post(f"{system.mock_url}/_mock/inbound", json=keyword) as r:
            answer = orjson.loads(await r.read())
    assert answer == {"status": 200, "answer": "Gracias, hemos recibido tu mensaje."}
    # The two pushes are asynchronous: wait on the stream for three entries.
    key = system.keys.inbound
    deadline = time.monotonic() + 30
    while await redis.xlen(key) < 3:
        assert time.monotonic() < deadline
        await redis.xread({key: "$"}, block=500)
    listed = [orjson.loads(x) for x in system.cli("inbound", "--json").stdout.splitlines()]
    assert sorted((e["provider"], e["text"]) for e in listed) == [
        ("smsclouds", "Hi this is a mo"),
        ("smsclouds", "chema test 2"),
        ("ycloud", "Thank you"),
    ]
    plain = system.cli("inbound").stdout
    assert "Thank you" in plain and "(keyword chema)" in plain


async def test_mo_replies_are_read_back_and_stored_once_beside_pushes(
    system: System, redis: Redis, tmp_path: Path
) -> None:
    """Smsclouds replies come by polling ``api/v3/responses`` when no push does, and once
    when both do."""
    hooks = system.webhooks()
    system.write_config(smsclouds={"poll_interval_seconds": 0.3, "poll_after_seconds": 0})
    await system.mock_settings(list_interval_s=0.2, dlr_delay_ms=0)
    listed = tmp_path / "mx.txt"
    listed.write_text("+524499157710\n+524499157711\n")
    cid = system.cli(
        "enqueue", "--provider", "smsclouds", "--text", "hola", "--recipients", str(listed)
    ).stdout.strip()
    system.worker()
    key = system.keys.inbound

    async def reply(mobile: str, text: str) -> None:
        body = {"provider": "smsclouds", "mobile": mobile, "text": text}
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{system.mock_url}/_mock/inbound", json=body) as r,
        ):
            assert r.status == 200, await r.text()

    async def entries(n: int = 0) -> list[dict[str, str]]:
        """The stream's entries, once it has at least ``n``."""
        deadline = time.monotonic() + 60
        while await redis.xlen(key) < n:
            assert time.monotonic() < deadline, f"fewer than {n} inbound entries"
            await redis.xread({key: "$"}, block=500)
        stored: Any = await redis.xrange(key)
        return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in stored]

    # Sent first: a reply answers the last message to its cellphone.
    sent = await system.mock_get("/_mock/messages?provider=smsclouds")
    deadline = time.monotonic() + 60
    while len(sent) < 2:
        assert time.monotonic() < deadline
        await redis.xread({system.keys.at(0).events: "$"}, block=500)
        sent = await system.mock_get("/_mock/messages?provider=smsclouds")
    await reply("4499157710", "si, gracias")  # nobody pushes it: polling alone finds it
    (first,) = await entries(1)
    assert (first["provider"], first["text"]) == ("smsclouds", "si, gracias")
    assert first["mobile"] == "+524499157710" and first["recipient"] == f"{cid}.0"
    assert first["id"].startswith(f"mo:{first['message_id']}:")
    # Now pushed too: the push and the next read back are the same reply, stored once.
    await system.mock_settings(smsclouds_mo_url=f"{hooks}/hooks/{SECRET}/smsclouds/mo")
    await reply("4499157711", "no")
    await entries(2)
    asked = (await system.mock_get("/_mock/stats"))["providers"]["smsclouds"]["responses_calls"]
    deadline = time.monotonic() + 60
    while (await system.mock_get("/_mock/stats"))["providers"]["smsclouds"][
        "responses_calls"
    ] < asked + 2:  # asked again after both had it: the reply was in the answer
        assert time.monotonic() < deadline
        await redis.xread({key: "$"}, block=300)
    got = await entries()
    assert [e["text"] for e in got] == ["si, gracias", "no"]
    assert got[1]["recipient"] == f"{cid}.1"
