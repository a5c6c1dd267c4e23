"""Smsclouds SMPP MT end to end: 10,000 recipients through the mock SMSC (a real process)
with two worker processes under a global rate, then 1,000 through an SMSC none of our code
wrote (the npm ``smpp`` package's server, tests/e2e/smpp_peer). Every recipient gets one
result and a final status from its delivery receipt; neither SMSC counts a duplicate or a
window overflow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import start_mock, stop
from dispatcher.model import Campaign
from tests.conftest import subprocess_env
from tests.e2e.conftest import System, toml
from tests.e2e.smpp_peer import install_once, running_peer

SYSTEM_ID, PASSWORD, SENDER = "smsclouds", "smpppass", "MASMSJ"
RATE = 1000  # the account's, across both worker processes
WINDOW = 10
WAIT_S = 240.0


@pytest.fixture(scope="session")
def peer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_once(tmp_path_factory)


class SmppSystem(System):
    smpp_port = 0

    def add_smpp_account(self, host_port: tuple[str, int], **extra: Any) -> None:
        """An ``smpp`` account of Smsclouds, beside the HTTP ones, at that SMSC."""
        values = {
            "transport": "smpp",
            "smpp_host": host_port[0],
            "smpp_port": host_port[1],
            "system_id": SYSTEM_ID,
            "api_key": PASSWORD,
            "sender_id": SENDER,
            "window": WINDOW,
            "rate_per_second": RATE,
            **extra,
        }
        lines = [
            "[providers.smsclouds.accounts.smpp]",
            *(f"{k} = {toml(v)}" for k, v in values.items()),
        ]
        with self.config.open("a") as fh:
            fh.write("\n".join(lines) + "\n")


@pytest.fixture
def smpp_system(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[SmppSystem]:
    args = ["--latency-ms", "1", "--smpp-port", "0", "--smpp-account", f"{SYSTEM_ID}:{PASSWORD}"]
    mock, mock_url = start_mock(args, subprocess_env())
    s: SmppSystem | None = None
    try:
        assert mock.stdout is not None
        line = mock.stdout.readline()  # the SMSC's ready line follows the HTTP one
        assert line.startswith("mock smpp listening on "), line
        s = SmppSystem(tmp_path, redis_url, prefix, mock_url)
        s.smpp_port = int(line.strip().rsplit(":", 1)[1])
        s.write_config()
        yield s
    finally:
        for w in s.workers if s else []:
            stop(w)
        stop(mock)


async def run_campaign(system: System, redis: Redis, numbers: list[str]) -> tuple[Client, str]:
    """Enqueue one SMPP campaign, run two worker processes until every recipient has a
    final status, and check what the dispatcher recorded."""
    client = Client(settings=load_settings(system.config), redis=redis)
    text = "Hola, su pedido {A-7} llegó: 10 € ^ | ~"  # GSM 03.38 with extension characters
    cid = (await client.enqueue(Campaign("smsclouds", text, numbers, account="smpp"))).id
    system.worker()
    system.worker()
    st = await client.wait(cid, WAIT_S, final=True)
    assert st.done, st
    assert st.counts == {"accepted": len(numbers)} and sum(st.finals.values()) == len(numbers)
    assert set(st.finals) <= {"delivered", "undelivered", "expired", "rejected"}
    results = [r async for r in client.results(cid)]
    assert sorted(r.index for r in results) == list(range(len(numbers)))  # one each
    assert all(r.message_id for r in results)
    return client, cid


async def test_ten_thousand_through_the_mock_smsc_with_two_workers(
    smpp_system: SmppSystem, redis: Redis
) -> None:
    # The SMSC refuses what goes faster than the account's rate: two processes sharing
    # the global rate must not make it say "too fast".
    await smpp_system.mock_settings(
        smpp_rate_per_second=RATE, smpp_burst=RATE // 10, smpp_window=WINDOW
    )
    smpp_system.add_smpp_account(("127.0.0.1", smpp_system.smpp_port))
    numbers = [f"+5255{i:08d}" for i in range(10_000)]
    client, cid = await run_campaign(smpp_system, redis, numbers)
    stats = (await smpp_system.mock_get("/_mock/stats"))["smsc"]
    assert stats["messages"] == 10_000 and stats["duplicates"] == 0
    assert stats["window_overflows"] == 0 and stats["window_max"] <= WINDOW
    assert stats["throttled"] == 0  # the global rate held across both processes
    assert stats["binds"] == 2  # one session per worker process
    assert stats["receipts_refused"] == 0
    sent = {m["message_ids"][0]: m["mobile"] for m in await smpp_system.mock_get(
        "/_mock/messages?provider=smpp")}  # fmt: skip
    got = {r.message_id: r.number async for r in client.results(cid)}
    assert got == sent


async def test_one_thousand_through_an_independent_smsc(
    tmp_path: Path, redis_url: str, prefix: str, redis: Redis, peer_dir: Path
) -> None:
    async with running_peer(peer_dir, SYSTEM_ID, PASSWORD, latency_ms=2, window=WINDOW) as peer:
        mock, mock_url = start_mock([], subprocess_env())  # the HTTP providers' config needs one
        system = SmppSystem(tmp_path, redis_url, prefix, mock_url)
        try:
            system.write_config()
            system.add_smpp_account(("127.0.0.1", peer.smpp_port))
            numbers = [f"+5255{i:08d}" for i in range(1000)]
            client, cid = await run_campaign(system, redis, numbers)
            stats = await peer.stats()
        finally:
            for w in system.workers:
                stop(w)
            stop(mock)
    assert stats["messages"] == 1000 and stats["duplicates"] == 0
    assert stats["window_overflows"] == 0 and stats["window_max"] <= WINDOW
    assert stats["receipts_acked"] == 1000 and stats["receipts_nacked"] == 0
    text = "Hola, su pedido {A-7} llegó: 10 € ^ | ~"
    assert all(texts == [text] for texts in stats["texts"].values())
    st = await client.status(cid)
    # node-smpp's peer says UNDELIV for numbers ending in 7, DELIVRD for the rest.
    assert st.finals == {"delivered": 900, "undelivered": 100}
