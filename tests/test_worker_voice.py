"""Voice verification codes through the worker and the mock: numbers listed several times
are each called, spaced by the per-number rule, and the mock sees no violation."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.model import Campaign, Recipient
from tests.conftest import RunningWorker, all_providers

SPACING = 1.0  # the seed's 30 s, shortened in the mock and the settings alike


async def call(url: str, method: str, path: str, body: Any = None) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, url + path, json=body) as r:
        return orjson.loads(await r.read())


async def test_repeated_numbers_are_called_each_time_never_too_soon(
    redis: Redis, prefix: str, mock: str
) -> None:
    await call(mock, "POST", "/_mock/settings", {"voice_spacing_s": SPACING})
    settings = all_providers(prefix, mock, cloudaten={"per_number_spacing_seconds": SPACING})
    client = Client(settings=settings, redis=redis)
    a, b, c = "+447911000001", "+447911000002", "+447911000003"
    listed = [a, b, a, c, a, b]  # a three times, b twice
    people = [Recipient(n, {"field1": f"{1000 + i}"}) for i, n in enumerate(listed)]
    answer = await client.enqueue(
        Campaign("cloudaten", "<+C+>", people, kind="voice", options={"language": "en"})
    )
    assert (answer.valid, answer.duplicates) == (6, 0)
    async with RunningWorker(redis, settings):
        st = await client.wait(answer.id, 60)
    assert st.sent and st.counts == {"accepted": 6}
    stats = (await call(mock, "GET", "/_mock/stats"))["providers"]["cloudaten_voice"]
    assert (stats["accepted"], stats["spacing_violations"]) == (6, 0)
    calls = await call(mock, "GET", "/_mock/messages?provider=cloudaten_voice")
    codes = sorted(m["verification_code"] for m in calls)
    assert codes == [f"{1000 + i}" for i in range(6)]
    for number in (a, b):
        times = sorted(m["timestamp"] for m in calls if m["mobile"] == number)
        assert len(times) > 1
        assert all(t2 - t1 >= SPACING * 1000 for t1, t2 in itertools.pairwise(times))
