"""The command line for operators: listing campaigns, results as files, versions and help,
the settings template, and what ``-v`` and a missing settings file say."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher import __version__
from dispatcher.cli.context import is_loopback
from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.model import Campaign
from dispatcher.providers import KINDS
from tests.conftest import RunningWorker, make_settings, repo_root, run_dispatcher, subprocess_env
from tests.test_cli import Cli


@pytest.fixture
def cli(tmp_path: Path, redis_url: str, prefix: str) -> Cli:
    return Cli(tmp_path, redis_url, prefix)


def test_campaigns_lists_the_newest_first(cli: Cli) -> None:
    path = cli.file("n.txt", "+447901614024\n+447911000001\n")
    ids = [
        cli("enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", path).stdout
        for _ in range(3)
    ]
    newest = [i.strip() for i in reversed(ids)]
    table = cli("campaigns", "--limit", "2")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["id", "provider", "state", "created", "(UTC)", "sent/total"]
    assert [r.split()[0] for r in rows] == newest[:2]
    _cid, who, state, day, time, counts = rows[0].split()
    assert (who, state, counts) == ("cloudaten/default", "queued", "0/2")
    assert datetime.fromisoformat(f"{day}T{time}+00:00").year >= 2025
    listed = [orjson.loads(x) for x in cli("campaigns", "--json").stdout.splitlines()]
    assert [c["id"] for c in listed] == newest
    assert cli("campaigns", "--limit", "0").returncode == 2


def test_results_of_an_unknown_campaign_write_no_file(cli: Cli) -> None:
    target = cli.tmp / "x.csv"
    done = cli("results", "nope", "--csv", "-o", str(target))
    assert (done.returncode, done.stderr) == (1, "error: no campaign 'nope'\n")
    assert not target.exists()


async def test_csv_times_are_iso_8601_utc(cli: Cli, redis: Redis, mock: str) -> None:
    settings = make_settings(cli.prefix, f"{mock}/cloudaten")
    client = Client(settings=settings, redis=redis)
    answer = await client.enqueue(Campaign("cloudaten", "hi", ["+447901614024", "junk"]))
    async with RunningWorker(redis, settings):
        await client.wait(answer.id, 30)
    first, _invalid = [r async for r in client.results(answer.id)]
    sent_ms = first.sent_at
    assert isinstance(sent_ms, int)
    target = cli.tmp / "r.csv"
    assert cli("results", answer.id, "--csv", "-o", str(target)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert rows[0]["sent_at"].endswith("Z")
    at = datetime.fromisoformat(rows[0]["sent_at"].replace("Z", "+00:00"))
    assert at == datetime.fromtimestamp(sent_ms / 1000, UTC)
    assert (rows[1]["status"], rows[1]["sent_at"], rows[1]["status_at"]) == ("invalid", "", "")


def test_version_help_and_refused_options(cli: Cli) -> None:
    version = cli("--version")
    assert (version.returncode, version.stdout) == (0, f"dispatcher {__version__}\n")
    assert version.stdout.split()[1] == metadata.version("dispatcher-sms")
    top = cli("--help").stdout
    assert "argument parsing" not in top and "per-user data folder" in top
    refused = cli("--log-level", "verbose", "campaigns")
    assert refused.returncode == 2
    assert "--log-level: invalid choice: 'VERBOSE'" in refused.stderr
    assert cli("--log-level", "debug", "status", "nope").returncode == 1  # any case
    kind_help = " ".join(cli("enqueue", "--help").stdout.split())
    for provider, kind in KINDS:
        assert kind in kind_help
        assert provider in kind_help or "sms (every provider, default)" in kind_help
    bad_kind = cli("enqueue", "--provider", "cloudaten", "--text", "hi", "--kind", "fax")
    assert bad_kind.returncode == 2 and "invalid choice: 'fax'" in bad_kind.stderr


def test_config_template_is_shipped_and_loads(cli: Cli, tmp_path: Path) -> None:
    done = cli("config", "--template")
    assert done.returncode == 0
    shipped = resources.files("dispatcher").joinpath("config_template.toml").read_text()
    assert done.stdout == shipped == (repo_root() / "config" / "dispatcher.toml").read_text()
    (tmp_path / "t.toml").write_text(done.stdout)
    assert "cloudaten" in load_settings(tmp_path / "t.toml").providers


def test_verbose_names_redis_and_config_without_the_password(cli: Cli, redis_url: str) -> None:
    env = {**cli.env, "REDIS_URL": redis_url.replace("redis://", "redis://:s3cret@")}
    for args in (["-v", "status", "nope"], ["status", "nope", "-v"]):
        done = run_dispatcher(env, *args)
        assert done.returncode == 1  # the server has no password: AUTH fails
        assert done.stderr.splitlines()[:2] == [
            f"config: {cli.tmp / 'c.toml'} (DISPATCHER_CONFIG)",
            f"redis: {redis_url} (REDIS_URL)",
        ]
        assert "s3cret" not in done.stderr
    quiet = cli("status", "nope")
    assert quiet.stderr == "error: no campaign 'nope'\n"
    numbers = cli.file("n.txt", "+447901614024\n")
    est = cli("-v", "estimate", "--provider", "cloudaten", "--text", "hi", "--recipients", numbers)
    assert est.stderr.splitlines() == [
        f"config: {cli.tmp / 'c.toml'} (DISPATCHER_CONFIG)",
        "redis: not used",
    ]


def test_no_config_file_with_real_provider_urls_is_warned_about(tmp_path: Path) -> None:
    env = subprocess_env()
    env.pop("DISPATCHER_DATA_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher", "-v", "config"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config, warning = done.stderr.splitlines()
    assert config.startswith("config: none, built-in settings (no --config, ")
    assert warning.startswith("warning: no settings file (")
    assert warning.endswith("cloudaten, cloudsms, smsclouds, ycloud point at their real APIs")
    assert done.stdout.splitlines()[1].startswith("redis: embedded valkey-server, data in ")


def test_loopback_urls_are_told_from_real_ones() -> None:
    for url in ("http://127.0.0.1:8090/x", "http://localhost/", "https://[::1]:1/"):
        assert is_loopback(url)
    for url in ("https://api.cloudaten.com", "https://10.0.0.1/", "nonsense"):
        assert not is_loopback(url)
