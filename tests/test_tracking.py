"""Delivery reports in a real Redis: forward-only status, repeats counted once, any order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.keys import Keys
from dispatcher.model import Campaign, Result, Status, rank
from dispatcher.providers.base import Inbound, Report
from dispatcher.queue import Queue, Settle, Track
from dispatcher.store import now_ms
from dispatcher.tracking import REFUSED, Applied, Target, Tracker
from tests.conftest import make_settings
from tests.test_unknown import NUMBERS as PARKED
from tests.test_unknown import park_all

NUMBERS = [f"+4479110{i:05d}" for i in range(5)]


async def campaign(redis: Redis, settings: Settings) -> tuple[str, Queue, Tracker]:
    answer = await Client(settings=settings, redis=redis).enqueue(
        Campaign("cloudaten", "hi", NUMBERS)
    )
    k = Keys(settings.prefix)
    q = Queue(redis, k, "w", [k.at(0).queue("cloudaten")])
    await q.setup()
    return answer.id, q, Tracker(redis, k)


async def send_all(q: Queue, status: Status = Status.ACCEPTED) -> None:
    [lease] = await q.read(1, 100)
    results = [Result(i, n, status, message_id=f"sid{i}", sent_at=1) for i, n in enumerate(NUMBERS)]
    await q.record(lease, results, Settle.ACK, track=Track("default", True, True))


def report(cid: str, index: int, status: Status, raw: str = "") -> Report:
    return Report(status=status, raw_status=raw or status.value, campaign_id=cid, index=index)


async def test_out_of_order_and_repeats(redis: Redis, settings: Settings) -> None:
    cid, q, tracker = await campaign(redis, settings)
    client = Client(settings=settings, redis=redis)
    await send_all(q)
    assert await tracker.apply("cloudaten", report(cid, 0, Status.DELIVERED)) is Applied.APPLIED
    # A late "delivering" does not overwrite "delivered"; the same report again counts once.
    assert (
        await tracker.apply("cloudaten", report(cid, 0, Status.SENT, "delivering")) is Applied.STALE
    )
    for _ in range(5):
        assert await tracker.apply("cloudaten", report(cid, 0, Status.DELIVERED)) is Applied.STALE
    assert await tracker.apply("cloudaten", report(cid, 1, Status.SENT)) is Applied.APPLIED
    assert await tracker.apply("cloudaten", report(cid, 1, Status.EXPIRED)) is Applied.APPLIED
    st_ = await client.status(cid)
    assert st_.finals == {"delivered": 1, "expired": 1}
    assert (st_.open, st_.sent, st_.done, st_.state) == (3, True, False, "sent")
    results = {r.index: r async for r in client.results(cid)}
    assert (results[0].status, results[0].raw_status) == ("delivered", "delivered")
    assert results[1].status == "expired" and results[2].status == "accepted"


async def test_report_before_the_send_result(redis: Redis, settings: Settings) -> None:
    cid, q, tracker = await campaign(redis, settings)
    client = Client(settings=settings, redis=redis)
    assert await tracker.apply("cloudaten", report(cid, 2, Status.DELIVERED)) is Applied.APPLIED
    await send_all(q)  # the worker records "accepted" after the report came
    st_ = await client.status(cid)
    assert st_.finals == {"delivered": 1} and st_.counts == {"accepted": 5}
    results = {r.index: r async for r in client.results(cid)}
    assert results[2].status == "delivered" and results[2].message_id == "sid2"


async def test_a_final_send_result_is_not_overwritten(redis: Redis, settings: Settings) -> None:
    cid, q, tracker = await campaign(redis, settings)
    await send_all(q, Status.REJECTED)
    assert await tracker.apply("cloudaten", report(cid, 0, Status.DELIVERED)) is Applied.STALE
    st_ = await Client(settings=settings, redis=redis).status(cid)
    assert st_.finals == {"rejected": 5} and st_.done and st_.state == "done"


async def test_done_when_every_recipient_is_final(redis: Redis, settings: Settings) -> None:
    cid, q, tracker = await campaign(redis, settings)
    client = Client(settings=settings, redis=redis)
    await send_all(q)
    waiter = asyncio.create_task(client.wait(cid, 30, final=True))
    for i in range(5):
        assert "done_at" not in await client.store.meta(cid)
        await tracker.apply("cloudaten", report(cid, i, Status.DELIVERED))
    st_ = await waiter
    assert st_.done and st_.finals == {"delivered": 5} and st_.state == "done"
    # The report that finished it starts its retention (retention.py).
    assert abs(int((await client.store.meta(cid))["done_at"]) - now_ms()) < 60_000


async def test_unknown_recipients_change_nothing(redis: Redis, settings: Settings) -> None:
    cid, q, tracker = await campaign(redis, settings)
    await send_all(q)
    before = await redis.keys(f"{settings.prefix}*")
    assert await tracker.apply("cloudaten", report("nope", 0, Status.DELIVERED)) is Applied.UNKNOWN
    # Our campaign, but no such recipient: a contradiction, refused.
    assert (
        await tracker.apply("cloudaten", report(cid, 99, Status.DELIVERED))
        is Applied.WRONG_RECIPIENT
    )
    assert (
        await tracker.apply("cloudaten", report(cid, -1, Status.DELIVERED))
        is Applied.WRONG_RECIPIENT
    )
    no_ref = Report(Status.DELIVERED, "delivered", message_id="unknown-sid")
    assert await tracker.apply("cloudaten", no_ref) is Applied.UNKNOWN
    assert sorted(await redis.keys(f"{settings.prefix}*")) == sorted(before)


async def test_reports_found_by_message_id_and_by_chunk(redis: Redis, settings: Settings) -> None:
    cid, q, tracker = await campaign(redis, settings)
    await send_all(q)
    by_sid = Report(Status.UNDELIVERED, "undelivered", message_id="sid3")
    found = await tracker.check("cloudaten", by_sid)
    assert isinstance(found, Target) and (found.cid, found.index) == (cid, 3)
    by_chunk = Report(Status.DELIVERED, "DELIVERED", campaign_id=cid, chunk=0, number=NUMBERS[4])
    found = await tracker.check("cloudaten", by_chunk)
    assert isinstance(found, Target) and (found.cid, found.index) == (cid, 4)
    assert await tracker.apply("cloudaten", by_sid) is Applied.APPLIED


async def test_inbound_is_stored_once_and_linked(redis: Redis, settings: Settings) -> None:
    cid, q, tracker = await campaign(redis, settings)
    await send_all(q)
    message = Inbound("cloudaten", "in-1", NUMBERS[1], "STOP", message_id="sid1")
    assert await tracker.add_inbound(message) is True
    assert await tracker.add_inbound(message) is False  # the provider pushed it again
    [entry] = await Client(settings=settings, redis=redis).inbound()
    assert (entry["text"], entry["mobile"], entry["recipient"]) == ("STOP", NUMBERS[1], f"{cid}.1")


def named(cid: str, index: int, number: str, message_id: str | None = None) -> Report:
    return Report(
        Status.DELIVERED, "delivered", message_id=message_id, campaign_id=cid, index=index,
        number=number,
    )  # fmt: skip


async def test_a_report_must_agree_with_what_was_sent(redis: Redis, settings: Settings) -> None:
    cid, q, tracker = await campaign(redis, settings)
    await send_all(q)
    before = sorted(await redis.keys(f"{settings.prefix}*"))
    refusals = [
        ("ycloud", named(cid, 1, NUMBERS[1], "sid1"), Applied.WRONG_PROVIDER),
        ("cloudaten", named(cid, 1, NUMBERS[2], "sid1"), Applied.WRONG_NUMBER),
        ("cloudaten", named(cid, 1, "+4479110999999", "sid1"), Applied.WRONG_NUMBER),
        ("cloudaten", named(cid, 1, NUMBERS[1], "sid2"), Applied.WRONG_MESSAGE),
        ("cloudaten", named(cid, 5, NUMBERS[1], "sid1"), Applied.WRONG_RECIPIENT),
    ]
    for provider, wrong, refusal in refusals:
        assert await tracker.apply(provider, wrong) is refusal
        assert refusal in REFUSED
    assert sorted(await redis.keys(f"{settings.prefix}*")) == before
    assert not await redis.keys(f"{Keys(settings.prefix).reports(cid)}*")
    # The same number written nationally or without "+" is the same number.
    for i, form in ((1, NUMBERS[1][1:]), (2, "0" + NUMBERS[2][3:]), (3, NUMBERS[3][3:])):
        assert await tracker.apply("cloudaten", named(cid, i, form, f"sid{i}")) is Applied.APPLIED


async def test_a_report_before_the_send_result_is_checked_in_its_chunk(
    redis: Redis, prefix: str
) -> None:
    """No result yet (the chunk is still sending): the number comes from the chunk, found
    by bisection over the campaign's chunks."""
    s = make_settings(prefix, chunk_size=2)
    numbers = [*NUMBERS, NUMBERS[0], "not a number", *(f"+4479111{i:05d}" for i in range(6))]
    answer = await Client(settings=s, redis=redis).enqueue(Campaign("cloudaten", "hi", numbers))
    tracker = Tracker(redis, Keys(prefix))
    assert answer.duplicates == 1 and answer.invalid == 1
    for index, number in enumerate(numbers):
        if index in (5, 6):  # the duplicate and the invalid one: never sent
            got = await tracker.apply("cloudaten", named(answer.id, index, number))
            assert got is (Applied.WRONG_RECIPIENT if index == 5 else Applied.STALE)
            continue
        wrong = numbers[(index + 1) % len(numbers)]
        got = await tracker.apply("cloudaten", named(answer.id, index, wrong))
        assert got is Applied.WRONG_NUMBER
        assert await tracker.apply("cloudaten", named(answer.id, index, number)) is (
            Applied.APPLIED
        )
    st_ = await Client(settings=s, redis=redis).status(answer.id)
    assert st_.finals == {"delivered": len(numbers) - 2, "invalid": 1}


async def test_inbound_naming_another_recipients_message_is_refused(
    redis: Redis, settings: Settings
) -> None:
    _, q, tracker = await campaign(redis, settings)
    await send_all(q)
    liar = Inbound("cloudaten", "in-2", NUMBERS[2], "STOP", message_id="sid1")
    assert await tracker.link(liar) == ("", Applied.WRONG_NUMBER)
    assert await tracker.add_inbound(liar) is False
    assert await Client(settings=settings, redis=redis).inbound() == []
    unknown = Inbound("cloudaten", "in-3", NUMBERS[2], "hello", message_id="not-ours")
    assert await tracker.link(unknown) == ("", None)
    assert await tracker.add_inbound(unknown) is True


STATUSES = [Status.ACCEPTED, Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.EXPIRED]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(STATUSES), min_size=1, max_size=12))
def test_any_order_any_repeats(redis_url: str, sequence: list[Status]) -> None:
    """Whatever the order and repeats, the kept status is the first of the highest rank,
    and a final status is counted exactly once."""

    async def scenario() -> None:
        redis = Redis.from_url(redis_url)
        try:
            prefix = f"hyp{abs(hash(tuple(sequence))) % 10**9}{id(sequence)}:"
            s = make_settings(prefix)
            cid, q, tracker = await campaign(redis, s)
            await send_all(q)
            for status in sequence:
                await tracker.apply("cloudaten", report(cid, 0, status))
            best = max(rank(x) for x in [Status.ACCEPTED, *sequence])
            expected = next((x for x in sequence if rank(x) == best), Status.ACCEPTED)
            got = {r.index: r async for r in Client(settings=s, redis=redis).results(cid)}
            assert got[0].status == expected
            finals = (await Client(settings=s, redis=redis).status(cid)).finals
            assert finals == ({expected.value: 1} if best == 3 else {})
        finally:
            await redis.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_a_rank(status: Status) -> None:
    assert rank(status) in (0, 1, 2, 3)


async def sent_campaign(redis: Redis, settings: Settings, tag: str) -> str:
    """Five recipients sent, their message ids ``<tag><i>``."""
    cid, q, _tracker = await campaign(redis, settings)
    [lease] = await q.read(1, 100)
    results = [Result(i, n, Status.ACCEPTED, f"{tag}{i}", sent_at=1) for i, n in enumerate(NUMBERS)]
    await q.record(lease, results, Settle.ACK, track=Track("default", True, True))
    return cid


def mixed_reports(cid: str, tag: str) -> list[Report]:
    """Every way a report names a recipient, refusals, repeats in one batch, and the report
    that finishes the campaign."""
    return [
        report(cid, 0, Status.SENT),
        report(cid, 0, Status.DELIVERED),
        report(cid, 0, Status.SENT, "late"),  # stale: 0 is final already
        Report(Status.UNDELIVERED, "undelivered", message_id=f"{tag}3"),  # by id alone
        Report(Status.DELIVERED, "delivered", message_id="nobody"),  # not ours
        Report(Status.DELIVERED, "DELIVRD", campaign_id=cid, chunk=0, number=NUMBERS[4]),
        named(cid, 1, NUMBERS[2], f"{tag}1"),  # wrong number
        named(cid, 1, NUMBERS[1], f"{tag}2"),  # wrong message id
        named(cid, 7, NUMBERS[1]),  # no such recipient
        Report(Status.EXPIRED, "expired", campaign_id="gone", index=0),
        named(cid, 1, NUMBERS[1], f"{tag}1"),
        report(cid, 2, Status.EXPIRED),  # the last open one: the campaign is done
        report(cid, 2, Status.EXPIRED),
    ]


async def test_a_batch_applies_as_one_report_after_another(
    redis: Redis, settings: Settings
) -> None:
    """apply_batch (a few round trips) and apply (three a report) agree on every outcome,
    and leave the two campaigns alike."""
    one, batch = (
        await sent_campaign(redis, settings, "a"),
        await sent_campaign(redis, settings, "b"),
    )
    tracker = Tracker(redis, Keys(settings.prefix))
    alone = [await tracker.apply("cloudaten", r) for r in mixed_reports(one, "a")]
    together = await tracker.apply_batch("cloudaten", mixed_reports(batch, "b"))
    assert together == alone
    assert alone == [
        Applied.APPLIED, Applied.APPLIED, Applied.STALE, Applied.APPLIED, Applied.UNKNOWN,
        Applied.APPLIED, Applied.WRONG_NUMBER, Applied.WRONG_MESSAGE, Applied.WRONG_RECIPIENT,
        Applied.UNKNOWN, Applied.APPLIED, Applied.APPLIED, Applied.STALE,
    ]  # fmt: skip
    client = Client(settings=settings, redis=redis)
    st_one, st_batch = await client.status(one), await client.status(batch)
    assert st_batch.done and st_batch.state == "done"
    assert (st_batch.counts, st_batch.finals) == (st_one.counts, st_one.finals)
    rows_one = [(r.index, r.status, r.raw_status) async for r in client.results(one)]
    rows_batch = [(r.index, r.status, r.raw_status) async for r in client.results(batch)]
    assert rows_batch == rows_one
    # the same reports again: nothing moves (apply_many goes by batches)
    assert await tracker.apply_many("cloudaten", mixed_reports(batch, "b")) == {
        Applied.STALE: 8, Applied.UNKNOWN: 2, Applied.WRONG_NUMBER: 1,
        Applied.WRONG_MESSAGE: 1, Applied.WRONG_RECIPIENT: 1,
    }  # fmt: skip


async def test_a_batch_settles_parked_recipients_as_one_report_would(
    redis: Redis, prefix: str
) -> None:
    """A report for a recipient whose fate was unknown settles it, then applies: in a
    batch as alone (two campaigns under two prefixes, each fully parked)."""
    outcomes, states = [], []
    for n, use_batch in enumerate((False, True)):
        settings = make_settings(f"{prefix}{n}:")
        cid = await park_all(redis, settings)
        tracker = Tracker(redis, Keys(settings.prefix))
        reports = [
            named(cid, 3, PARKED[3]),
            named(cid, 4, PARKED[4]),
            named(cid, 4, PARKED[4]),
            named(cid, 5, PARKED[6]),
        ]
        if use_batch:
            outcomes.append(await tracker.apply_batch("cloudaten", reports))
        else:
            outcomes.append([await tracker.apply("cloudaten", r) for r in reports])
        st_ = await Client(settings=settings, redis=redis).status(cid)
        states.append((st_.counts, st_.finals, st_.parked))
    assert outcomes[0] == outcomes[1] == [
        Applied.APPLIED, Applied.APPLIED, Applied.STALE, Applied.WRONG_NUMBER,
    ]  # fmt: skip
    assert states[0] == states[1]
    assert states[1][2] == {"takeover": 23}  # two settled by their reports
