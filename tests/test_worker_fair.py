"""Fair share with the worker in-process against the mock: a small campaign is not stuck
behind a big one, whether it is on another account or on the same one."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.model import Campaign
from tests.conftest import MOCK_KEY, RunningWorker, make_settings


def numbers(first: int, n: int) -> list[str]:
    return [f"+{447911000000 + first + i}" for i in range(n)]


@pytest.mark.parametrize("account", ["b", "a"])
async def test_a_small_campaign_is_not_stuck_behind_a_big_one(
    redis: Redis, prefix: str, mock: str, account: str
) -> None:
    accounts: dict[str, Any] = {"a": {"api_key": MOCK_KEY}, "b": {"api_key": MOCK_KEY}}
    settings = make_settings(
        prefix, f"{mock}/cloudaten", rate_per_second=50, chunk_size=100, accounts=accounts
    )
    client = Client(settings=settings, redis=redis)
    big = (await client.enqueue(Campaign("cloudaten", "big", numbers(0, 2000), account="a"))).id
    async with RunningWorker(redis, settings):
        while (await client.status(big)).recorded == 0:
            await client.wait(big, 0.1)  # the big one is under way …
        small = await client.enqueue(
            Campaign("cloudaten", "small", numbers(5000, 100), account=account)
        )
        st = await client.wait(small.id, 60)  # … and the small one goes through beside it
        assert st.sent and st.counts == {"accepted": 100}
        assert (await client.status(big)).pending >= 1000
        await client.cancel(big)
