"""Smsclouds over SMPP through the worker and the mock SMSC: throttling slows the account
and loses nothing, a dropped session leaves its window's requests of unknown fate, long and
UCS-2 texts arrive whole, receipts give every recipient its final status."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.model import Campaign, Recipient
from dispatcher.providers.smsclouds_smpp import SmscloudsSmppCodec
from tests.conftest import (
    MOCK_ACCOUNTS,
    PASSWORD,
    SYSTEM_ID,
    RunningWorker,
    Smsc,
    all_providers,
    eventually,
)

NUMBERS = [f"+5255{i:08d}" for i in range(300)]


def smpp_settings(prefix: str, smsc: Smsc, **provider: Any) -> Settings:
    """Smsclouds with an HTTP account (``default``) and an SMPP one (``smpp``)."""
    account = {
        "transport": "smpp",
        "smpp_host": "127.0.0.1",
        "smpp_port": smsc.port,
        "system_id": SYSTEM_ID,
        "api_key": PASSWORD,
        "sender_id": "MASMSJ",
        "window": 10,
    }
    accounts = {"default": MOCK_ACCOUNTS["smsclouds"], "smpp": account}
    return all_providers(prefix, smsc.url, smsclouds={"accounts": accounts, **provider})


async def test_receipts_give_every_recipient_a_final_status(
    redis: Redis, prefix: str, smsc: Smsc
) -> None:
    await smsc.call("POST", "/_mock/settings", {"smpp_receipt_delay_ms": 5})
    settings = smpp_settings(prefix, smsc)
    client = Client(settings=settings, redis=redis)
    numbers = NUMBERS[:200]
    cid = (await client.enqueue(Campaign("smsclouds", "hola", numbers, account="smpp"))).id
    async with RunningWorker(redis, settings):
        st = await client.wait(cid, 60, final=True)
    assert st.done and st.counts == {"accepted": 200}
    assert sum(st.finals.values()) == 200
    assert set(st.finals) <= {"delivered", "undelivered", "expired", "rejected"}
    ids = {m["message_ids"][0]: m["mobile"] for m in await smsc.messages()}
    results = [r async for r in client.results(cid)]
    assert {r.message_id: r.number for r in results} == ids  # each one the SMSC's id
    stats = await smsc.stats()
    assert (stats["messages"], stats["duplicates"], stats["window_overflows"]) == (200, 0, 0)


async def test_throttling_answers_slow_the_account_and_lose_nothing(
    redis: Redis, prefix: str, smsc: Smsc
) -> None:
    # The SMSC takes 100 a second; the account is configured for ten times that.
    await smsc.call("POST", "/_mock/settings", {"smpp_rate_per_second": 100, "smpp_burst": 5})
    settings = smpp_settings(prefix, smsc, rate_per_second=1000)
    client = Client(settings=settings, redis=redis)
    cid = (await client.enqueue(Campaign("smsclouds", "hola", NUMBERS, account="smpp"))).id
    async with RunningWorker(redis, settings):
        st = await client.wait(cid, 60)
    assert st.sent and st.counts == {"accepted": 300}
    stats = await smsc.stats()
    assert stats["throttled"] > 0  # it did say "too fast" …
    assert stats["messages"] == 300 and stats["duplicates"] == 0
    # … and the account slowed down rather than hammering it: fewer refusals than sends
    # (about 90 here; without slowing down, about 2,400).
    assert stats["throttled"] < 200, stats


async def test_a_dropped_session_parks_its_window_and_the_rest_is_sent(
    redis: Redis, prefix: str, smsc: Smsc
) -> None:
    await smsc.call("POST", "/_mock/settings", {"smpp_latency_ms": 20, "smpp_drop_after": 40})
    settings = smpp_settings(prefix, smsc, on_unknown="hold", unknown_wait_seconds=600)
    client = Client(settings=settings, redis=redis)
    numbers = NUMBERS[:100]
    cid = (await client.enqueue(Campaign("smsclouds", "hola", numbers, account="smpp"))).id
    async with RunningWorker(redis, settings):
        # No event says a recipient was parked: look until every one is accounted for.
        st = await eventually(
            lambda: client.status(cid),
            lambda st: st.recorded + sum(st.parked.values()) == 100,
            what="every recipient recorded or parked",
        )
    parked = st.parked.get("connection", 0)
    # What was waiting for an answer when the session dropped (at most the window) is of
    # unknown fate; everything else was sent, over a new session.
    assert 1 <= parked <= 10 and st.parked == {"connection": parked}
    assert st.counts == {"accepted": 100 - parked}
    stats = await smsc.stats()
    assert stats["binds"] == 2 and stats["disconnects"] == 1
    # The SMSC had every one that was answered; a parked one may or may not have reached it
    # before the drop (that is what unknown fate means: under load, one sometimes did not).
    assert 100 - parked <= stats["messages"] <= 100 and stats["duplicates"] == 0


async def test_long_and_ucs2_texts_arrive_whole(redis: Redis, prefix: str, smsc: Smsc) -> None:
    settings = smpp_settings(prefix, smsc)
    client = Client(settings=settings, redis=redis)
    texts = {
        "gsm": "Hola <+B+>, tu pedido {A-7} cuesta 10 € ^ | ~ " * 8,  # escapes
        "ucs2": "Привет, <+B+>! 😀 Ваш заказ готов. " * 6,  # surrogate pairs
    }
    cids = {}
    for name, text in texts.items():
        people = [Recipient(n, {"name": f"Ana {i}"}) for i, n in enumerate(NUMBERS[:3])]
        campaign = Campaign("smsclouds", text, people, account="smpp")
        cids[name] = (await client.enqueue(campaign)).id
    async with RunningWorker(redis, settings):
        for cid in cids.values():
            assert (await client.wait(cid, 60)).counts == {"accepted": 3}
    got = {(m["mobile"], m["text"]) for m in await smsc.messages()}
    want = {
        (n, text.replace("<+B+>", f"Ana {i}"))
        for text in texts.values()
        for i, n in enumerate(NUMBERS[:3])
    }
    assert got == want
    codec = SmscloudsSmppCodec()
    for m in await smsc.messages():  # as many parts as it is billed
        assert m["parts"] == codec.segments(m["text"], None, {}) >= 3
    billed = [r.segments for r in [r async for r in client.results(cids["gsm"])]]
    assert billed == [codec.segments(texts["gsm"].replace("<+B+>", "Ana 0"), None, {})] * 3
