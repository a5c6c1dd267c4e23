"""benchmarks.plot draws from whichever result files exist, the newest of each kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks.plot import latest, plot

PNG = b"\x89PNG\r\n\x1a\n"
SEND: dict[str, Any] = {
    "benchmark": "send",
    "recipients": 100000,
    "rounds": 3,
    "providers": {
        "cloudaten": {
            "bare_client_rps": 7000.0, "dispatcher_rps": 6500.0, "ratio": 0.93,
            "peers": {"arq": {"rps": 5000.0}, "saq": {"rps": 5100.0}},
        },
        "cloudsms": {"bare_client_rps": 70000.0, "dispatcher_rps": 60000.0, "ratio": 0.86},
    },
}  # fmt: skip
MEMORY: dict[str, Any] = {
    "benchmark": "memory",
    "recipients": 1000,
    "provider": "cloudsms",
    "limits": {"peak_rss_mb": 150.0, "flatness": 0.1},
    "warmup_seconds": 1.0,
    "curve": [[0.0, 60.0, 0], [1.0, 80.0, 200], [2.0, 82.0, 700], [3.0, 81.5, 1000]],
}
RATE: dict[str, Any] = {
    "benchmark": "rate",
    "providers": {"cloudaten": {"use": 0.97, "over": 0}, "ycloud": {"use": 0.95, "over": 1}},
}


def write(folder: Path, name: str, data: dict[str, Any]) -> None:
    (folder / name).write_bytes(orjson.dumps(data))


def test_plot_writes_png_with_every_panel(tmp_path: Path) -> None:
    write(tmp_path, "send-20260101-000000.json", SEND)
    write(tmp_path, "memory-20260101-000000.json", MEMORY)
    write(tmp_path, "rate-20260101-000000.json", RATE)
    out = plot(tmp_path, tmp_path / "out" / "bench.png")
    assert out == tmp_path / "out" / "bench.png"
    data = out.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000


def test_missing_results_drop_their_panels(tmp_path: Path) -> None:
    write(tmp_path, "memory-20260101-000000.json", MEMORY)
    assert plot(tmp_path, tmp_path / "bench.png").read_bytes().startswith(PNG)


def test_latest_is_the_newest_by_name(tmp_path: Path) -> None:
    write(tmp_path, "send-20260101-000000.json", {**SEND, "recipients": 1})
    write(tmp_path, "send-20260102-000000.json", {**SEND, "recipients": 2})
    got = latest(tmp_path, "send")
    assert got is not None and got["recipients"] == 2
    assert latest(tmp_path, "rate") is None


def test_no_results_at_all_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        plot(tmp_path, tmp_path / "bench.png")
