"""Smsclouds' other campaign kinds through the worker and the mock: blaster (with polling
and cancel), email (addresses validated at enqueue), SMS CLIC, and the HLR scrub."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.model import Campaign, Recipient
from tests.conftest import RunningWorker, all_providers

MX = [f"+52449898{i:04d}" for i in range(30)]
POLL = {"poll_interval_seconds": 0.3, "poll_after_seconds": 0}


async def call(url: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, url + path, json=body) as r:
        return orjson.loads(await r.read())


async def stats(mock: str, name: str) -> dict[str, int]:
    result: dict[str, int] = (await call(mock, "GET", "/_mock/stats"))["providers"][name]
    return result


async def test_blaster_calls_reach_final_statuses_by_polling(
    redis: Redis, prefix: str, mock: str
) -> None:
    await call(
        mock,
        "POST",
        "/_mock/settings",
        {"list_interval_s": 0.25, "blaster_queue_ms": 0, "dlr_delay_ms": 0},
    )
    settings = all_providers(prefix, mock, smsclouds=POLL)
    client = Client(settings=settings, redis=redis)
    people = [Recipient(n, {"name": f"Ana {i}"}) for i, n in enumerate(MX)]
    options = {"type": 2, "remittent": "5570055780"}
    cid = (
        await client.enqueue(
            Campaign("smsclouds", "hola <+B+>", people, kind="blaster", options=options)
        )
    ).id
    async with RunningWorker(redis, settings, poll=True):
        st = await client.wait(cid, 60, final=True)
    assert st.done and sum(st.finals.values()) == 30
    assert (await stats(mock, "smsclouds_blaster"))["accepted"] == 30
    texts = {
        m["text"] for m in await call(mock, "GET", "/_mock/messages?provider=smsclouds_blaster")
    }
    assert texts == {f"hola Ana {i}" for i in range(30)}


async def test_blaster_cancel_while_queued_and_after(redis: Redis, prefix: str, mock: str) -> None:
    await call(mock, "POST", "/_mock/settings", {"blaster_queue_ms": 60_000})
    settings = all_providers(prefix, mock, smsclouds={"chunk_size": 10})
    client = Client(settings=settings, redis=redis)
    options = {"type": 1, "audio": 7, "remittent": "5570055780"}
    queued = (
        await client.enqueue(Campaign("smsclouds", "-", MX[:10], kind="blaster", options=options))
    ).id
    async with RunningWorker(redis, settings):
        assert (await client.wait(queued, 30)).sent
    assert await client.cancel(queued) >= 0
    answers = await client.cancel_at_provider(queued)
    assert list(answers.values()) == ["cancelled"]
    # A campaign that has started cannot be cancelled any more: the refusal is reported.
    await call(mock, "POST", "/_mock/settings", {"blaster_queue_ms": 0})
    started = (
        await client.enqueue(Campaign("smsclouds", "-", MX[10:20], kind="blaster", options=options))
    ).id
    async with RunningWorker(redis, settings):
        assert (await client.wait(started, 30)).sent
    answers = await client.cancel_at_provider(started)
    assert list(answers.values()) == ["Only a queued campaign (status 0) can be cancelled."]


async def test_email_campaign(redis: Redis, prefix: str, mock: str) -> None:
    settings = all_providers(prefix, mock)
    client = Client(settings=settings, redis=redis)
    people = [Recipient(f"user{i}@example.com", {"name": f"U{i}"}) for i in range(20)]
    answer = await client.enqueue(
        Campaign(
            "smsclouds",
            "Hola <+B+>",
            [*people, "not-an-address", "USER0@example.com"],
            kind="email",
            options={"subject": "Aviso"},
        )
    )
    assert (answer.valid, answer.invalid, answer.duplicates) == (20, 1, 1)
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 30, final=True)
    assert st.done and st.finals == {"submitted": 20, "invalid": 1}
    assert (await stats(mock, "smsclouds_email"))["accepted"] == 20
    bad = [r async for r in client.results(answer.id) if r.status == "invalid"]
    assert bad[0].error_code == "INVALID_EMAIL"


async def test_sms_clic_campaign(redis: Redis, prefix: str, mock: str) -> None:
    settings = all_providers(prefix, mock)
    client = Client(settings=settings, redis=redis)
    text = "Informes aqui <+DYNAMICSHORTURL_IVX4+> ."
    cid = (
        await client.enqueue(
            Campaign("smsclouds", text, MX[:5], kind="smsclic", options={"url": 4})
        )
    ).id
    async with RunningWorker(redis, settings):
        assert (await client.wait(cid, 30)).counts == {"accepted": 5}
    texts = {m["text"] for m in await call(mock, "GET", "/_mock/messages?provider=smsclouds")}
    assert texts == {"Informes aqui https://mx4.mx/0004 ."}


async def test_hlr_scrub_keeps_invalid_numbers_from_being_sent(
    redis: Redis, prefix: str, mock: str
) -> None:
    bad = [MX[3][3:], MX[7][3:]]  # national numbers the look-up will call invalid
    await call(mock, "POST", "/_mock/settings", {"hlr_invalid": bad})
    settings = all_providers(prefix, mock)
    client = Client(settings=settings, redis=redis)
    cid = (
        await client.enqueue(Campaign("smsclouds", "hola", MX[:10], options={"hlr_scrub": True}))
    ).id
    async with RunningWorker(redis, settings):
        st = await client.wait(cid, 30)
    assert st.counts == {"accepted": 8, "rejected": 2}
    s = await stats(mock, "smsclouds")
    assert (s["hlr_lookups"], s["accepted"]) == (10, 8)
    sent = {m["mobile"] for m in await call(mock, "GET", "/_mock/messages?provider=smsclouds")}
    assert not sent & set(bad)
