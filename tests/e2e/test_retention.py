"""Retention with real processes: campaigns sent through the mock, finished by its pushed
delivery reports, archived by the worker's sweep (and by the ``archive`` command), read
back by ``python -m dispatcher results`` exactly as before; ``purge`` deletes one."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import stop
from dispatcher.retention import DAY_MS
from dispatcher.store import now_ms
from tests.conftest import eventually
from tests.e2e.conftest import System
from tests.test_retention import mentions

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster


def enqueue(system: System, numbers: Path, n: int, first: int) -> str:
    numbers.write_text("".join(f"+{first + i}\n" for i in range(n)))
    return system.cli(
        "enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", str(numbers),
        "--retention-days", "1",
    ).stdout.strip()  # fmt: skip


def outputs(system: System, cid: str) -> tuple[str, str, dict[str, object]]:
    status = orjson.loads(system.cli("status", cid, "--json").stdout)
    return system.cli("results", cid).stdout, system.cli("results", cid, "--csv").stdout, status


async def test_archived_by_the_worker_read_back_the_same(
    system: System, redis: Redis, tmp_path: Path, prefix: str
) -> None:
    system.write_config(webhooks={"public_url": system.webhooks()})
    archive_dir = tmp_path / "archive"
    config = system.config.read_text().replace(
        "[worker]\n", "[worker]\nretention_sweep_seconds = 0.2\n"
    )
    system.config.write_text(f'archive_dir = "{archive_dir}"\n' + config)
    await system.mock_settings(dlr_delay_ms=50)
    swept = enqueue(system, tmp_path / "a.txt", 300, 447911000000)
    by_hand = enqueue(system, tmp_path / "b.txt", 40, 447912000000)
    worker = system.worker()
    client = Client(settings=load_settings(system.config), redis=redis)
    for cid in (swept, by_hand):
        st = await client.wait(cid, 120, final=True)
        assert st.done and st.finals.get("delivered", 0) > 0, st.as_dict()
    before = {cid: outputs(system, cid) for cid in (swept, by_hand)}
    assert before[swept][0].count("\n") == 300 and before[swept][2]["archived_at"] is None

    # A day passes for one: the worker's sweep archives it.
    assert (await client.status(swept)).archived_at is None  # one day of retention
    await redis.hset(system.keys.meta(swept), "done_at", now_ms() - DAY_MS - 1)
    await eventually(lambda: client.status(swept), lambda st: st.archived_at is not None,
                     what="the worker's sweep")  # fmt: skip
    # The other by the command, whatever its retention.
    said = system.cli("archive", by_hand).stdout
    assert said.startswith(f"archived {by_hand} to {archive_dir}")
    for cid in (swept, by_hand):
        assert await mentions(redis, prefix, cid) == []  # no key, no index entry
        results, csv, status = outputs(system, cid)
        assert (results, csv) == before[cid][:2]
        assert isinstance(status["archived_at"], int)
        assert status == {**before[cid][2], "archived_at": status["archived_at"]}
    assert "already archived" in system.cli("archive", by_hand).stdout

    # Purged: nothing left, not even the file.
    assert system.cli("purge", by_hand).stdout.strip() == f"purged {by_hand} and its archive file"
    gone = system.cli("status", by_hand, check=False)
    assert gone.returncode == 1 and f"no campaign '{by_hand}'" in gone.stderr
    assert not any(p.name.startswith(by_hand) for p in archive_dir.rglob("*"))

    # With no worker sweeping, the command archives whatever is due, and only that.
    stop(worker)
    (tmp_path / "bad.txt").write_text("12\n")
    empty = system.cli(
        "enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients",
        str(tmp_path / "bad.txt"), "--retention-days", "0", "--allow-empty",
    ).stdout.strip()  # fmt: skip
    due = system.cli("archive")
    assert due.stdout == f"archived {empty}\n", due.stderr
    assert "1 campaign(s) archived of 1 looked at" in due.stderr
