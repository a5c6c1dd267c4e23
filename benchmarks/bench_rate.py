"""Rate use: how much of an account's configured rate four worker processes together use,
and that the provider never counts more, measured at the mock.

Cloud Aten and YCloud, one account each at ``--rate`` per second, four worker processes,
one campaign of ``--seconds`` × rate recipients per provider, sent at the same time. The
mock refuses (HTTP 429) and counts every request above the rate in any sliding one-second
window. Per provider: use = the messages the mock accepted per second, from its first to
its last, over the rate; the most it accepted in any one second; and the requests over.

Bounds (exit 1 if missed): use ≥ 0.95 and 0 over, for each provider.

    python -m benchmarks.bench_rate [--rate 100] [--seconds 30] [--processes 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.report import save
from benchmarks.rig import Rig
from dispatcher.model import Campaign

PROVIDERS = ("cloudaten", "ycloud")
FIRST = 447911000000
LIMIT_S = 600.0
MIN_USE = 0.95


def most_in_one_second(times: list[float]) -> int:
    """The most of ``times`` (seconds) in any sliding one-second window."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def measure(rate: float, seconds: float, processes: int) -> dict[str, Any]:
    n = int(rate * seconds)
    settings = {"rate_per_second": rate}
    with tempfile.TemporaryDirectory(prefix="dispatcher-rate-") as tmp:
        rig = Rig(Path(tmp), dict.fromkeys(PROVIDERS, settings))
        try:
            await rig.call("POST", "/_mock/settings",
                           {"rate_limits": [[p, rate] for p in PROVIDERS]})  # fmt: skip
            client = rig.client()
            numbers = [f"+{FIRST + i}" for i in range(n)]
            ids = [(await client.enqueue(Campaign(p, "rate", numbers))).id for p in PROVIDERS]
            rig.worker("--processes", str(processes))
            for cid in ids:
                st = await client.wait(cid, LIMIT_S)
                if st.counts != {"accepted": n}:
                    raise SystemExit(f"campaign {cid} did not finish: {st.as_dict()}")
            stats = (await rig.call("GET", "/_mock/stats"))["providers"]
            out: dict[str, Any] = {}
            for p in PROVIDERS:
                messages = await rig.call("GET", f"/_mock/messages?provider={p}")
                times = sorted(m["timestamp"] / 1000 for m in messages)
                span = times[-1] - times[0]
                out[p] = {
                    "recipients": n,
                    "accepted": stats[p]["accepted"],
                    "over": stats[p]["over_rate"],
                    "use": round((len(times) - 1) / span / rate, 4),
                    "most_in_one_second": most_in_one_second(times),
                    "seconds": round(span, 2),
                }
            await client.redis.aclose()
        finally:
            rig.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--processes", type=int, default=4)
    args = p.parse_args()
    got = uvloop.run(measure(args.rate, args.seconds, args.processes))
    failures = []
    for provider, r in got.items():
        print(f"{provider:<10} {args.processes} processes at {args.rate:g}/s: use {r['use']:.3f}, "
              f"at most {r['most_in_one_second']} in any second, {r['over']} over, "
              f"{r['accepted']} accepted in {r['seconds']} s", flush=True)  # fmt: skip
        if r["use"] < MIN_USE or r["over"] or r["accepted"] != r["recipients"]:
            failures.append(f"{provider}: use {r['use']}, {r['over']} over")
    report = {"benchmark": "rate", "rate": args.rate, "processes": args.processes,
              "providers": got, "failures": failures}  # fmt: skip
    print(f"written {save('rate', report)}")
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
