"""How dispatcher logs: the JSON and text formats, ``--log-format`` and its variable, the
secret kept out of JSON lines, and each campaign event logged once by the call that made it
(real Redis; two workers racing for the same transition)."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher import logs
from dispatcher.cli import _default_level
from dispatcher.cli.parser import build_parser
from dispatcher.client import Client
from dispatcher.config import Settings
from dispatcher.fencing import Fence
from dispatcher.keys import Keys
from dispatcher.model import Campaign, Result, Status
from dispatcher.queue import Queue, Settle
from dispatcher.webhooks import redact
from tests.conftest import MOCK_KEY, repo_root, subprocess_env

SECRET = "hook-secret-0123456789abcdef"
NUMBERS = [f"+4479110{i:05d}" for i in range(15)]


@pytest.fixture
def sink() -> Iterator[tuple[logging.Logger, logs.Handler, io.StringIO]]:
    """A logger of its own writing JSON through dispatcher's handler into a buffer."""
    out = io.StringIO()
    handler = logs.Handler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.logs.sink")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, handler, out
    logger.removeHandler(handler)


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_json_line_has_time_level_logger_message_fields_and_exception(
    sink: tuple[logging.Logger, logs.Handler, io.StringIO],
) -> None:
    logger, _handler, out = sink
    logger.info("sent %d", 3, extra={"campaign": "c1", "counts": {"accepted": 3}})
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logger.exception("it broke")
    first, second = lines(out)
    assert str(first["time"]).endswith("Z")
    assert datetime.fromisoformat(str(first["time"])).utcoffset() is not None
    assert (first["level"], first["logger"], first["message"]) == ("INFO", sink[0].name, "sent 3")
    assert (first["campaign"], first["counts"]) == ("c1", {"accepted": 3})
    assert "exception" not in first
    assert second["level"] == "ERROR"
    assert isinstance(second["exception"], str) and "ZeroDivisionError" in second["exception"]


def test_event_line_reads_as_words_with_key_value_context() -> None:
    out = io.StringIO()
    handler = logs.Handler(out)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logs.EVENTS.addHandler(handler)
    level = logs.EVENTS.level
    logs.EVENTS.setLevel(logging.INFO)
    try:
        logs.event(
            "sent", "c1", "3 recipients (2 accepted, 1 failed)", provider="cloudaten",
            account="default", counts={"accepted": 2, "failed": 1},
        )  # fmt: skip
        logs.event("paused", "c2", "why", account="two words", reason="why", chunk=4)
    finally:
        logs.EVENTS.removeHandler(handler)
        logs.EVENTS.setLevel(level)
    assert out.getvalue().splitlines() == [
        "campaign c1 sent: 3 recipients (2 accepted, 1 failed) provider=cloudaten account=default",
        'campaign c2 paused: why account="two words" chunk=4',
    ]
    assert logs.tally({"failed": 1, "accepted": 2, "invalid": 0}) == "2 accepted, 1 failed"


def test_log_format_flag_and_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPATCHER_LOG_FORMAT", raising=False)
    args = build_parser().parse_args(["status", "x"])
    assert (args.log_format, args.log_level) == ("text", None)
    assert build_parser().parse_args(["--log-format", "JSON", "status", "x"]).log_format == "json"
    monkeypatch.setenv("DISPATCHER_LOG_FORMAT", "json")
    assert build_parser().parse_args(["worker"]).log_format == "json"
    assert build_parser().parse_args(["--log-format", "text", "worker"]).log_format == "text"
    for bad_env, argv in (("json", ["--log-format", "xml", "worker"]), ("yaml", ["worker"])):
        monkeypatch.setenv("DISPATCHER_LOG_FORMAT", bad_env)
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(argv)
        assert exit_.value.code == 2
        assert "expected text or json" in capsys.readouterr().err
    # Services log their events at INFO; commands whose answer is their output stay quiet.
    assert [_default_level(c) for c in ("worker", "webhooks", "api", "enqueue", "pause")] == [
        "INFO", "INFO", "INFO", "WARNING", "WARNING",
    ]  # fmt: skip


def test_the_secret_is_redacted_from_a_json_line(
    sink: tuple[logging.Logger, logs.Handler, io.StringIO],
) -> None:
    logger, handler, out = sink
    remove = redact.install(SECRET, (), [handler])  # as the webhooks process does
    try:
        try:
            raise ValueError(f"bad path /hooks/{SECRET}/dlr")
        except ValueError:
            logger.exception(
                "refused /hooks/%s/cloudaten/dlr", SECRET,
                extra={"reason": f"named {SECRET}", "more": {"path": f"hooks/{SECRET}"}},
            )  # fmt: skip
    finally:
        remove()
    logs.protect(MOCK_KEY)  # an API key: out of every line of the process
    logger.warning("the provider said: bad key %s", MOCK_KEY, extra={"key": MOCK_KEY})
    text = out.getvalue()
    assert SECRET not in text and SECRET[:10] not in text and MOCK_KEY not in text
    first, second = lines(out)
    assert first["message"] == "refused /hooks/<redacted>/cloudaten/dlr"
    assert first["reason"] == "named <redacted>"
    assert first["more"] == {"path": "hooks/<redacted>"}
    assert "ValueError" in str(first["exception"])
    assert second["message"] == "the provider said: bad key <redacted>"


def test_client_commands_print_what_they_always_did(redis_url: str, tmp_path: Path) -> None:
    """The enqueued line goes to the log at INFO; by default the CLI prints only its answer."""
    config = tmp_path / "c.toml"
    config.write_text(
        f'prefix = "tl{tmp_path.name[-8:]}:"\n[providers.cloudaten]\n'
        'base_url = "http://127.0.0.1:9"\n[providers.cloudaten.accounts.default]\n'
        f'api_key = "{MOCK_KEY}"\n'
    )
    numbers = tmp_path / "n.txt"
    numbers.write_text("+447901614024\n")
    env = subprocess_env(REDIS_URL=redis_url, DISPATCHER_CONFIG=str(config))
    enqueue = ["enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", str(numbers)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dispatcher", *args], env=env, cwd=repo_root(),
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip

    quiet = run(*enqueue)
    summary = "enqueued 1 recipient(s) in 1 chunk(s); 0 invalid, 0 duplicate(s)\n"
    assert quiet.stderr == summary and len(quiet.stdout.split()) == 1
    env["DISPATCHER_LOG_FORMAT"] = "json"
    loud = run("--log-level", "INFO", *enqueue)
    cid = loud.stdout.strip()
    event, rest = loud.stderr.split("\n", 1)
    assert rest == summary
    record = orjson.loads(event)
    assert (record["event"], record["campaign"], record["provider"]) == (
        "enqueued",
        cid,
        "cloudaten",
    )
    assert record["counts"] == {
        "recipients": 1, "valid": 1, "invalid": 0, "duplicates": 0, "chunks": 1,
    }  # fmt: skip
    assert MOCK_KEY not in loud.stderr


async def test_each_transition_is_logged_once_by_the_call_that_made_it(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dispatcher.events")
    client = Client(settings=settings, redis=redis)
    cid = (await client.enqueue(Campaign("cloudaten", "hi", NUMBERS))).id
    k = Keys(settings.prefix)
    # Two workers, each with a chunk, record at the same moment; then record again.
    queues = [Queue(redis, k, name, [k.at(0).queue("cloudaten")]) for name in ("a", "b")]
    await queues[0].setup()
    leases = [(await q.read(1, 100))[0] for q in queues]
    fence = Fence(redis, k)
    firsts = [
        (await fence.claim_first(cid, le.entry_id, f"t{n}"))[1] for n, le in enumerate(leases)
    ]
    assert sorted(firsts) == [False, True]  # one chunk started the campaign
    await client.pause(cid)
    assert await client.pause(cid) is False  # already paused: no second line
    await client.resume(cid)
    await client.resume(cid)

    async def record(n: int) -> None:
        data = await queues[n].load(leases[n])
        assert data is not None
        results = [
            Result(r.index, r.number, Status.FAILED, error="x", sent_at=1) for r in data.recipients
        ]
        await queues[n].record(leases[n], results, Settle.KEEP, token=f"t{n}")
        await queues[n].record(leases[n], results, Settle.ACK, token=f"t{n}")  # a repeat: no line

    await asyncio.gather(record(0), record(1))
    await client.cancel(cid)
    await client.cancel(cid)
    said = [(r.__dict__["event"], r.__dict__["campaign"]) for r in caplog.records]
    assert said == [
        ("enqueued", cid), ("paused", cid), ("resumed", cid), ("sent", cid), ("done", cid),
        ("cancelled", cid),
    ]  # fmt: skip
    sent = next(r for r in caplog.records if r.__dict__["event"] == "sent")
    assert sent.__dict__["counts"] == {"failed": 15}
    assert sent.getMessage() == (
        f"campaign {cid} sent: 15 recipients (15 failed) provider=cloudaten account=default"
    )
