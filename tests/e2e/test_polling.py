"""Final statuses with no push at all, by polling, with several worker processes: Smsclouds
(which pushes no reports) and YCloud with no callback URL. The mock refuses, and counts,
list calls that come sooner than its one-per-interval limit: there must be none."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.providers.smsclouds_status import STATUSES as SMSCLOUDS
from dispatcher.providers.ycloud import STATUSES as YCLOUD
from tests.e2e.conftest import System

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster

INTERVAL = 0.5  # the mock's list limit per key
POLL = {"poll_interval_seconds": INTERVAL + 0.2, "poll_after_seconds": 0}


async def test_polling_alone_with_three_workers(
    system: System, redis: Redis, tmp_path: Path
) -> None:
    system.write_config(smsclouds={**POLL, "chunk_size": 1000}, ycloud=POLL)
    await system.mock_settings(list_interval_s=INTERVAL, dlr_delay_ms=0)
    mx = tmp_path / "mx.txt"
    mx.write_text("".join(f"+{524498000000 + i}\n" for i in range(5000)))
    cn = tmp_path / "cn.txt"
    cn.write_text("".join(f"+{8613900000000 + i}\n" for i in range(2000)))
    sms = system.cli(
        "enqueue", "--provider", "smsclouds", "--text", "hola", "--recipients", str(mx)
    )
    ycl = system.cli("enqueue", "--provider", "ycloud", "--text", "hi", "--recipients", str(cn))
    system.worker("--processes", "3")
    client = Client(settings=load_settings(system.config), redis=redis)
    for cid, provider, table, prefix in (
        (sms.stdout.strip(), "smsclouds", SMSCLOUDS, "+52"),
        (ycl.stdout.strip(), "ycloud", YCLOUD, ""),
    ):
        st = await client.wait(cid, 180, final=True)
        assert st.done and sum(st.finals.values()) == st.total, st.as_dict()
        decided = {
            prefix + str(m["mobile"]): table[str(m["final_status"])].value
            for m in await system.mock_get(f"/_mock/messages?provider={provider}")
        }
        got = {r.number: r.status async for r in client.results(cid)}
        assert got == decided
        stats = (await system.mock_get("/_mock/stats"))["providers"][provider]
        assert stats["list_refused"] == 0 and stats["list_calls"] >= 1
        assert stats["pushes"] == 0  # nothing was pushed: polling alone did it
