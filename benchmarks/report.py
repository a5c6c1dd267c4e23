"""Where every benchmark writes its figures: one JSON file a run under benchmarks/results/,
named for the benchmark and the time, so runs can be compared side by side later."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).resolve().parent / "results"


def save(name: str, report: dict[str, Any]) -> Path:
    """Write ``report`` as ``results/<name>-<local time>.json``; its path."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return out
