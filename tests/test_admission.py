"""Fair admission against a real Redis: accounts in turn, campaigns by weight, caps by rate,
paused and scheduled campaigns left waiting, and the otp lane never capped."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from redis.asyncio import Redis

from dispatcher.admission import Admission, cap_for
from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.intake import Builder
from dispatcher.keys import Keys
from dispatcher.model import Campaign
from dispatcher.providers import codec_for
from dispatcher.staging import enqueue as staged_enqueue
from dispatcher.store import Store, as_str
from tests.conftest import make_settings


def numbers(first: int, n: int) -> list[str]:
    return [f"+{447911000000 + first + i}" for i in range(n)]


async def enqueue(redis: Redis, settings: Settings, campaign: Campaign) -> str:
    """Enqueue without the client's own first admissions: the test admits."""
    store = Store(redis, Keys(settings.prefix))
    builder = Builder(campaign, settings, listed=True)
    return (await staged_enqueue(store, settings, builder, campaign.recipients)).id


async def admitted(redis: Redis, settings: Settings, lane: str = "transactional") -> list[str]:
    """Campaign ids of the stream's entries, in order."""
    got: Any = await redis.xrange(Keys(settings.prefix).at(0).queue("cloudaten", lane))
    return [as_str(fields[b"c"]) for _id, fields in got]


async def test_accounts_take_turns(redis: Redis, settings: Settings) -> None:
    big = await enqueue(redis, settings, Campaign("cloudaten", "a", numbers(0, 100)))
    small = await enqueue(redis, settings, Campaign("cloudaten", "b", numbers(0, 30),
                                                    account="wrong"))  # fmt: skip
    assert await admitted(redis, settings) == []  # nothing goes until admitted
    admission = Admission(redis, settings, ["cloudaten"])
    assert await admission.admit(8) == 8
    order = await admitted(redis, settings)
    # The second account is served as soon as it is there, in turn with the first, and the
    # first goes on alone once the second has nothing left.
    assert order[:6] in ([big, small] * 3, [small, big] * 3)
    assert order[6:] == [big, big]


async def test_campaigns_of_an_account_share_it_by_weight(redis: Redis, settings: Settings) -> None:
    light = await enqueue(redis, settings, Campaign("cloudaten", "1", numbers(0, 200)))
    heavy = await enqueue(redis, settings, Campaign("cloudaten", "2", numbers(0, 200), weight=2))
    assert await Admission(redis, settings, ["cloudaten"]).admit(12) == 12
    counts = Counter(await admitted(redis, settings))
    assert counts == {heavy: 8, light: 4}
    status = await Client(settings=settings, redis=redis).status(heavy)
    assert status.share == 2 / 3


async def test_a_new_campaign_starts_at_the_accounts_clock(
    redis: Redis, settings: Settings
) -> None:
    old = await enqueue(redis, settings, Campaign("cloudaten", "old", numbers(0, 200)))
    admission = Admission(redis, settings, ["cloudaten"])
    await admission.admit(6)
    new = await enqueue(redis, settings, Campaign("cloudaten", "new", numbers(0, 200)))
    await admission.admit(6)
    # The newcomer goes at once, but does not get six in a row for the six the other had
    # before it came: from then on they take turns.
    assert (await admitted(redis, settings))[6:] == [new, old] * 3


async def test_an_accounts_rate_caps_what_is_admitted(redis: Redis, prefix: str) -> None:
    settings = make_settings(prefix, rate_per_second=50)  # chunks of 10: 0.2 s each
    cap = cap_for(settings.provider("cloudaten"), codec_for("cloudaten"))
    assert cap == 6  # a second of the rate, plus one
    cid = await enqueue(redis, settings, Campaign("cloudaten", "x", numbers(0, 200)))
    admission = Admission(redis, settings, ["cloudaten"])
    assert await admission.admit(20) == cap
    assert await admission.admit(20) == 0  # busy: nothing more for this account
    other = await enqueue(redis, settings, Campaign("cloudaten", "y", numbers(0, 50),
                                                    account="wrong"))  # fmt: skip
    assert await admission.admit(20) == 5  # another account's rate is free: served at once
    # A chunk done frees its place.
    inflight = Keys(prefix).at(0).inflight("cloudaten", "default")
    await redis.zrem(inflight, f"{cid}|0")
    assert await admission.admit(20) == 1
    assert Counter(await admitted(redis, settings)) == {cid: 7, other: 5}


async def test_otp_is_never_capped(redis: Redis, prefix: str) -> None:
    settings = make_settings(prefix, rate_per_second=5, chunk_size=10)  # cap 2
    await enqueue(redis, settings, Campaign("cloudaten", "bulk", numbers(0, 100)))
    otp = await enqueue(redis, settings, Campaign("cloudaten", "1234", numbers(0, 40),
                                                  lane="otp"))  # fmt: skip
    admission = Admission(redis, settings, ["cloudaten"])
    assert await admission.admit(20) == 4
    assert await admitted(redis, settings, "otp") == [otp] * 4  # first, and all of it
    # The account's rate is busy with them: the bulk waits until they are done.
    await redis.delete(Keys(prefix).at(0).inflight("cloudaten", "default"))
    assert await admission.admit(20) == 2


async def test_paused_and_scheduled_campaigns_wait(redis: Redis, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    later = await enqueue(redis, settings, Campaign("cloudaten", "later", numbers(0, 20),
                                                    start_at=time.time() + 3600))  # fmt: skip
    paused = await enqueue(redis, settings, Campaign("cloudaten", "p", numbers(0, 20)))
    await client.pause(paused)
    admission = Admission(redis, settings, ["cloudaten"])
    assert await admission.admit(10) == 0
    assert (await client.status(later)).state == "scheduled"
    await client.resume(paused)
    assert await admission.admit(10) == 2
    assert await admitted(redis, settings) == [paused, paused]


async def test_cancel_sends_the_waiting_chunks_to_be_recorded(
    redis: Redis, settings: Settings
) -> None:
    cid = await enqueue(redis, settings, Campaign("cloudaten", "c", numbers(0, 50)))
    assert await Admission(redis, settings, ["cloudaten"]).admit(2) == 2
    assert await Client(settings=settings, redis=redis).cancel(cid) == 3
    assert await admitted(redis, settings) == [cid] * 5  # every chunk, once
    assert await Admission(redis, settings, ["cloudaten"]).admit(10) == 0


async def test_marks_of_vanished_campaigns_free_the_account(redis: Redis, prefix: str) -> None:
    settings = make_settings(prefix, rate_per_second=5, chunk_size=10)  # cap 2
    inflight = Keys(prefix).at(0).inflight("cloudaten", "default")
    stale = time.time() * 1000 - 3_600_000
    await redis.zadd(inflight, {"gone1|0": stale, "gone2|0": stale})  # lost with Redis's data
    await enqueue(redis, settings, Campaign("cloudaten", "x", numbers(0, 50)))
    assert await Admission(redis, settings, ["cloudaten"]).admit(10) == 2
    assert await redis.zcard(inflight) == 2


async def test_an_account_of_its_own_rate_gets_its_own_cap(redis: Redis, prefix: str) -> None:
    accounts = {"default": {"api_key": "k"}, "slow": {"api_key": "k", "rate_per_second": 5}}
    settings = make_settings(prefix, chunk_size=10, accounts=accounts)
    fast = await enqueue(redis, settings, Campaign("cloudaten", "f", numbers(0, 100)))
    slow = await enqueue(redis, settings, Campaign("cloudaten", "s", numbers(0, 100),
                                                   account="slow"))  # fmt: skip
    assert settings.provider("cloudaten").rate_for("slow") == 5
    assert await Admission(redis, settings, ["cloudaten"]).admit(20) == 12
    assert Counter(await admitted(redis, settings)) == {fast: 10, slow: 2}
