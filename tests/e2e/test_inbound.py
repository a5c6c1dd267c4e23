"""Inbound SMS (YCloud) and MO responses and keywords (Smsclouds) pushed by the mock to the
webhooks process, stored once, and listed by ``python -m dispatcher inbound``."""

from __future__ import annotations

import time

import aiohttp
import orjson
from redis.asyncio import Redis

from dispatcher.keys import Keys
from tests.e2e.conftest import SECRET, System


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
    key = Keys(system.prefix).inbound
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
