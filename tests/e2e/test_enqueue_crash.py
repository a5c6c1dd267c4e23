"""``python -m dispatcher enqueue`` SIGKILLed while it streams a big file into Redis: no
campaign is visible (listing, status, the command line), every key it staged expires after
``staging_ttl_seconds`` (the idempotency key it held too), and the next enqueue with that
key is a new campaign."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from dispatcher.client import CampaignNotFound, Client
from dispatcher.config import load_settings
from dispatcher.keys import Keys
from dispatcher.store import as_str
from tests.conftest import eventually, repo_root, run_dispatcher, subprocess_env

LINES = 1_500_000  # several seconds of streaming: the kill lands mid-stream
STAGING_TTL_S = 2


def write_config(path: Path, prefix: str) -> None:
    path.write_text(
        f'prefix = "{prefix}"\nstaging_ttl_seconds = {STAGING_TTL_S}\n'
        '[providers.cloudaten]\nbase_url = "http://127.0.0.1:9"\nchunk_size = 100\n'
        '[providers.cloudaten.accounts.default]\napi_key = "e2e-key"\n'
    )


def write_numbers(path: Path, n: int) -> None:
    with path.open("w") as f:
        f.write("number\n")
        for start in range(0, n, 100_000):
            block = range(start, min(n, start + 100_000))
            f.write("".join(f"+4478{i:08d}\n" for i in block))


async def staged_campaign(redis: Redis, prefix: str) -> str | None:
    """The id of a campaign being staged that has chunks written already, if any."""
    async for raw in redis.scan_iter(match=f"{prefix}{{*}}:meta", count=1000):
        key = as_str(raw)
        if as_str(await redis.hget(key, "state")) == "staging":
            cid = key[len(prefix) + 1 : key.index("}")]
            if await redis.hlen(Keys(prefix).chunks(cid)):
                return cid
    return None


async def campaign_keys(redis: Redis, prefix: str, cid: str) -> list[str]:
    return [as_str(k) async for k in redis.scan_iter(match=f"{prefix}{{{cid}}}*", count=1000)]


@pytest.mark.timeout(240)
async def test_enqueue_killed_midstream_leaves_nothing(
    redis: Redis, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    config = tmp_path / "dispatcher.toml"
    write_config(config, prefix)
    numbers = tmp_path / "numbers.csv"
    write_numbers(numbers, LINES)
    env = subprocess_env(REDIS_URL=redis_url, DISPATCHER_CONFIG=str(config))
    args = ["enqueue", "--provider", "cloudaten", "--text", "hi", "--recipients", str(numbers),
            "--idempotency-key", "crash-test"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", *args],
        env=env,
        cwd=repo_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        cid = await eventually(
            lambda: staged_campaign(redis, prefix), what="staged keys", seconds=120
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-stream, not finished
    k = Keys(prefix)
    staged = [*await campaign_keys(redis, prefix, cid), k.idempotency("crash-test")]
    assert k.meta(cid) in staged and k.chunks(cid) in staged
    ttls = [await redis.ttl(key) for key in staged]
    assert all(ttl > 0 for ttl in ttls), ttls  # every one of them expires

    client = Client(settings=load_settings(config), redis=redis)
    with pytest.raises(CampaignNotFound):
        await client.status(cid)
    assert (await client.campaigns(100)).items == []
    shown = run_dispatcher(env, "status", cid)
    assert shown.returncode == 1 and "no campaign" in shown.stderr
    listed = run_dispatcher(env, "campaigns", "--json")
    assert listed.returncode == 0 and cid not in listed.stdout

    async def left_behind() -> list[str]:
        idem = k.idempotency("crash-test")
        held = [idem] if await redis.exists(idem) else []
        return [*await campaign_keys(redis, prefix, cid), *held]

    left = await eventually(
        left_behind,
        lambda keys: keys == [],
        what=f"the staged keys and the idempotency key to expire ({STAGING_TTL_S} s)",
        seconds=60,
    )
    assert left == []
    small = tmp_path / "small.csv"
    write_numbers(small, 10)
    again = run_dispatcher(env, *args[:-3], str(small), "--idempotency-key", "crash-test")
    assert again.returncode == 0, again.stderr
    new_id = again.stdout.strip()
    assert new_id != cid and (await client.status(new_id)).total == 10
