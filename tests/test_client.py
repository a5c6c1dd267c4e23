"""The client's balance check against the mock's balance: a campaign that costs more than
the account has is refused, naming the field, and nothing is enqueued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.account_api import balance, balance_of
from dispatcher.client import Client, NothingToSend
from dispatcher.config import Settings
from dispatcher.embedded import shared_server
from dispatcher.model import Campaign, CampaignError
from dispatcher.runtime import RedisUrlError
from tests.conftest import all_providers, run_dispatcher, subprocess_env
from tests.test_model import BAD, GOOD, bad_id

NUMBERS = [f"+4479110{i:05d}" for i in range(200)]
MX = [f"+52449898{i:04d}" for i in range(200)]


async def set_balance(mock: str, amount: float) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{mock}/_mock/settings", json={"balance": amount}) as r,
    ):
        assert r.status == 200


@pytest.mark.parametrize(("provider", "numbers"), [("cloudaten", NUMBERS), ("ycloud", NUMBERS),
                                                   ("smsclouds", MX)])  # fmt: skip
async def test_refuses_what_the_balance_does_not_cover(
    redis: Redis, prefix: str, mock: str, provider: str, numbers: list[str]
) -> None:
    await set_balance(mock, 1.0)
    settings = all_providers(prefix, mock, **{provider: {"price_per_segment": 0.01}})
    assert await balance(settings, provider, "default") == pytest.approx(1.0)
    client = Client(settings=settings, redis=redis)
    with pytest.raises(CampaignError) as info:
        await client.enqueue(Campaign(provider, "hi", numbers, check_balance=True))
    assert info.value.field == "check_balance"
    assert str(info.value) == "check_balance: the campaign costs 2.0000 and the balance is 1.0000"
    assert await redis.keys(f"{prefix}*") == []
    answer = await client.enqueue(Campaign(provider, "hi", numbers[:50], check_balance=True))
    assert answer.valid == 50


async def test_needs_a_price_and_a_balance_api(redis: Redis, prefix: str, mock: str) -> None:
    client = Client(settings=all_providers(prefix, mock), redis=redis)
    with pytest.raises(CampaignError, match="price_per_segment"):
        await client.enqueue(Campaign("cloudaten", "hi", NUMBERS, check_balance=True))
    priced = all_providers(prefix, mock, cloudsms={"price_per_segment": 0.01})
    with pytest.raises(CampaignError, match="cloudsms has no balance API"):
        await Client(settings=priced, redis=redis).enqueue(
            Campaign("cloudsms", "hi", ["+85261230000"], check_balance=True)
        )


def test_balance_answers_of_the_seeds() -> None:
    seed000: Any = orjson.loads(
        b'{"code": 0, "data": {"currency": "USD", "amount": 10000010190.07658}, "msg": "SUCCESS"}'
    )
    assert balance_of("cloudaten", seed000) == 10000010190.07658
    assert (
        balance_of("ycloud", {"amount": 10000010190.07658, "currency": "USD"}) == 10000010190.07658
    )
    assert (
        balance_of("smsclouds", {"data": {"information": "User Found", "credit": 468062.11}})
        == 468062.11
    )
    assert balance_of("cloudaten", {"code": 0}) is None


@pytest.mark.parametrize("case", BAD, ids=[bad_id(c) for c in BAD])
async def test_enqueue_names_the_field_and_writes_nothing(
    redis: Redis, prefix: str, settings: Settings, case: tuple[str, Any, str]
) -> None:
    key, value, field = case
    client = Client(settings=settings, redis=redis)
    if value is not None:  # in JSON, null is the default
        with pytest.raises(CampaignError) as info:
            await client.enqueue({**GOOD, key: value})  # as an app's decoded JSON
        assert info.value.field == field
    campaign = Campaign(**GOOD)
    setattr(campaign, key, value)  # a field changed after construction
    with pytest.raises(CampaignError) as info:
        await client.enqueue(campaign)
    assert info.value.field == field
    assert await redis.keys(f"{prefix}*") == []


async def test_enqueue_takes_a_generator(redis: Redis, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    numbers = (n for n in NUMBERS[:3])
    answer = await client.enqueue(Campaign("cloudaten", "hi", numbers))  # type: ignore[arg-type]
    assert (answer.valid, answer.recipients) == (3, 3)


async def test_length_and_china_rules_enqueue_nothing(
    redis: Redis, prefix: str, settings: Settings
) -> None:
    client = Client(settings=settings, redis=redis)
    for bad, field in [
        (Campaign("cloudaten", "a" * 100_000, NUMBERS), "text"),
        (Campaign("cloudaten", "hi", NUMBERS, signature="S" * 10_000), "signature"),
        (Campaign("cloudaten", "hi", ["+8613800138000"]), "signature"),
    ]:
        with pytest.raises(CampaignError) as info:
            await client.enqueue(bad)
        assert info.value.field == field
    assert await redis.keys(f"{prefix}*") == []


async def test_allow_empty(redis: Redis, prefix: str, settings: Settings) -> None:
    client = Client(settings=settings, redis=redis)
    junk = Campaign("cloudaten", "hi", ["junk", "+44 12"])
    with pytest.raises(NothingToSend) as info:
        await client.enqueue(junk, allow_empty=False)
    assert info.value.field == "recipients"
    assert info.value.message == "none of the 2 is valid (recipients[0]: not a phone number)"
    assert await redis.keys(f"{prefix}*") == []
    answer = await client.enqueue(junk)  # apps get every recipient's result by default
    assert (answer.valid, answer.invalid) == (0, 2)


def cli_env(tmp: Path, prefix: str, data: Path) -> dict[str, str]:
    """A command's environment: no REDIS_URL, the test's data folder and key prefix."""
    config = tmp / "c.toml"
    config.write_text(
        f'prefix = "{prefix}"\n[providers.cloudaten]\nbase_url = "http://127.0.0.1:9"\n'
        '[providers.cloudaten.accounts.default]\napi_key = "k"\n'
    )
    return subprocess_env(DISPATCHER_CONFIG=str(config), DISPATCHER_DATA_DIR=str(data))


async def test_without_a_url_it_uses_the_running_embedded_server(
    tmp_path: Path, prefix: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "d"
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DISPATCHER_DATA_DIR", str(data))
    with shared_server(data) as url:  # what a running command (a worker) holds
        pid = orjson.loads((data / "server.json").read_bytes())["pid"]
        async with Client(settings=settings) as client:
            answer = await client.enqueue(Campaign("cloudaten", "hi", NUMBERS[:2]))
        assert orjson.loads((data / "server.json").read_bytes())["pid"] == pid
        other = Redis.from_url(url)
        assert await other.zscore(f"{prefix}campaigns", answer.id) is not None
        await other.aclose()  # and the server is still up for its other user


async def test_without_a_url_it_starts_the_embedded_server_as_commands_do(
    tmp_path: Path, prefix: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "d"
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DISPATCHER_DATA_DIR", str(data))
    client = Client(settings=settings)
    answer = await client.enqueue(Campaign("cloudaten", "hi", NUMBERS[:2]))
    # A command run meanwhile finds the same server, and leaves it running for the client.
    done = run_dispatcher(cli_env(tmp_path, prefix, data), "status", answer.id, "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["total"] == 2
    assert (data / "server.json").exists()
    await client.close()  # the last user out stops it; the data stay
    assert not (data / "server.json").exists()
    again = run_dispatcher(cli_env(tmp_path, prefix, data), "status", answer.id, "--json")
    assert orjson.loads(again.stdout)["total"] == 2


def test_a_url_without_a_scheme_is_refused_naming_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "localhost:6379")
    with pytest.raises(RedisUrlError, match=r"^REDIS_URL must start with redis://"):
        Client(settings=settings)
    with pytest.raises(RedisUrlError, match=r"^redis_url must start with redis://"):
        Client("db:6379", settings=settings)
