"""Answers that stream: a campaign's results, and its progress as server-sent events.

Results are written as they are read from Redis, a few hundred rows a write, so a
million-recipient campaign costs the server a batch of memory, not the file. ``after``
resumes a download where a reader stopped (the last ``index`` it has); the CSV header is
written only on a first request, so resumed pieces append to one file.

The event stream sends the campaign's status at once, then whenever it changes (woken by
the events stream the workers write, and at least every few seconds), a comment line as a
heartbeat so proxies keep the connection, and ``event: end`` once the campaign reached
``until`` (``done`` by default, or ``sent``) or was cancelled. A paused campaign keeps its
stream open: it may be resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from dispatcher.api.state import CLIENT
from dispatcher.export import CSV_HEADER, csv_row, csv_text, ndjson_line
from dispatcher.model import CampaignError, CampaignState, CampaignStatus
from dispatcher.store import as_str

log = logging.getLogger("dispatcher.api")

#: Rows per write of a results download.
ROWS_PER_WRITE = 500
#: At most this long between two status reads, and between heartbeats.
REFRESH_S = 5.0
HEARTBEAT_S = 15.0
#: At least this long between two status reads while events pour in.
MIN_INTERVAL_S = 0.25


def _int(request: web.Request, name: str, default: int, low: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CampaignError(name, "must be a whole number") from None
    if value < low:
        raise CampaignError(name, f"must be at least {low}")
    return value


def _format(request: web.Request) -> str:
    given = request.query.get("format")
    if given is None:
        return "csv" if "text/csv" in request.headers.get("Accept", "") else "ndjson"
    if given not in ("ndjson", "csv"):
        raise CampaignError("format", "must be ndjson or csv")
    return given


async def results(request: web.Request) -> web.StreamResponse:
    client, cid = request.app[CLIENT], request.match_info["cid"]
    fmt = _format(request)
    after = _int(request, "after", -1, -1)
    limit = _int(request, "limit", 0, 1) if "limit" in request.query else None
    await client.status(cid)  # a 404 before the stream starts
    response = web.StreamResponse()
    if fmt == "csv":
        response.content_type = "text/csv"
        response.charset = "utf-8"
    else:
        response.content_type = "application/x-ndjson"
    await response.prepare(request)
    rows: list[Any] = []
    if fmt == "csv" and after < 0:  # a first piece: a resumed one appends to the file
        rows.append(list(CSV_HEADER))
    written = 0
    async for r in client.results(cid, after=after):
        rows.append(csv_row(r) if fmt == "csv" else r)
        written += 1
        if len(rows) >= ROWS_PER_WRITE:
            await response.write(_encode(rows, fmt))
            rows = []
        if limit is not None and written >= limit:
            break
    if rows:
        await response.write(_encode(rows, fmt))
    await response.write_eof()
    return response


def _encode(rows: list[Any], fmt: str) -> bytes:
    if fmt == "csv":
        return csv_text(rows).encode()
    return b"".join(ndjson_line(r) for r in rows)


def _until(request: web.Request) -> str:
    until = request.query.get("until", "done")
    if until not in ("sent", "done"):
        raise CampaignError("until", "must be sent or done")
    return until


def _ended(st: CampaignStatus, until: str) -> bool:
    return st.state == CampaignState.CANCELLED or st.done or (until == "sent" and st.sent)


class Wakeups:
    """One reader of each of the workers' events streams (one a partition, keys.py) for
    every open event stream of the process: each waits on an asyncio event, not on a Redis
    connection of its own."""

    def __init__(self, redis: Any, streams: list[str]) -> None:
        self.redis = redis
        self.streams = streams
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def wait(self, seconds: float) -> None:
        """Until the next event, at most ``seconds``."""
        if not self._tasks or any(t.done() for t in self._tasks):
            await self.close()
            self._tasks = [asyncio.create_task(self._read(s), name="api-events")
                           for s in self.streams]  # fmt: skip
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)

    async def _read(self, stream: str) -> None:
        last: Any = await self.redis.xrevrange(stream, count=1)
        cursor = as_str(last[0][0]) if last else "0-0"
        while True:
            try:
                # A second at most: well inside the client's socket timeout.
                got: Any = await self.redis.xread({stream: cursor}, count=1000, block=1000)
            except RedisError as exc:
                log.warning("api: reading the events stream failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            entries = [e for _name, batch in got or [] for e in batch]
            if entries:
                cursor = as_str(entries[-1][0])
                changed, self._changed = self._changed, asyncio.Event()
                changed.set()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


WAKEUPS = web.AppKey("wakeups", Wakeups)


async def events(request: web.Request) -> web.StreamResponse:
    client, cid = request.app[CLIENT], request.match_info["cid"]
    wakeups = request.app[WAKEUPS]
    until = _until(request)
    st = await client.status(cid)  # a 404 before the stream starts
    response = web.StreamResponse(
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.content_type = "text/event-stream"
    await response.prepare(request)
    sent: dict[str, Any] | None = None
    number = 0
    beat = time.monotonic()
    try:
        while True:
            now = st.as_dict()
            if now != sent:
                number += 1
                await response.write(_event("status", now, number))
                sent = now
                beat = time.monotonic()
            if _ended(st, until):
                await response.write(_event("end", {"id": cid, "state": st.state}, number + 1))
                break
            if time.monotonic() - beat >= HEARTBEAT_S:
                await response.write(b": keep-alive\n\n")
                beat = time.monotonic()
            started = time.monotonic()
            await wakeups.wait(REFRESH_S)
            # A burst of events costs one status read.
            await asyncio.sleep(max(0.0, MIN_INTERVAL_S - (time.monotonic() - started)))
            st = await client.status(cid)
    except ConnectionResetError:
        return response  # the reader went away
    await response.write_eof()
    return response


def _event(name: str, data: Any, number: int) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (number, name.encode(), orjson.dumps(data))
