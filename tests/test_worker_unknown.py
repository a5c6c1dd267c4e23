"""Unknown fate with the worker in-process against the mock: answers lost after the provider
accepted (the connection closes) or that come too late (a timeout), and chunks taken over
from a worker that died. Nothing is resent blindly where the provider can say: Cloud Aten
and YCloud are settled from their list API, CloudSMS from its delivery reports; Smsclouds,
which cannot say, is held, and what is held goes again once, on resume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.fencing import Claim, Fence, Permits
from dispatcher.keys import Keys
from dispatcher.mock import MockSettings, start
from dispatcher.model import Campaign, Status
from dispatcher.queue import Queue
from dispatcher.webhooks.server import start as start_webhooks
from tests.conftest import RunningWorker, all_providers, eventually

LIST_INTERVAL = 0.2
SECRET = "unknown-fate-secret-0123456789"


@pytest.fixture
async def mock() -> AsyncIterator[str]:
    runner, port = await start(MockSettings(port=0, list_interval_s=LIST_INTERVAL))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def call(url: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, url + path, json=body) as r:
        assert r.status == 200, await r.text()
        return orjson.loads(await r.read())


async def stats(mock: str, provider: str) -> dict[str, int]:
    got: dict[str, int] = (await call(mock, "GET", "/_mock/stats"))["providers"][provider]
    return got


def quick(**extra: Any) -> dict[str, Any]:
    """Provider settings for a quick run: list calls as often as the mock allows, windows
    that close soon after the fact (the mock runs on this machine's clock)."""
    return {
        "poll_interval_seconds": LIST_INTERVAL + 0.05,
        "clock_skew_seconds": 0.1,
        "timeout_seconds": 0.5,
        "backoff_seconds": 0.01,
        **extra,
    }


@pytest.mark.parametrize(("provider", "fault"), [("cloudaten", "lost"), ("ycloud", "late")])
async def test_lost_answers_are_settled_from_the_list(
    redis: Redis, prefix: str, mock: str, provider: str, fault: str
) -> None:
    await call(mock, "POST", "/_mock/settings", {"faults": [[fault, 0.1]], "fault_timeout_s": 1})
    settings = all_providers(prefix, mock, **{provider: quick(chunk_size=50)})
    client = Client(settings=settings, redis=redis)
    numbers = [f"+4479110{i:05d}" for i in range(300)]
    cid = (await client.enqueue(Campaign(provider, "hi", numbers))).id
    async with RunningWorker(redis, settings, poll=True):
        st = await client.wait(cid, 60)
    s = await stats(mock, provider)
    assert s["answers_lost"] > 0
    assert st.sent and st.parked == {} and st.counts == {"accepted": 300}, st.as_dict()
    assert (s["accepted"], s["uids_repeated"]) == (300, 0)  # none twice, none failed
    messages = await call(mock, "GET", f"/_mock/messages?provider={provider}")
    sids = {m["uid"]: m["sid"] for m in messages}
    async for r in client.results(cid):
        assert r.message_id == sids[f"{cid}.{r.index}"]  # the provider's own id, found


@pytest.fixture
async def hooks(redis_url: str, prefix: str, mock: str, monkeypatch: pytest.MonkeyPatch
                ) -> AsyncIterator[str]:  # fmt: skip
    """The webhooks process in-process, with the mock pushing CloudSMS reports to it."""
    monkeypatch.setenv("DISPATCHER_WEBHOOK_SECRET", SECRET)
    runner, port = await start_webhooks(all_providers(prefix, mock), redis_url, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{port}/hooks/{SECRET}/cloudsms/dlr"
    await call(mock, "POST", "/_mock/settings", {"cloudsms_callback_url": url, "dlr_delay_ms": 20})
    yield url
    await runner.cleanup()


CLOUDSMS_NUMBERS = [f"+8526123{i:04d}" for i in range(2000)]


async def test_cloudsms_lost_packets_are_settled_by_their_reports(
    redis: Redis, prefix: str, mock: str, hooks: str
) -> None:
    await call(mock, "POST", "/_mock/settings", {"faults": [["lost", 0.2]]})
    # Were reports not to settle them, they would be resent (and duplicated) after 60 s.
    settings = all_providers(prefix, mock, cloudsms=quick(chunk_size=400, unknown_wait_seconds=60))
    client = Client(settings=settings, redis=redis)
    cid = (await client.enqueue(Campaign("cloudsms", "hi", CLOUDSMS_NUMBERS))).id
    async with RunningWorker(redis, settings):
        st = await client.wait(cid, 60)
    s = await stats(mock, "cloudsms")
    assert s["answers_lost"] > 0
    assert st.sent and st.parked == {}, st.as_dict()
    assert (s["accepted"], s["mobiles_repeated"]) == (2000, 0)
    settled = [r async for r in client.results(cid) if r.error and "a report shows" in r.error]
    # Whole packets, by their reports: every lost one, and any whose answer came too late on
    # a loaded machine (parked on its timeout, then settled the same way).
    assert len(settled) % 200 == 0 and len(settled) >= 200 * s["answers_lost"]


async def test_cloudsms_without_reports_resends_after_the_wait(
    redis: Redis, prefix: str, mock: str
) -> None:
    await call(mock, "POST", "/_mock/settings", {"faults": [["lost", 0.2]]})
    settings = all_providers(prefix, mock, cloudsms=quick(chunk_size=400, unknown_wait_seconds=0.5))
    client = Client(settings=settings, redis=redis)
    cid = (await client.enqueue(Campaign("cloudsms", "hi", CLOUDSMS_NUMBERS))).id
    async with RunningWorker(redis, settings):
        st = await client.wait(cid, 60)
    s = await stats(mock, "cloudsms")
    assert st.sent and st.parked == {} and st.counts == {"accepted": 2000}, st.as_dict()
    # Only the numbers of packets whose answer was lost can be sent twice: none other.
    assert s["answers_lost"] > 0 and s["mobiles_repeated"] <= 200 * s["answers_lost"]
    assert s["accepted"] == 2000 + s["mobiles_repeated"]


async def test_smsclouds_holds_what_it_cannot_know(redis: Redis, prefix: str, mock: str) -> None:
    await call(mock, "POST", "/_mock/settings", {"faults": [["lost", 1.0]]})
    settings = all_providers(prefix, mock, smsclouds=quick(chunk_size=50))
    client = Client(settings=settings, redis=redis)
    numbers = [f"+52449898{i:04d}" for i in range(50)]
    cid = (await client.enqueue(Campaign("smsclouds", "hola", numbers))).id
    async with RunningWorker(redis, settings):
        st = await client.wait(cid, 60)
        assert st.state == "paused" and st.pending == 50 and st.parked == {}
        assert st.reason is not None and "connection 50" in st.reason
        assert (await stats(mock, "smsclouds"))["accepted"] == 50  # it did arrive, once
        await call(mock, "POST", "/_mock/settings", {"faults": []})
        assert await client.resume(cid) == 1  # the operator accepts a possible repeat
        st = await client.wait(cid, 60)
    assert st.sent and st.counts == {"accepted": 50}
    assert (await stats(mock, "smsclouds"))["accepted"] == 100
    assert all([r.status == Status.ACCEPTED async for r in client.results(cid)])


async def test_what_a_takeover_parked_is_sent_once_after_a_resume(
    redis: Redis, prefix: str, mock: str
) -> None:
    """A worker died once authorised to send a whole chunk, while the campaign was paused
    (another chunk's unknown fate had held it). Its successor parks the chunk and sets the
    entry aside; the expiry holds what it parked. A resume queues both: the entry set aside
    must not bring back the recipients that went to the unknown-fate machinery, or they are
    sent twice with no park to account for the second."""
    settings = all_providers(prefix, mock, smsclouds={"chunk_size": 10})  # hold, at once
    client = Client(settings=settings, redis=redis)
    numbers = [f"+52449898{i:04d}" for i in range(10)]
    cid = (await client.enqueue(Campaign("smsclouds", "hola", numbers))).id
    k = Keys(settings.prefix)
    dead = Queue(redis, k, "dead", [k.at(0).queue("smsclouds")])
    await dead.setup()
    (lease,) = await dead.read(1, 100)
    fence = Fence(redis, k)
    assert await fence.claim(cid, lease.entry_id, "dead:1") is Claim.OK
    every = {p: p for p in range(10)}
    assert await fence.authorize(cid, lease.entry_id, Permits("dead:1"), every) is Claim.OK
    assert await client.pause(cid)  # … and the worker dies: its lease runs out
    async with RunningWorker(redis, settings):
        # Both set aside: the chunk's entry by its successor, what it parked by the expiry.
        await eventually(lambda: redis.scard(k.held(cid)), lambda n: n == 2, what="two held")
        assert (await client.status(cid)).parked == {}
        assert await client.resume(cid) == 2
        st = await client.wait(cid, 60)
    assert st.sent and st.counts == {"accepted": 10}, st.as_dict()
    s = await stats(mock, "smsclouds")
    assert (s["accepted"], s["mobiles_repeated"]) == (10, 0)


async def test_a_campaign_cancelled_with_recipients_parked_still_ends(
    redis: Redis, prefix: str, mock: str
) -> None:
    """Cancelled while its recipients' fate is unknown: when nothing settles them in time
    they cannot wait for a resume (a cancelled campaign has none), so they are recorded
    cancelled and the campaign ends."""
    await call(mock, "POST", "/_mock/settings", {"faults": [["lost", 1.0]]})
    # Long enough a wait that the cancel comes first: the parks expire in a cancelled campaign.
    settings = all_providers(prefix, mock, smsclouds=quick(chunk_size=50, unknown_wait_seconds=3))
    client = Client(settings=settings, redis=redis)
    numbers = [f"+52449898{i:04d}" for i in range(50)]
    cid = (await client.enqueue(Campaign("smsclouds", "hola", numbers))).id
    async with RunningWorker(redis, settings):
        await eventually(lambda: client.status(cid), lambda st: bool(st.parked), what="parks")
        assert await client.cancel(cid) >= 0
        assert (await client.status(cid)).parked  # cancelled first, still parked
        st = await client.wait(cid, 60)
    assert st.sent and st.state == "done" and st.counts == {"cancelled": 50}, st.as_dict()
    assert await redis.scard(Keys(settings.prefix).held(cid)) == 0
    assert (await stats(mock, "smsclouds"))["accepted"] == 50  # sent once, never again
