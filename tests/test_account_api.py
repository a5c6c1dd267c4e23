"""Account queries ask the codec for its Balance or Cancelling capability: a provider without
it is told so (or left alone) before anything is sent. The queries against the mock:
test_client.py (balance) and test_worker_kinds.py (cancelling)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from dispatcher.account_api import QueryError, balance, balance_of, cancel_batches
from dispatcher.keys import Keys
from tests.conftest import all_providers


def test_balance_of_a_provider_without_a_balance_api() -> None:
    assert balance_of("cloudsms", {"data": {"amount": 5}}) is None
    assert balance_of("nope", {"amount": 5}) is None
    assert balance_of("ycloud", {"amount": 5}) == 5.0


@pytest.mark.parametrize("provider", ["cloudsms", "nope"])
async def test_balance_refused_without_asking(provider: str) -> None:
    # The mock URL is a closed port: asking it would fail otherwise.
    settings = all_providers("t:", "http://127.0.0.1:9")
    with pytest.raises(QueryError, match=f"^{provider} has no balance API$"):
        await balance(settings, provider, "default")


@pytest.mark.parametrize(("provider", "kind"), [("smsclouds", "sms"), ("cloudaten", "voice"),
                                                ("", "")])  # fmt: skip
async def test_campaigns_whose_codec_cannot_cancel_are_left_alone(
    redis: Redis, prefix: str, provider: str, kind: str
) -> None:
    settings = all_providers(prefix, "http://127.0.0.1:9")
    if provider:
        await redis.hset(
            Keys(prefix).meta("c0ffee"),
            mapping={"provider": provider, "kind": kind, "account": "default"},
        )
    assert await cancel_batches(settings, redis, "c0ffee") == {}
    await redis.delete(Keys(prefix).meta("c0ffee"))
