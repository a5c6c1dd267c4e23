"""One picture of the latest benchmark runs, for the README and for comparing runs by eye.

Reads the newest ``send-*.json``, ``memory-*.json`` and ``rate-*.json`` under
benchmarks/results/ (a missing one only drops its panel) and writes ``bench.png`` beside
them: recipients per second per provider and system, the worker's RSS over a big campaign,
and each provider's use of its rate.

    python -m benchmarks.plot
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import orjson
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # no pyplot: no global state, no display, Agg canvas

from benchmarks.report import RESULTS

PANELS = ("send", "memory", "rate")
BASE_SYSTEMS = {
    "bare client": "bare_client_rps",
    "bare, our HTTP pool": "bare_lean_rps",  # HTTP providers only
    "dispatcher": "dispatcher_rps",
}


def latest(results_dir: Path, name: str) -> dict[str, Any] | None:
    """The newest ``<name>-<time>.json`` (the names sort by time, report.save), or None."""
    runs = sorted(results_dir.glob(f"{name}-*.json"), key=lambda p: p.name)
    if not runs:
        return None
    data: dict[str, Any] = orjson.loads(runs[-1].read_bytes())
    return data


def send_panel(ax: Axes, send: dict[str, Any]) -> None:
    """Grouped bars: one group per provider, one bar per system (ours, the bare client, and
    each peer the run measured)."""
    providers: dict[str, dict[str, Any]] = send.get("providers", {})
    peers = sorted({peer for r in providers.values() for peer in r.get("peers", {})})
    systems = [*BASE_SYSTEMS, *peers]
    names = list(providers)
    width = 0.8 / max(len(systems), 1)
    heights: list[float] = []
    for i, system in enumerate(systems):
        values = []
        for provider in names:
            r = providers[provider]
            if system in BASE_SYSTEMS:
                value = r.get(BASE_SYSTEMS[system])
            else:
                value = r.get("peers", {}).get(system, {}).get("rps")
            values.append(float(value) if value is not None else float("nan"))
        xs = [x + (i - (len(systems) - 1) / 2) * width for x in range(len(names))]
        ax.bar(xs, values, width, label=system)
        heights += [v for v in values if v > 0]
    ax.set_xticks(range(len(names)), names)
    if heights and max(heights) / min(heights) > 20:
        ax.set_yscale("log")  # the providers' ceilings differ by orders of magnitude
    title = f"send: {send.get('recipients', '?'):,} recipients"
    if "rounds" in send:
        title += f", medians of {send['rounds']} rounds"
    ax.set_title(title)
    ax.set_ylabel("recipients / s")
    ax.legend(fontsize="small")


def memory_panel(ax: Axes, memory: dict[str, Any]) -> None:
    """Worker RSS against time, recipients recorded on a second axis, and the bounds."""
    curve: list[list[float]] = memory.get("curve", [])
    seconds = [s[0] for s in curve]
    ax.plot(seconds, [s[1] for s in curve], color="tab:blue", label="worker RSS")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MB)", color="tab:blue")
    limit = memory.get("limits", {}).get("peak_rss_mb")
    if limit is not None:
        ax.axhline(limit, color="tab:red", linestyle="--", linewidth=1, label="peak limit")
    ax.set_ylim(0, max([float(limit or 0), *(s[1] for s in curve)], default=1.0) * 1.1)
    warmup = memory.get("warmup_seconds")
    if warmup is not None:
        ax.axvline(warmup, color="grey", linestyle=":", linewidth=1, label="warm-up end")
    ax.legend(loc="lower right", fontsize="small")
    recorded = ax.twinx()
    recorded.plot(seconds, [s[2] for s in curve], color="tab:green")
    recorded.set_ylabel("recipients recorded", color="tab:green")
    recorded.set_ylim(bottom=0)
    recorded.ticklabel_format(axis="y", style="plain")
    n = memory.get("recipients")
    title = f"worker memory: {n:,} recipients" if isinstance(n, int) else "worker memory"
    if memory.get("provider"):
        title += f" via {memory['provider']}"
    ax.set_title(title)


def rate_panel(ax: Axes, rate: dict[str, Any]) -> None:
    """Each provider's share of its configured rate used, and how often it went over."""
    providers: dict[str, dict[str, Any]] = rate.get("providers", {})
    names = list(providers)
    uses = [float(providers[p].get("use", float("nan"))) for p in names]
    bars = ax.bar(range(len(names)), uses, 0.6, color="tab:purple")
    ax.bar_label(bars, [f"over {providers[p].get('over', '?')}" for p in names], fontsize="small")
    ax.axhline(1.0, color="tab:red", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, max([1.15, *(u * 1.15 for u in uses if math.isfinite(u))]))
    ax.set_ylabel("share of the rate used")
    ax.set_title("rate use")


def plot(results_dir: Path, out: Path) -> Path:
    """Draw the panels whose results exist into ``out`` (PNG); its path. Raises
    FileNotFoundError when there is no result at all."""
    found = {name: data for name in PANELS if (data := latest(results_dir, name)) is not None}
    if not found:
        raise FileNotFoundError(f"no send, memory or rate results in {results_dir}")
    fig = Figure(figsize=(6.5 * len(found), 4.8), layout="constrained")
    axes = fig.subplots(1, len(found), squeeze=False)[0]
    draw = {"send": send_panel, "memory": memory_panel, "rate": rate_panel}
    for ax, (name, data) in zip(axes, found.items(), strict=True):
        draw[name](ax, data)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main() -> int:
    try:
        out = plot(RESULTS, RESULTS / "bench.png")
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
