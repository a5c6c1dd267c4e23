"""YCloud, CloudSMS and Smsclouds end to end with real processes: 5,000 personalised
recipients each, through the CLI, a worker process and the mock process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.model import Status
from dispatcher.render import render
from tests.e2e.conftest import System

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster

N = 5000
# Three names: personalised, and still many numbers per identical text, so CloudSMS can
# fill its packets (it groups numbers whose rendered text is the same).
TEXT = "Hola <+B+>, tu cita es el <+C+>"
NAMES = ["Ana", "Bea", "Cruz"]
FIRST = {"ycloud": 8613900000000, "cloudsms": 85261230000, "smsclouds": 524498980000}
OPTIONS = {"cloudsms": {"chunk_size": 1000}, "smsclouds": {"chunk_size": 1500}}


async def mock_get(system: System, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(system.mock_url + path) as r:
        return orjson.loads(await r.read())


@pytest.mark.parametrize("provider", ["ycloud", "cloudsms", "smsclouds"])
async def test_5000_personalised_recipients(
    system: System, redis: Redis, tmp_path: Path, provider: str
) -> None:
    system.write_config(**OPTIONS)
    numbers = [f"+{FIRST[provider] + i}" for i in range(N)]
    people = tmp_path / "people.csv"
    people.write_text(
        "number,name,field1\n"
        + "".join(f"{n},{NAMES[i % 3]},lunes\n" for i, n in enumerate(numbers))
    )
    done = system.cli(
        "enqueue", "--provider", provider, "--text", TEXT, "--recipients", str(people), "--json"
    )
    cid = orjson.loads(done.stdout)["id"]
    system.worker()
    client = Client(settings=load_settings(system.config), redis=redis)
    st = await client.wait(cid, 180)
    assert st.sent and st.counts == {"accepted": N}
    results = [r async for r in client.results(cid)]
    assert [r.index for r in results] == list(range(N))  # every recipient, exactly once
    assert all(r.status == Status.ACCEPTED for r in results)

    stats = (await mock_get(system, "/_mock/stats"))["providers"][provider]
    assert (stats["accepted"], stats["mobiles_repeated"], stats["uids_repeated"]) == (N, 0, 0)
    if provider == "cloudsms":
        assert stats["largest_batch"] == 200
    if provider == "smsclouds":
        assert stats["largest_batch"] == OPTIONS["smsclouds"]["chunk_size"]
    # Every handset got its own rendering (Smsclouds filled the tokens itself).
    messages = await mock_get(system, f"/_mock/messages?provider={provider}")
    got = {m["mobile"][-6:]: m["text"] for m in messages}
    want = {
        n[-6:]: render(TEXT, {"name": NAMES[i % 3], "field1": "lunes"})
        for i, n in enumerate(numbers)
    }
    assert got == want
