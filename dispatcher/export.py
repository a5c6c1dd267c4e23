"""Results as the files people open: CSV rows (times in ISO 8601 UTC) and JSON lines.

One place for the format, so ``results --csv`` and the HTTP API write the same file.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import orjson

from dispatcher.model import ROW_FIELDS, Result

#: Result fields that hold Unix milliseconds: ISO 8601 UTC in the CSV.
TIME_FIELDS = frozenset({"sent_at", "status_at"})
CSV_HEADER = ("index", *ROW_FIELDS, "raw_status", "status_at")


def iso_ms(ms: object) -> str:
    """Unix milliseconds as ISO 8601 UTC (``2026-11-29T15:44:22.123Z``); "" for none."""
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return ""
    at = datetime.fromtimestamp(int(ms) / 1000, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def csv_row(r: Result) -> list[Any]:
    row = dict(zip(ROW_FIELDS, r.row(), strict=True))
    values: list[Any] = [
        *(iso_ms(v) if k in TIME_FIELDS else v for k, v in row.items()),
        r.raw_status,
        iso_ms(r.status_at),
    ]
    return [r.index, *("" if v is None else v for v in values)]


def csv_text(rows: list[list[Any]]) -> str:
    """Rows as CSV text (``\\r\\n`` line ends, as the csv module and spreadsheets write)."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def ndjson_line(r: Result) -> bytes:
    return orjson.dumps(r.as_dict()) + b"\n"
