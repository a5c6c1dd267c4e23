"""Enqueue speed and memory: validation, duplicates and the staged writes of big lists.

(a) 1,000,000 recipients (UK, US and French mobiles in E.164, about 2% listed twice and 1%
invalid) through ``Client.enqueue`` into a private Redis: recipients per second, and the
client's peak RSS above what it held before. Beside it, in the same run: the bare floor (the
same chunks written with plain pipelined HSETs, no validation) and the old per-number
validation (``numbers.normalise`` and a set, on a sample), each as a rate and a ratio.

(b) A 10,000,000-line recipients file in a temporary folder, enqueued by
``python -m dispatcher enqueue`` in a subprocess: its peak RSS (``os.wait4``), which must
stay under 200 MB, and its rate.

Prints the table and writes it as JSON under benchmarks/results/.

    python -m benchmarks.bench_enqueue [--recipients 1000000] [--file-lines 10000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
from redis.asyncio import Redis

from benchmarks.report import save
from dispatcher.client import Client
from dispatcher.config import parse_with_codecs
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.model import Campaign
from dispatcher.numbers import normalise

TEXT = "Your parcel arrives today between 10:00 and 12:00."
RSS_LIMIT_MB = 200
TIME_LIMIT_S = 1200
OLD_SAMPLE = 50_000
#: Runs a command with its output in two files; prints its peak RSS (KiB, wait4).
SPAWN = """
import os, subprocess, sys
with open(sys.argv[1], "wb") as out, open(sys.argv[2], "wb") as err:
    child = subprocess.Popen(sys.argv[3:], stdout=out, stderr=err)
    _, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""
CHUNK = 100  # Cloud Aten's chunk size


def numbers(n: int, seed: int = 14) -> list[str]:
    """UK, US and French mobiles; about 2% repeat an earlier one and 1% are invalid."""
    rnd = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        roll = rnd.random()
        if roll < 0.01:
            out.append(f"+4479{rnd.randrange(10**6):06d}")  # too short: invalid
        elif roll < 0.03 and out:
            out.append(out[rnd.randrange(len(out))])
        elif i % 3 == 0:  # ranges where every number is valid, so 1% invalid it is
            out.append(f"+447{rnd.choice('13458')}{rnd.randrange(10**8):08d}")
        elif i % 3 == 1:
            out.append(f"+1201{rnd.randrange(2, 10)}{rnd.randrange(10**6):06d}")
        else:
            out.append(f"+336{rnd.choice('0124568')}{rnd.randrange(10**7):07d}")
    return out


def rss_mb() -> float:
    """The process's resident set now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings_data(prefix: str) -> dict[str, Any]:
    return {
        "prefix": prefix,
        "providers": {
            "cloudaten": {
                "base_url": "http://127.0.0.1:9",
                "chunk_size": CHUNK,
                "accounts": {"default": {"api_key": "bench-key"}},
            }
        },
    }


async def client_run(url: str, n: int) -> dict[str, Any]:
    recipients = numbers(n)
    redis = Redis.from_url(url)
    client = Client(settings=parse_with_codecs(settings_data("bench:a:")), redis=redis)
    before, peak_before = rss_mb(), peak_mb()
    started = time.perf_counter()
    answer = await client.enqueue(Campaign("cloudaten", TEXT, recipients))
    took = time.perf_counter() - started
    extra = max(0.0, peak_mb() - max(before, peak_before))
    floor = await bare_floor(redis, recipients)
    await redis.aclose()
    old = old_validation(recipients[:OLD_SAMPLE])
    return {
        "recipients": n,
        "valid": answer.valid,
        "invalid": answer.invalid,
        "duplicates": answer.duplicates,
        "chunks": answer.chunks,
        "seconds": round(took, 3),
        "per_second": round(n / took),
        "client_rss_before_mb": round(before, 1),
        "client_peak_extra_mb": round(extra, 1),
        "floor_per_second": round(n / floor),
        "old_validation_per_second": round(OLD_SAMPLE / old),
    }


async def bare_floor(redis: Redis, recipients: list[str]) -> float:
    """Seconds to write the same number of chunks, already cut, with plain pipelines."""
    blobs = [
        orjson.dumps([[i + j, r] for j, r in enumerate(recipients[i : i + CHUNK])])
        for i in range(0, len(recipients), CHUNK)
    ]
    key = "bench:floor:{x}:chunks"
    started = time.perf_counter()
    for at in range(0, len(blobs), 3000):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(at, min(at + 3000, len(blobs)), 1000):
                pipe.hset(
                    key, mapping={str(j): blobs[j] for j in range(i, min(i + 1000, len(blobs)))}
                )
            await pipe.execute()
    took = time.perf_counter() - started
    await redis.delete(key)
    return took


def old_validation(sample: list[str]) -> float:
    """Seconds the old intake took for ``sample``: phonenumbers for every number, a set."""
    seen: set[str] = set()
    started = time.perf_counter()
    for raw in sample:
        e164, _ = normalise(raw, None)
        if e164 is not None and e164 not in seen:
            seen.add(e164)
    return time.perf_counter() - started


def file_run(url: str, tmp: Path, lines: int) -> dict[str, Any]:
    path = tmp / "recipients.txt"
    with path.open("w") as f:
        f.write("number\n")
        step = 1_000_000
        for start in range(0, lines, step):
            f.write("\n".join(numbers(min(step, lines - start), seed=start)) + "\n")
    config = tmp / "dispatcher.toml"
    config.write_text(
        'prefix = "bench:b:"\n[providers.cloudaten]\nbase_url = "http://127.0.0.1:9"\n'
        f'chunk_size = {CHUNK}\n[providers.cloudaten.accounts.default]\napi_key = "bench-key"\n'
    )
    env = {**os.environ, "REDIS_URL": url, "DISPATCHER_CONFIG": str(config)}
    args = ["enqueue", "--provider", "cloudaten", "--text", TEXT, "--recipients", str(path)]
    command = [sys.executable, "-m", "dispatcher", *args]
    out, err = tmp / "enqueue.out", tmp / "enqueue.err"
    started = time.perf_counter()
    # Spawned by a small Python of its own: a child's peak RSS counts the image it was
    # forked from, and this process holds the lists of (a).
    spawner = subprocess.run(
        [sys.executable, "-c", SPAWN, str(out), str(err), *command],
        env=env, capture_output=True, text=True, timeout=TIME_LIMIT_S, check=False,
    )  # fmt: skip
    took = time.perf_counter() - started
    if spawner.returncode != 0:
        raise SystemExit(f"enqueue failed ({spawner.returncode}): {err.read_text()[-2000:]}")
    peak = int(spawner.stdout.split()[-1]) / 1024
    return {
        "lines": lines,
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "seconds": round(took, 1),
        "per_second": round(lines / took),
        "peak_rss_mb": round(peak, 1),
        "answer": err.read_text().strip().splitlines()[-1],
        "campaign": out.read_text().strip(),
    }


def report(a: dict[str, Any], b: dict[str, Any]) -> None:
    n, rate = a["recipients"], a["per_second"]
    counts = ", ".join(f"{a[k]:,} {k}" for k in ("valid", "invalid", "duplicates", "chunks"))
    print(f"\n(a) Client.enqueue, {n:,} recipients: {counts}")
    print(f"{'path':<52}{'recipients/s':>14}{'vs ours':>9}")
    rows = [
        ("Client.enqueue: validate, dedupe, stage, publish", rate),
        ("bare floor: the same chunks, plain pipelined HSET", a["floor_per_second"]),
        (f"old validation alone: normalise + set ({OLD_SAMPLE:,})", a["old_validation_per_second"]),
    ]
    for name, value in rows:
        print(f"{name:<52}{value:>14,}{value / rate:>8.2f}x")
    print(f"{a['seconds']} s; client RSS {a['client_rss_before_mb']} MB before (the list), "
          f"peak {a['client_peak_extra_mb']} MB above that while enqueuing")  # fmt: skip
    verdict = "ok" if b["peak_rss_mb"] <= RSS_LIMIT_MB else "OVER"
    print(f"\n(b) python -m dispatcher enqueue, {b['lines']:,}-line file ({b['file_mb']} MB)")
    print(f"{b['seconds']} s, {b['per_second']:,} lines/s; peak RSS {b['peak_rss_mb']} MB "
          f"(limit {RSS_LIMIT_MB} MB: {verdict})\n{b['answer']}")  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=1_000_000)
    p.add_argument("--file-lines", type=int, default=10_000_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="dispatcher-enqueue-") as folder:
        tmp = Path(folder)
        server = RedisProcess(tmp / "redis", free_port())
        server.start()
        try:
            a = uvloop.run(client_run(server.url, args.recipients))
            b = file_run(server.url, tmp, args.file_lines)
        finally:
            server.stop()
    report(a, b)
    summary = {
        "benchmark": "enqueue", "client": a, "file": b, "rss_limit_mb": RSS_LIMIT_MB,
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    print(f"written to {save('enqueue', summary)}")
    if b["peak_rss_mb"] > RSS_LIMIT_MB:
        print(f"FAIL: peak RSS {b['peak_rss_mb']} MB over {RSS_LIMIT_MB} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
