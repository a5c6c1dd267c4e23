"""Fair share across accounts and campaigns, measured with real processes on the mock.

**two accounts** — Cloud Aten, accounts ``a`` and ``b`` at 50/s each: campaign A (3,000 on
``a``) runs alone, then B (300 on ``b``) is enqueued. Bounds: B takes at most 1.2× its ideal
time (300 at ``b``'s rate), and A keeps ≥ 0.95 of the rate it had alone. With one worker
process, and again with three.

**same account** — A (3,000) and then B (300) on one account at 50/s, the mock refusing
anything above 50 in any second. Bounds: B within 2.5× its ideal at the account's rate; the
account's use while B runs ≥ 0.9 of the rate; 0 requests over.

**ten accounts** — one 2,000-recipient campaign on each of ten accounts with rates from 5/s to
200/s, enqueued together, one worker process. Bound: each within 1.2× its own ideal.

An ideal time is the recipients over the rate the limiter keeps (the configured rate less
its jitter allowance). Prints the figures, writes benchmarks/results/fair-<time>.json and
exits 1 if a bound is missed.

    python -m benchmarks.fair [--case two|same|ten|all]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.report import save
from benchmarks.rig import Rig
from dispatcher.client import Client
from dispatcher.model import Campaign
from dispatcher.ratelimit import interval_ms

FIRST = 447911000000
LIMIT_S = 900.0
TEN_RATES = (5, 10, 20, 30, 50, 75, 100, 125, 150, 200)


def ideal_s(n: int, rate: float) -> float:
    return n * interval_ms(rate) / 1000


def numbers(first: int, n: int) -> list[str]:
    return [f"+{FIRST + first + i}" for i in range(n)]


async def times_of(rig: Rig, cid: str) -> list[float]:
    """When the mock accepted each message of the campaign, in seconds."""
    messages = await rig.call("GET", "/_mock/messages?provider=cloudaten")
    return sorted(m["timestamp"] / 1000 for m in messages if m["uid"].startswith(cid))


def rate_between(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t <= end]
    return len(inside) / (end - start)


async def start(rig: Rig, processes: int) -> Client:
    rig.worker(*(["--processes", str(processes)] if processes > 1 else []))
    return rig.client()


async def b_beside_a(processes: int, same: bool) -> dict[str, Any]:
    accounts: dict[str, dict[str, dict[str, Any]]] = {"cloudaten": {"a": {}, "b": {}}}
    mock_limit = {"rate_limits": [["cloudaten", 50]]} if same else {}
    with tempfile.TemporaryDirectory(prefix="dispatcher-fair-") as tmp:
        rig = Rig(Path(tmp), {"cloudaten": {"rate_per_second": 50, "chunk_size": 100}},
                  accounts=accounts)  # fmt: skip
        try:
            await rig.call("POST", "/_mock/settings", mock_limit)
            client = await start(rig, processes)
            a = (await client.enqueue(Campaign("cloudaten", "A", numbers(0, 3000), account="a"))).id
            deadline = time.monotonic() + LIMIT_S
            while (await client.status(a)).recorded < 400:  # A alone for a while
                if time.monotonic() > deadline:
                    raise SystemExit(f"A recorded fewer than 400 in {LIMIT_S:.0f} s")
                await client.wait(a, 0.5)
            began = time.time()
            b_account = "a" if same else "b"
            b = (await client.enqueue(Campaign("cloudaten", "B", numbers(5000, 300),
                                               account=b_account))).id  # fmt: skip
            await client.wait(b, LIMIT_S)
            a_times, b_times = await times_of(rig, a), await times_of(rig, b)
            stats = (await rig.call("GET", "/_mock/stats"))["providers"]["cloudaten"]
            await client.cancel(a)
            await client.redis.aclose()
        finally:
            rig.close()
    took = b_times[-1] - began
    ideal = ideal_s(300, 50)
    a_alone = rate_between(a_times, a_times[0], began)
    a_beside = rate_between(a_times, b_times[0], b_times[-1])
    out = {
        "processes": processes,
        "b_seconds": round(took, 2),
        "b_ideal_seconds": round(ideal, 2),
        "b_ratio": round(took / ideal, 3),
        "a_rate_alone": round(a_alone, 1),
        "a_rate_beside_b": round(a_beside, 1),
        "a_kept": round(a_beside / a_alone, 3),
    }
    if same:
        both = rate_between(sorted(a_times + b_times), b_times[0], b_times[-1])
        out["account_use"] = round(both / 50, 3)
        out["over_rate"] = stats["over_rate"]
    return out


async def ten_accounts() -> dict[str, Any]:
    accounts = {"cloudaten": {f"r{r}": {"rate_per_second": r} for r in TEN_RATES}}
    with tempfile.TemporaryDirectory(prefix="dispatcher-fair-") as tmp:
        rig = Rig(Path(tmp), {"cloudaten": {"chunk_size": 100}}, accounts=accounts)
        try:
            client = await start(rig, 1)
            began = time.time()
            ids = {
                r: (
                    await client.enqueue(
                        Campaign("cloudaten", f"{r}/s", numbers(i * 10_000, 2000), account=f"r{r}")
                    )
                ).id
                for i, r in enumerate(TEN_RATES)
            }
            for cid in ids.values():
                await client.wait(cid, LIMIT_S)
            took = {r: (await times_of(rig, cid))[-1] - began for r, cid in ids.items()}
            await client.redis.aclose()
        finally:
            rig.close()
    return {
        str(r): {"seconds": round(t, 1), "ideal": round(ideal_s(2000, r), 1),
                 "ratio": round(t / ideal_s(2000, r), 3)}
        for r, t in took.items()
    }  # fmt: skip


async def main(case: str) -> int:
    report: dict[str, Any] = {}
    failures: list[str] = []
    if case in ("two", "all"):
        for processes in (1, 3):
            got = await b_beside_a(processes, same=False)
            report[f"two_accounts_{processes}"] = got
            print(f"two accounts, {processes} process(es): B {got['b_seconds']} s "
                  f"({got['b_ratio']}× ideal {got['b_ideal_seconds']} s); A "
                  f"{got['a_rate_alone']}/s alone, {got['a_rate_beside_b']}/s beside B "
                  f"({got['a_kept']})", flush=True)  # fmt: skip
            if got["b_ratio"] > 1.2:
                failures.append(f"two accounts, {processes}: B took {got['b_ratio']}× its ideal")
            if got["a_kept"] < 0.95:
                failures.append(f"two accounts, {processes}: A kept {got['a_kept']} of its rate")
    if case in ("same", "all"):
        got = await b_beside_a(1, same=True)
        report["same_account"] = got
        print(f"same account: B {got['b_seconds']} s ({got['b_ratio']}× ideal "
              f"{got['b_ideal_seconds']} s); account use {got['account_use']} of the rate, "
              f"{got['over_rate']} over", flush=True)  # fmt: skip
        if got["b_ratio"] > 2.5:
            failures.append(f"same account: B took {got['b_ratio']}× its ideal")
        if got["account_use"] < 0.9 or got["over_rate"]:
            failures.append(f"same account: use {got['account_use']}, {got['over_rate']} over")
    if case in ("ten", "all"):
        got = await ten_accounts()
        report["ten_accounts"] = got
        for rate, r in got.items():
            print(f"ten accounts: {rate:>3}/s took {r['seconds']} s, ideal {r['ideal']} s "
                  f"({r['ratio']}×)", flush=True)  # fmt: skip
            if r["ratio"] > 1.2:
                failures.append(f"ten accounts: {rate}/s took {r['ratio']}× its ideal")
    print(f"written {save('fair', {**report, 'failures': failures})}")
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--case", choices=("two", "same", "ten", "all"), default="all")
    sys.exit(uvloop.run(main(p.parse_args().case)))
