"""The command line as a user runs it: real processes, a real Redis, exit codes and messages."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.demo import start_mock, stop
from tests.conftest import MOCK_KEY, run_dispatcher, subprocess_env


class Cli:
    def __init__(self, tmp: Path, redis_url: str, prefix: str) -> None:
        self.tmp = tmp
        self.prefix = prefix
        config = tmp / "c.toml"
        config.write_text(
            f'prefix = "{prefix}"\n[providers.cloudaten]\nbase_url = "http://127.0.0.1:9"\n'
            f'[providers.cloudaten.accounts.default]\napi_key = "{MOCK_KEY}"\n'
        )
        self.env = subprocess_env(REDIS_URL=redis_url, DISPATCHER_CONFIG=str(config))

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_dispatcher(self.env, *args)

    def file(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return str(path)


@pytest.fixture
def cli(tmp_path: Path, redis_url: str, prefix: str) -> Cli:
    return Cli(tmp_path, redis_url, prefix)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "pigeon", "--text", "hi"], "error: provider: unknown provider 'pigeon'"),
        (["--provider", "cloudaten", "--text", ""], "error: text: must not be empty"),
        (["--provider", "cloudaten", "--text", "hi", "--account", "x"], "error: account: 'x'"),
        (["--provider", "cloudaten", "--text", "a" * 100_000], "error: text: 654 segments; "),
        (
            ["--provider", "cloudaten", "--text", "hi", "--signature", "S" * 10_000],
            "error: signature: longer than cloudaten's 20 characters",
        ),
        (["--provider", "cloudaten", "--text", "hi", "--weight", "0"], "error: weight: "),
        (["--provider", "cloudaten", "--text", "hi", "--lane", "now"], "error: lane: "),
    ],
)
async def test_bad_campaigns_exit_2_and_enqueue_nothing(
    cli: Cli, redis: Redis, args: list[str], message: str
) -> None:
    numbers = cli.file("n.txt", "+447901614024\n")
    done = cli("enqueue", *args, "--recipients", numbers)
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert done.stdout == ""
    assert await redis.keys(f"{cli.prefix}*") == []


async def test_malformed_recipients_line_is_named(cli: Cli, redis: Redis) -> None:
    path = cli.file("n.csv", "number,name\n+447901614024,Ann\n+447911000001,Bob,oops\n")
    done = cli("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: recipients: {path} line 3: 3 columns, expected 2"
    assert await redis.keys(f"{cli.prefix}*") == []


async def test_campaign_file_errors_name_the_field(cli: Cli, redis: Redis) -> None:
    bad = cli.file(
        "c.json", orjson.dumps({"provider": "cloudaten", "text": "hi", "recipients": [1]})
    )
    done = cli("enqueue", bad)
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "error: recipients[0]: must be a number string or an object with 'number'",
    )
    broken = cli.file("b.json", b"{")
    assert cli("enqueue", broken).stderr.startswith("error: campaign_file: not valid JSON")
    assert await redis.keys(f"{cli.prefix}*") == []


def test_invalid_numbers_are_counted_and_have_results(cli: Cli) -> None:
    path = cli.file("n.txt", "+447901614024\nnot a phone\n+44 7901 614024\n")
    done = cli("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path, "--json")
    assert done.returncode == 0, done.stderr
    answer = orjson.loads(done.stdout)
    assert (answer["valid"], answer["invalid"], answer["duplicates"]) == (1, 1, 1)
    plain = cli("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path)
    assert len(plain.stdout.split()) == 1  # just the id, for scripts
    assert "1 invalid, 1 duplicate(s)" in plain.stderr
    status = orjson.loads(cli("status", answer["id"], "--json").stdout)
    assert status["counts"] == {"invalid": 1} and status["pending"] == 1
    rows = list(csv.reader(io.StringIO(cli("results", answer["id"], "--csv").stdout)))
    assert rows[0][:4] == ["index", "number", "status", "message_id"]
    assert [r[:3] for r in rows[1:]] == [
        ["0", "+447901614024", "pending"],
        ["1", "not a phone", "invalid"],
    ]
    assert rows[2][5] == "not a phone number"
    lines = cli("results", answer["id"]).stdout.splitlines()
    assert [orjson.loads(x)["status"] for x in lines] == ["pending", "invalid"]


def test_campaign_file_with_idempotency_key(cli: Cli) -> None:
    path = cli.file(
        "c.json",
        orjson.dumps(
            {
                "provider": "cloudaten",
                "text": "hi",
                "recipients": ["+447901614024", {"number": "07911 000001", "name": "Ann"}],
                "default_region": "GB",
                "idempotency_key": "k-1",
            }
        ),
    )
    first = orjson.loads(cli("enqueue", path, "--json").stdout)
    again = orjson.loads(cli("enqueue", path, "--json").stdout)
    assert first["valid"] == 2 and not first["existing"]
    assert again["id"] == first["id"] and again["existing"]


def test_unknown_campaign_and_resume(cli: Cli) -> None:
    done = cli("status", "nope")
    assert (done.returncode, done.stderr.strip()) == (1, "error: no campaign 'nope'")
    path = cli.file("n.txt", "+447901614024\n")
    cid = cli("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path).stdout
    done = cli("resume", cid.strip())
    assert (done.returncode, done.stdout.strip()) == (0, "not paused (queued): nothing to do")


def test_estimate_prints_segments_and_cost(cli: Cli) -> None:
    path = cli.file("n.csv", "number,name\n+447901614024,Ann\n+447911000001," + "B" * 200 + "\n")
    done = cli(
        "estimate", "--provider", "cloudaten", "--text", "Hi <+B+>", "--recipients", path, "--json"
    )
    assert done.returncode == 0, done.stderr
    est = orjson.loads(done.stdout)
    assert (est["recipients"], est["segments"], est["cost"]) == (2, 3, None)
    plain = cli("estimate", "--provider", "cloudaten", "--text", "Hi", "--recipients", path)
    assert "segments: 2" in plain.stdout and "price_per_segment" in plain.stdout


def test_options_are_typed_and_checked(cli: Cli) -> None:
    path = cli.file("n.txt", "+447901614024\n")
    done = cli(
        "estimate",
        "--provider",
        "cloudaten",
        "--text",
        "hi",
        "--recipients",
        path,
        "--option",
        "route=5",
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: options.route: unknown for cloudaten")
    bad = cli(
        "estimate", "--provider", "cloudaten", "--text", "hi", "--recipients", path, "--option", "x"
    )
    assert bad.stderr.startswith("error: --option: 'x': expected KEY=VALUE")


def test_provider_queries_against_the_mock(tmp_path: Path, redis_url: str, prefix: str) -> None:
    mock, url = start_mock([], subprocess_env())
    try:
        config = tmp_path / "c.toml"
        config.write_text(
            f'[providers.smsclouds]\nbase_url = "{url}/smsclouds"\n'
            '[providers.smsclouds.accounts.default]\napi_key = "mock-smsclouds-token"\n'
            f'[providers.ycloud]\nbase_url = "{url}/ycloud"\n'
            '[providers.ycloud.accounts.default]\napi_key = "mock-ycloud-key"\n'
        )
        env = subprocess_env(DISPATCHER_CONFIG=str(config))
        routes = run_dispatcher(env, "provider", "smsclouds", "routes")
        assert routes.returncode == 0, routes.stderr
        assert {r["route"] for r in orjson.loads(routes.stdout)} >= {77, 79}
        user = orjson.loads(run_dispatcher(env, "provider", "smsclouds", "user").stdout)
        assert "credit" in user["data"]
        balance = orjson.loads(run_dispatcher(env, "provider", "ycloud", "balance").stdout)
        assert balance["data"]["currency"] == "USD"
        # estimate --balance compares the cost with the account's balance, and warns.
        mx = tmp_path / "mx.txt"
        mx.write_text("+524498987282\n")
        config.write_text(
            config.read_text().replace(
                "[providers.smsclouds.accounts.default]",
                "price_per_segment = 1e15\n[providers.smsclouds.accounts.default]\nroute = 77",
            )
        )
        est = run_dispatcher(
            env,
            "estimate",
            "--provider",
            "smsclouds",
            "--text",
            "hi",
            "--recipients",
            str(mx),
            "--balance",
        )
        assert est.returncode == 0, est.stderr
        assert "balance: " in est.stdout
        assert "warning: the balance does not cover this campaign" in est.stderr
        unknown = run_dispatcher(env, "provider", "smsclouds", "nope")
        assert unknown.returncode == 2
        assert "known: countries, routes, user" in unknown.stderr
    finally:
        stop(mock)


def test_pause_resume_cancel_retry_commands(cli: Cli) -> None:
    path = cli.file("n.txt", "+447901614024\n+447911000001\n")
    cid = cli("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path)
    cid_ = cid.stdout.strip()

    def said(*args: str) -> tuple[int, str]:
        done = cli(*args)
        return done.returncode, done.stdout.strip()

    assert said("pause", cid_) == (0, "paused")
    # Asking again for what already is so does nothing, says so, and is no failure.
    assert said("pause", cid_) == (0, "already paused: nothing to do")
    status = orjson.loads(cli("status", cid_, "--json").stdout)
    assert (status["state"], status["reason"]) == ("paused", "paused by operator")
    assert cli("resume", cid_).stdout.startswith("resumed")
    assert said("resume", cid_) == (0, "not paused (queued): nothing to do")
    assert cli("retry", cid_).stdout.strip() == "0 recipient(s) queued again"
    assert said("cancel", cid_) == (0, "cancelled")
    assert said("cancel", cid_) == (0, "already cancelled: nothing to do")
    assert said("pause", cid_) == (0, "already cancelled: nothing to do")
    resumed = cli("resume", cid_)
    assert (resumed.returncode, resumed.stderr.strip()) == (
        1,
        "error: the campaign is cancelled; it cannot be resumed",
    )
    assert orjson.loads(cli("status", cid_, "--json").stdout)["state"] == "cancelled"
    assert cli("pause", "nope").returncode == 1


async def test_no_valid_recipient_is_refused_unless_allowed(cli: Cli, redis: Redis) -> None:
    path = cli.file("n.txt", "+44 12\n0000\n")
    args = ("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path)
    done = cli(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.strip() == (
        "error: recipients: none of the 2 is valid (recipients[0]: not a valid number for "
        "+44); use --allow-empty to enqueue it"
    )
    assert await redis.keys(f"{cli.prefix}*") == []
    allowed = cli(*args, "--allow-empty", "--json")
    assert allowed.returncode == 0, allowed.stderr
    answer = orjson.loads(allowed.stdout)
    assert (answer["valid"], answer["invalid"]) == (0, 2)


@pytest.mark.parametrize(
    "content",
    [
        "number;name\n+447901614024;Ann\n+447911000001;Bob\n",  # Excel in many locales
        "number\n+447901614024\n+447911000001\n",  # a one-column file with a header
        "phone\tname\n+447901614024\tAnn\n+447911000001\t\n",
    ],
)
def test_recipients_files_delimiters_and_headers(cli: Cli, content: str) -> None:
    path = cli.file("n.csv", content)
    done = cli("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path, "--json")
    assert done.returncode == 0, done.stderr
    answer = orjson.loads(done.stdout)
    assert (answer["valid"], answer["invalid"]) == (2, 0)


async def test_mainland_china_needs_a_signature_at_cloud_aten(cli: Cli, redis: Redis) -> None:
    path = cli.file("cn.txt", "+8613800138000\n")
    args = ("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path)
    done = cli(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "error: signature: cloudaten requires one for mainland China (+86) numbers"
    )
    assert await redis.keys(f"{cli.prefix}*") == []
    signed = cli(*args, "--signature", "ACME", "--json")
    assert signed.returncode == 0, signed.stderr
    assert orjson.loads(signed.stdout)["valid"] == 1


def test_a_worker_not_ready_is_one_line_and_exit_1(cli: Cli) -> None:
    """NotReady is caught as every DispatcherError: a failure, not bad input."""
    done = cli("worker", "--check")
    assert done.returncode == 1
    assert done.stderr.startswith("error: consumer group workers missing on ")
    assert len(done.stderr.splitlines()) == 1
