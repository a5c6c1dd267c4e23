"""Streaming enqueue against a real Redis: staged keys live with a TTL and stay invisible
until the one commit, idempotency keys of staging, published and crashed enqueues, failures
midway that leave nothing behind, and the same counts and results as the old whole-list
validation (phonenumbers for every number, a set for duplicates)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.admission import Admission
from dispatcher.client import CampaignNotFound, Client, EnqueueInProgress
from dispatcher.config import Settings
from dispatcher.keys import Keys
from dispatcher.model import Campaign, CampaignError, Enqueued, Recipient, Status
from dispatcher.numbers import normalise
from dispatcher.staging import STEP, StagingLost
from dispatcher.store import as_str

NUMBERS = [f"+4479110{i:05d}" for i in range(40)]


def client_for(redis: Redis, settings: Settings, **top: Any) -> Client:
    return Client(settings=dataclasses.replace(settings, **top), redis=redis)


async def campaign_keys(redis: Redis, settings: Settings, cid: str) -> dict[str, int]:
    """Every key of the campaign, with its TTL (-1: none)."""
    found: dict[str, int] = {}
    async for raw in redis.scan_iter(match=f"{settings.prefix}{{{cid}}}*", count=1000):
        key = as_str(raw)
        found[key] = int(await redis.ttl(key))
    return found


async def visible(client: Client, cid: str) -> bool:
    try:
        await client.status(cid)
    except CampaignNotFound:
        listed = [st.id for st in (await client.campaigns(100)).items]
        assert cid not in listed
        return False
    return True


async def test_staged_keys_have_a_ttl_and_publishing_makes_it_visible(
    redis: Redis, settings: Settings
) -> None:
    client = client_for(redis, settings, staging_ttl_seconds=30)
    listed = [*NUMBERS, "junk", NUMBERS[0]]
    async with client.staging(Campaign("cloudaten", "hi", [])) as staging:
        await staging.add(listed)
        cid = staging.cid
        keys = await campaign_keys(redis, settings, cid)
        k = Keys(settings.prefix)
        assert {k.meta(cid), k.chunks(cid), k.counts(cid), k.finals(cid)} <= set(keys)
        assert any(":results:" in key for key in keys) and any(":state:" in key for key in keys)
        assert all(0 < ttl <= 30 for ttl in keys.values()), keys
        assert as_str(await redis.hget(k.meta(cid), "state")) == "staging"
        assert not await visible(client, cid)
        with pytest.raises(CampaignNotFound):
            await client.state(cid)
        with pytest.raises(CampaignNotFound):
            await client.pause(cid)
        answer = await staging.publish()
    assert (answer.id, answer.valid, answer.invalid, answer.duplicates) == (cid, 40, 1, 1)
    assert await visible(client, cid)
    assert set((await campaign_keys(redis, settings, cid)).values()) == {-1}  # persisted
    st = await client.status(cid)
    assert (st.state, st.total, st.counts) == ("queued", 41, {"invalid": 1})
    assert await client.state(cid) == "queued"


async def test_a_crash_while_staging_leaves_nothing_visible_and_every_key_expiring(
    redis: Redis, settings: Settings
) -> None:
    client = client_for(redis, settings)
    c = Campaign("cloudaten", "hi", [], idempotency_key="crash-1")
    staging = client.staging(c)
    await staging.open()  # no ``async with``: nothing cleans up, as after a SIGKILL
    await staging.add([*NUMBERS, "junk"])
    keys = await campaign_keys(redis, settings, staging.cid)
    assert len(keys) >= 5 and all(ttl > 0 for ttl in keys.values())
    assert not await visible(client, staging.cid)
    # Its meta expires; the idempotency key it held is then taken over.
    await redis.delete(*keys)
    again = await client.enqueue(c, recipients=iter(NUMBERS))
    assert again.id != staging.cid and not again.existing
    k = Keys(settings.prefix)
    assert as_str(await redis.get(k.idempotency("crash-1"))) == again.id


async def test_an_idempotency_key_whose_enqueue_is_staging_is_refused(
    redis: Redis, settings: Settings
) -> None:
    client = client_for(redis, settings)
    c = Campaign("cloudaten", "hi", [], idempotency_key="order-7")
    async with client.staging(c) as first:
        await first.add(NUMBERS[:5])
        with pytest.raises(EnqueueInProgress) as info:
            await client.enqueue(c, recipients=iter(NUMBERS))
        assert info.value.field == "idempotency_key"
        assert "in progress" in info.value.message
        published = await first.publish()

    class Untouched:
        def __iter__(self) -> Iterator[str]:
            raise AssertionError("a repeat reads no recipient")

    repeat = await client.enqueue(c, recipients=Untouched())
    assert (repeat.id, repeat.existing, repeat.valid) == (published.id, True, 5)
    assert await redis.zcard(Keys(settings.prefix).campaigns) == 1


async def test_racing_streams_with_one_key_publish_one_campaign(
    redis: Redis, settings: Settings
) -> None:
    client = client_for(redis, settings)
    c = Campaign("cloudaten", "hi", [], idempotency_key="race")
    got = await asyncio.gather(
        *(client.enqueue(c, recipients=iter(NUMBERS)) for _ in range(6)), return_exceptions=True
    )
    answers = [a for a in got if isinstance(a, Enqueued)]
    assert all(isinstance(e, EnqueueInProgress) for e in got if not isinstance(e, Enqueued))
    assert len({a.id for a in answers}) == 1 and sum(not a.existing for a in answers) == 1
    assert await redis.zcard(Keys(settings.prefix).campaigns) == 1
    leftovers = [as_str(key) async for key in redis.scan_iter(match=f"{settings.prefix}{{*}}:meta")]
    assert len(leftovers) == 1  # the losers deleted what they had staged


@pytest.mark.parametrize("how", ["raises", "bad item", "nothing valid", "refused"])
async def test_a_failure_midway_leaves_nothing(redis: Redis, settings: Settings, how: str) -> None:
    client = client_for(redis, settings)
    k = Keys(settings.prefix)
    big = [f"+4479{i:08d}" for i in range(STEP + 500)]  # more than one step is staged

    def source() -> Iterator[Any]:
        yield from big
        if how == "raises":
            raise OSError("the file went away")
        if how == "bad item":
            yield {"number": 5}
        yield "junk"

    c = Campaign("cloudaten", "hi", [], idempotency_key=f"fail-{how}")
    kwargs: dict[str, Any] = {}
    if how == "nothing valid":
        source = lambda: iter(["junk", "+44 12"])  # noqa: E731
        kwargs["allow_empty"] = False
    if how == "refused":  # every number needs a signature: refused at the end
        source = lambda: iter([f"+86138001{i:05d}" for i in range(STEP + 10)])  # noqa: E731
    with pytest.raises((OSError, CampaignError)) as info:
        await client.enqueue(c, recipients=source(), **kwargs)
    if how == "bad item":
        assert isinstance(info.value, CampaignError)
        assert info.value.field == f"recipients[{len(big)}].number"
    if how == "refused":
        assert isinstance(info.value, CampaignError) and info.value.field == "signature"
    left = [as_str(key) async for key in redis.scan_iter(match=f"{settings.prefix}*")]
    for key in left:  # nothing of the campaign is left; what is (the stream) lives on
        assert "{" not in key and ":idem:" not in key, key
    assert await redis.zcard(k.campaigns) == 0
    assert await redis.get(k.idempotency(f"fail-{how}")) is None


async def test_publishing_after_the_staged_keys_expired_is_refused(
    redis: Redis, settings: Settings
) -> None:
    client = client_for(redis, settings)
    with pytest.raises(StagingLost):
        async with client.staging(Campaign("cloudaten", "hi", [])) as staging:
            await staging.add(NUMBERS)
            await redis.delete(Keys(settings.prefix).meta(staging.cid))  # as if it expired
            await staging.publish()
    assert not await visible(client, staging.cid)
    assert await campaign_keys(redis, settings, staging.cid) == {}


async def test_admission_waits_for_a_staging_campaign_and_drops_a_crashed_one(
    redis: Redis, settings: Settings
) -> None:
    """Pointers are written before the commit: a staging campaign in the ready set stays
    there, admitted nothing; once its meta is gone (a crash), admission drops it."""
    client = client_for(redis, settings)
    k = Keys(settings.prefix)
    staging = client.staging(Campaign("cloudaten", "hi", []))
    await staging.open()
    await staging.add(NUMBERS)
    ready = k.at(0).ready_campaigns("cloudaten", "transactional", "default")
    await redis.zadd(ready, {staging.cid: 0})
    await redis.zadd(k.at(0).ready("cloudaten", "transactional"), {"default": 0})
    admission = Admission(redis, settings, ["cloudaten"])
    assert await admission.admit(10) == 0
    assert await redis.zscore(ready, staging.cid) is not None
    await redis.delete(k.meta(staging.cid))
    assert await admission.admit(10) == 0
    assert await redis.zscore(ready, staging.cid) is None
    await staging.abort()


def old_way(listed: list[str], region: str | None) -> tuple[list[tuple[int, str]], list[Any]]:
    """The old intake: normalise every number, a set of those seen, first one wins."""
    seen: set[str] = set()
    valid: list[tuple[int, str]] = []
    invalid: list[tuple[int, str, str | None]] = []
    for i, raw in enumerate(listed):
        e164, why = normalise(raw, region)
        if e164 is None:
            invalid.append((i, raw, why))
        elif e164 not in seen:
            seen.add(e164)
            valid.append((i, e164))
    return valid, invalid


def mixed_list(n: int, seed: int = 3) -> list[str]:
    """E.164 and other spellings of the same numbers, duplicates across steps, invalid
    numbers of every kind, national numbers (valid only with a region)."""
    rnd = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        roll = rnd.random()
        uk = f"+447{rnd.choice('13458')}{rnd.randrange(10**4):04d}{rnd.randrange(10**4):04d}"
        if roll < 0.05:
            out.append(rnd.choice(["junk", "+44 12", "+999123", "+4479", "", "+390"]))
        elif roll < 0.10 and out:
            out.append(rnd.choice(out))
        elif roll < 0.15:
            out.append(f"{uk[:3]} {uk[3:7]} {uk[7:]}")  # the same number, spaced
        elif roll < 0.20:
            out.append("0" + uk[3:])  # national: needs the region
        elif roll < 0.25:
            out.append(f"+390{rnd.randrange(10**8, 10**9)}")  # Italian, a leading zero
        elif roll < 0.30:
            out.append(f"+1201{rnd.randrange(2, 10)}{rnd.randrange(10**6):06d}")
        else:
            out.append(uk)
    return out


@pytest.mark.parametrize("region", [None, "GB"])
async def test_counts_and_results_are_the_old_paths(
    redis: Redis, settings: Settings, region: str | None
) -> None:
    client = client_for(redis, settings)
    listed = mixed_list(STEP + 7000)
    valid, invalid = old_way(listed, region)
    answer = await client.enqueue(
        Campaign("cloudaten", "hi", [], default_region=region), recipients=iter(listed)
    )
    assert (answer.valid, answer.invalid) == (len(valid), len(invalid))
    assert answer.duplicates == len(listed) - len(valid) - len(invalid)
    got = [r async for r in client.results(answer.id)]
    assert [(r.index, r.number) for r in got if r.status == Status.PENDING] == valid
    assert [(r.index, r.number, r.error) for r in got if r.status == Status.INVALID] == invalid


async def test_a_list_of_every_shape_and_a_kind_without_duplicates(
    redis: Redis, settings: Settings
) -> None:
    client = client_for(redis, settings)
    mixed: list[Any] = [NUMBERS[0], Recipient(NUMBERS[1], {"name": "Ann"}),
                        {"number": NUMBERS[2], "name": "Bo"}, NUMBERS[0]]  # fmt: skip
    answer = await client.enqueue({"provider": "cloudaten", "text": "Hi <+B+>"}, recipients=mixed)
    assert (answer.valid, answer.duplicates) == (3, 1)
    voice = Campaign("cloudaten", "1234", [], kind="voice", options={"language": "en"})
    calls = await client.enqueue(voice, recipients=iter([NUMBERS[0]] * 3))
    assert (calls.valid, calls.duplicates) == (3, 0)  # each listing is a call
    with pytest.raises(CampaignError) as info:
        await client.enqueue(Campaign("cloudaten", "hi", NUMBERS), recipients=NUMBERS)
    assert info.value.field == "recipients"
