"""bench_send's figures: the medians over its rounds, the ratios, and the table it prints."""

from __future__ import annotations

import statistics
from typing import Any


def peer_medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A peer's medians over the rounds it finished, and how many it did not."""
    done = [r for r in runs if "failed" not in r]
    out: dict[str, Any] = {
        k: round(statistics.median(r[k] for r in done), 3) for k in (done[0] if done else {})
    }
    out["failed_rounds"] = len(runs) - len(done)
    return out


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds (the rounds themselves kept beside)."""
    first = rounds[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        if key == "peers":
            out["peers"] = {peer: peer_medians([r["peers"][peer] for r in rounds])
                            for peer in value}  # fmt: skip
        elif key in ("mock_accepted", "mock_repeated", "largest_batch"):
            out[key] = max(r[key] for r in rounds) if key != "mock_accepted" else min(
                r[key] for r in rounds)  # fmt: skip
        else:
            out[key] = round(statistics.median(r[key] for r in rounds), 3)
    out["ratio"] = round(out["dispatcher_rps"] / out["bare_client_rps"], 3)
    out["send_ratio"] = round(out["dispatcher_send_rps"] / out["bare_client_rps"], 3)
    out["cpu_ratio"] = round(out["dispatcher_cpu_us"] / out["bare_cpu_us"], 3)
    if "bare_lean_rps" in out:  # the same bare client on our own HTTP/1.1 pool
        out["lean_ratio"] = round(out["dispatcher_rps"] / out["bare_lean_rps"], 3)
        out["lean_cpu_ratio"] = round(out["dispatcher_cpu_us"] / out["bare_lean_cpu_us"], 3)
    if any("rps" in p for p in out["peers"].values()):
        fastest = max(p["rps"] for p in out["peers"].values() if "rps" in p)
        out["vs_fastest_peer"] = round(out["dispatcher_rps"] / fastest, 3)
    out["rounds"] = rounds
    return out


def print_table(n: int, conc: int, rounds: int, report: dict[str, Any]) -> None:
    print(
        f"\n{n:,} recipients per provider, concurrency {conc}, one client process each, "
        f"medians of {rounds} interleaved round(s); end to end (enqueue to last result)"
    )
    print(f"{'system':<20}{'recipients/s':>14}{'× bare':>8}{'CPU µs/rcpt':>13}{'× bare':>8}")
    for provider, r in report.items():
        bare_rps, bare_cpu = r["bare_client_rps"], r["bare_cpu_us"]
        ours = r["dispatcher_rps"], r["dispatcher_cpu_us"]
        rows = [(f"{provider} bare client", bare_rps, bare_cpu)]
        if "bare_lean_rps" in r:
            rows.append((f"{provider} bare, lean", r["bare_lean_rps"], r["bare_lean_cpu_us"]))
        rows.append((f"{provider} dispatcher", *ours))
        rows += [(f"{provider} {peer}", p["rps"], p["cpu_us"])
                 for peer, p in r["peers"].items() if "rps" in p]  # fmt: skip
        for name, rps, cpu in rows:
            print(
                f"{name:<20}{rps:>14,.0f}{rps / bare_rps:>8.2f}{cpu:>13.1f}{cpu / bare_cpu:>8.2f}"
            )
        for peer, p in r["peers"].items():
            if p["failed_rounds"]:
                print(f"{'':<20}{peer}: {p['failed_rounds']} round(s) failed (see the JSON)")
        if "lean_ratio" in r:
            print(f"{'':<20}dispatcher / bare on our HTTP pool: {r['lean_ratio']:.2f}× "
                  f"(CPU {r['lean_cpu_ratio']:.2f}×)")  # fmt: skip
        if "vs_fastest_peer" in r:
            print(f"{'':<20}dispatcher / fastest peer: {r['vs_fastest_peer']:.2f}×")
        if "dispatcher_after_cpu_us" in r:
            print(f"{'':<20}worker once all sent: {r['dispatcher_after_cpu_us']:.1f} µs/rcpt "
                  f"more CPU, RSS {r['worker_rss_mb']:.0f} MB")  # fmt: skip
