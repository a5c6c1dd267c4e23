"""Campaign events in the logs of real processes: two worker processes under a supervisor
(``$DISPATCHER_LOG_FORMAT=json``) and the CLI commands that enqueue, pause, resume and
cancel (``--log-level INFO``). Each event is one line in the whole system, from the process
whose action made it: the CLI for enqueued/paused/resumed/cancelled, a worker for started,
an account error's pause, sent, and done (the worker's poller reads the final statuses).
Every line the workers write is a JSON object, and no line holds an API key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import stop
from tests.conftest import MOCK_KEY, eventually, repo_root
from tests.e2e.conftest import SECRET, System

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster

POLL = {"poll_interval_seconds": 0.7, "poll_after_seconds": 0}
JSON_KEYS = {"time", "level", "logger", "message"}


def numbers(tmp: Path, name: str, n: int, first: int) -> str:
    path = tmp / name
    path.write_text("".join(f"+44790{first + i:07d}\n" for i in range(n)))
    return str(path)


def events(lines: list[dict[str, Any]], cid: str) -> list[str]:
    return [r["event"] for r in lines if r.get("campaign") == cid and "event" in r]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed on its own: one that is not a JSON object fails the test."""
    out = []
    for line in text.splitlines():
        record = orjson.loads(line)
        assert isinstance(record, dict) and record.keys() >= JSON_KEYS, line
        out.append(record)
    return out


class Cli:
    """CLI commands at INFO, their event lines kept (JSON, or text with ``text=True``)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.records: list[dict[str, Any]] = []
        self.texts: list[str] = []

    def __call__(self, *args: str, text: bool = False) -> str:
        fmt = "text" if text else "json"
        done = self.system.cli("--log-level", "INFO", "--log-format", fmt, *args)
        if text:
            self.texts += [line for line in done.stderr.splitlines() if "[" in line]
        else:
            # Its log lines; the rest is what the command says to its user, as before.
            logged = [line for line in done.stderr.splitlines() if line.startswith("{")]
            self.records += json_lines("\n".join(logged))
        return done.stdout


async def test_each_event_is_one_line_from_the_process_that_made_it(
    system: System, redis: Redis, tmp_path: Path
) -> None:
    system.write_config(cloudaten=POLL)
    await system.mock_settings(list_interval_s=0.5, dlr_delay_ms=0)
    cli = Cli(system)
    send = ("enqueue", "--provider", "cloudaten", "--text", "hi")
    a = cli(*send, "--recipients", numbers(tmp_path, "a.txt", 250, 0)).splitlines()[0]
    assert cli("pause", a).strip() == "paused"  # the answer on stdout is as it always was
    b = cli(*send, "--recipients", numbers(tmp_path, "b.txt", 150, 1000), text=True).strip()
    cli("pause", b)
    cli("cancel", b)
    wrong = ("--account", "wrong", "--recipients", numbers(tmp_path, "c.txt", 250, 2000))
    c = cli(*send, *wrong).splitlines()[0]

    log = tmp_path / "worker.log"
    with log.open("ab") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "worker", "--processes", "2"],
            env={**system.env, "DISPATCHER_LOG_FORMAT": "json"},
            cwd=repo_root(),
            stderr=sink,
        )
    system.workers.append(worker)
    await eventually(lambda: log.read_text().count(" ready") >= 2, what="two ready workers")
    assert cli("resume", a).startswith("resumed")

    client = Client(settings=load_settings(system.config), redis=redis)
    paused = await client.wait(c, 60)
    assert paused.state == "paused" and paused.reason and "INVALID_API_KEY" in paused.reason
    st_b = await client.wait(b, 60, final=True)
    assert st_b.done and st_b.finals == {"cancelled": 150}
    st_a = await client.wait(a, 120, final=True)
    assert st_a.done, st_a.as_dict()
    await eventually(
        lambda: any(
            a in line and '"event":"done"' in line for line in log.read_text().splitlines()
        ),
        what="a's done line",
    )
    assert stop(worker) == 0  # drained: every line is written
    text = log.read_text()
    worker_lines = json_lines(text)  # every line the workers wrote is one JSON object
    everything = worker_lines + cli.records

    # Who logged what: each event once, in the process that made it.
    assert events(cli.records, a) == ["enqueued", "paused", "resumed"]
    assert sorted(events(worker_lines, a)) == ["done", "sent", "started"]
    assert events(cli.records, b) == ["paused", "cancelled"]
    assert sorted(events(worker_lines, b)) == ["done", "sent"]  # never started: none sent
    assert events(cli.records, c) == ["enqueued"]
    assert sorted(events(worker_lines, c)) == ["paused", "started"]  # 3 chunks, one pause

    by = {(r["campaign"], r["event"]): r for r in everything if "event" in r}
    sent, done = by[a, "sent"], by[a, "done"]
    assert sent["counts"] == st_a.counts and sum(sent["counts"].values()) == 250
    assert done["counts"] == st_a.finals
    assert (sent["provider"], sent["account"], sent["level"]) == ("cloudaten", "default", "INFO")
    assert sent["message"].startswith(f"campaign {a} sent: 250 recipients (")
    assert sent["message"].endswith(" provider=cloudaten account=default")
    assert sent["logger"] == "dispatcher.events"
    assert by[a, "paused"]["cause"] == "operator"
    assert by[a, "enqueued"]["counts"]["valid"] == 250
    account_error = by[c, "paused"]
    assert (account_error["cause"], account_error["level"]) == ("account_error", "ERROR")
    assert account_error["reason"].startswith("INVALID_API_KEY from cloudaten account wrong")
    assert account_error["account"] == "wrong"
    assert by[b, "done"]["counts"] == {"cancelled": 150}
    # The text format: the same line, key=value context at its end.
    assert len(cli.texts) == 1
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO dispatcher\.events\[\d+\]: "
        f"campaign {b} enqueued: 150 recipient\\(s\\) in 2 chunk\\(s\\), 0 invalid, 0 "
        "duplicate\\(s\\) provider=cloudaten account=default kind=sms lane=transactional",
        cli.texts[0],
    ), cli.texts
    for secret in (MOCK_KEY, "wrong-key", SECRET):
        assert secret not in text and all(secret not in t for t in cli.texts)
        assert all(secret not in orjson.dumps(r).decode() for r in cli.records)
