"""Campaign records in Redis: status, results, wait (enqueue is staging.py).

The worker's side of the queue (leases, acknowledgement with results) is in ``queue.py``;
the key names of both are in ``keys.py``.
"""

from __future__ import annotations

import bisect
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from dispatcher import chunkblob, logs, rows
from dispatcher.admission import Admission
from dispatcher.archive import Archive
from dispatcher.errors import DispatcherError
from dispatcher.keys import DEFAULT_LANE, GROUP, Keys
from dispatcher.model import CampaignState, CampaignStatus, Result, Status

#: What a Redis outage looks like to a caller (redis-py's errors are not OSErrors).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
#: The events stream's approximate length: scripts get it as ``@MAXLEN@`` (lua.render).
EVENTS_MAXLEN = 100_000
ENQUEUE_ADMITS = 4  # chunks an enqueue admits itself
#: Bits a script returns for the transitions it made (lua.PROGRESS and the record script),
#: so that the one process whose call made a transition logs it (logs.py).
SENT, DONE, PAUSED = 1, 2, 4
#: Events that say a chunk's results were counted (lua.PROGRESS, unknown.py): alone they
#: never end a wait, since the one that crosses a total is named ``sent`` or ``done``.
PROGRESS_EVENTS = frozenset({"chunk", "progress", "settled"})


def now_ms() -> int:
    return int(time.time() * 1000)


def new_campaign_id() -> str:
    return secrets.token_hex(8)


def as_str(value: Any) -> str:
    """Redis replies come as bytes (or str, or None): as text."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _may_end(fields: dict[Any, Any], cid: str) -> bool:
    """Whether an events entry (bytes or, from a decoding client, str) is one of ``cid``'s
    that can end a wait."""

    def get(name: str) -> str:
        return as_str(fields.get(name.encode(), fields.get(name)))

    return get("c") == cid and get("e") not in PROGRESS_EVENTS


async def ensure_group(redis: Redis, stream: str) -> None:
    """Create the consumer group (and stream) once; from id 0 so nothing queued is missed."""
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class LayoutMismatch(DispatcherError, RuntimeError):
    """This process would name keys otherwise than the ones already in Redis."""


async def ensure_layout(redis: Redis, keys: Keys) -> None:
    """Record the partitions this prefix uses, or check them against the record: a process
    configured with other partitions would look for every campaign in the wrong place."""
    await redis.hsetnx(keys.layout, "partitions", keys.partitions)
    recorded = int(await redis.hget(keys.layout, "partitions") or keys.partitions)
    if recorded != keys.partitions:
        raise LayoutMismatch(
            f"partitions: this process uses {keys.partitions} but the campaigns under prefix "
            f"{keys.prefix!r} use {recorded}; set partitions = {recorded}"
        )


async def announce(redis: Redis, keys: Keys, cid: str, flags: int) -> None:
    """Log the ``sent`` and ``done`` transitions a script call of this process made
    (``flags``: :data:`SENT`, :data:`DONE`), with the campaign's counts. A Redis error
    here costs the counts, never the line."""
    if not flags & (SENT | DONE):
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.meta(cid), ["provider", "account", "total"])
            pipe.hgetall(keys.counts(cid))
            pipe.hgetall(keys.finals(cid))
            (provider, account, total), raw_counts, raw_finals = await pipe.execute()
    except REDIS_ERRORS:
        provider = account = total = None
        raw_counts = raw_finals = {}
    for bit, name, raw in ((SENT, "sent", raw_counts), (DONE, "done", raw_finals)):
        if flags & bit:
            counts = {as_str(s): int(n) for s, n in raw.items() if int(n)}
            logs.event(
                name, cid, f"{as_str(total) or '?'} recipients ({logs.tally(counts)})",
                counts=counts, provider=as_str(provider) or None, account=as_str(account) or None,
            )  # fmt: skip


def with_report(result: Result, report: bytes | None) -> Result:
    """A send result with the latest delivery report laid over it."""
    if report is None:
        return result
    status, raw, error_code, error, at, _mid = rows.report_fields(report)
    return replace(
        result,
        status=status,
        raw_status=raw,
        error_code=error_code or result.error_code,
        error=error or result.error,
        status_at=at,
    )


class Store:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        admission: Admission | None = None,
        archive: Archive | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.admission = admission
        #: Where status and results of campaigns gone from Redis are read back (retention.py).
        self.archive = archive

    async def meta(self, cid: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.keys.meta(cid))
        return {as_str(a): as_str(b) for a, b in raw.items()}

    async def status(self, cid: str) -> CampaignStatus | None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.meta(cid))
            pipe.hgetall(self.keys.counts(cid))
            pipe.hgetall(self.keys.finals(cid))
            raw_meta, raw_counts, raw_finals = await pipe.execute()
        if not raw_meta or b"total" not in raw_meta:
            # None, or only partial keys (Redis restarted without its data), or archived.
            return await self.archive.status(cid) if self.archive else None
        m = {as_str(a): as_str(b) for a, b in raw_meta.items()}
        counts = {as_str(a): int(b) for a, b in raw_counts.items() if int(b)}
        finals = {as_str(a): int(b) for a, b in raw_finals.items() if int(b)}
        parked = {a[2:]: int(b) for a, b in m.items() if a.startswith("u:") and int(b)}
        total = int(m["total"])
        state = m["state"]
        if sum(finals.values()) >= total:
            state = CampaignState.DONE.value
        elif state not in (CampaignState.PAUSED, CampaignState.CANCELLED):
            if sum(counts.values()) >= total:
                state = CampaignState.SENT.value
            elif int(m.get("start_at") or 0) > now_ms():
                state = CampaignState.SCHEDULED.value
        return CampaignStatus(
            share=await self._share(cid, m) if state == CampaignState.QUEUED else None,
            id=cid,
            provider=m["provider"],
            account=m["account"],
            state=state,
            total=total,
            counts=counts,
            created_at=int(m["created_at"]),
            duplicates=int(m.get("duplicates", 0)),
            reason=m.get("reason") or None,
            finals=finals,
            parked=parked,
        )

    async def _share(self, cid: str, m: dict[str, str]) -> float | None:
        """The campaign's share of its account's rate among the account's campaigns that
        still have chunks to admit in its lane (by weight); None when it has none left."""
        lane = m.get("lane") or DEFAULT_LANE
        key = self.keys.part(cid).ready_campaigns(m["provider"], lane, m.get("account", "default"))
        running = [as_str(c) for c in await self.redis.zrange(key, 0, 99)]
        if cid not in running:
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            for other in running:
                pipe.hget(self.keys.meta(other), "weight")
            weights = [int(w or 1) for w in await pipe.execute()]
        return weights[running.index(cid)] / sum(weights)

    async def results(self, cid: str, batch: int = 64, *, after: int = -1) -> AsyncIterator[Result]:
        """Every recipient in index order: its result, or ``pending`` while it has none;
        with ``after``, only the recipients after that index."""
        k = self.keys
        meta = await self.meta(cid)
        if "total" not in meta:
            if self.archive is not None:  # archived: read back from its file
                async for r in self.archive.results(cid, after=after):
                    yield r
            return
        chunks = int(meta["chunks"])
        raw_invalid = await self.redis.hget(k.chunks(cid), "invalid")
        invalid: list[int] = orjson.loads(raw_invalid) if raw_invalid else []
        inv_pos = bisect.bisect_right(invalid, after)

        async def invalid_upto(limit: int) -> list[Result]:
            nonlocal inv_pos
            stop = inv_pos
            while stop < len(invalid) and invalid[stop] < limit:
                stop += 1
            wanted = invalid[inv_pos:stop]
            inv_pos = stop
            if not wanted:
                return []
            got = await rows.hmget(self.redis, k.results(cid), wanted)
            return [
                rows.unpack_row(i, None, r) if r else Result(i, "", Status.INVALID)
                for i, r in zip(wanted, got, strict=True)
            ]

        for first in range(0, chunks, batch):
            numbers = [str(n) for n in range(first, min(first + batch, chunks))]
            blobs = await self.redis.hmget(k.chunks(cid), numbers)
            members = [
                m for blob in blobs if blob for m in chunkblob.decode(blob) if m.index > after
            ]
            if not members:
                continue
            indexes = [m.index for m in members]
            found, reports = await rows.hmget_many(
                self.redis, [k.results(cid), k.reports(cid)], indexes
            )
            for member, row, report in zip(members, found, reports, strict=True):
                for r in await invalid_upto(member.index):
                    yield r
                if row is None:
                    result = Result(member.index, member.number, Status.PENDING)
                else:
                    result = rows.unpack_row(member.index, member.number, row)
                yield with_report(result, report)
        for r in await invalid_upto(2**63):
            yield r

    async def wait(self, cid: str, seconds: float, *, final: bool = False) -> CampaignStatus | None:
        """Block until every recipient has a send result (with ``final``, a final status),
        or the campaign is paused, or ``seconds`` pass.

        Reads the events stream from the id seen *before* checking the status, so an event
        that lands between the check and the read is not missed. Each read blocks at most a
        second, well inside the client's socket timeout. The status is read again only on
        an event of this campaign that can end the wait, or once a second: a chunk's
        progress event cannot, and reading the status on each of them (a campaign of
        100,000 one-mobile recipients records 1,000 chunks) cost the waiting app about as
        much CPU as a tenth of the worker's.
        """
        deadline = time.monotonic() + seconds
        events = self.keys.part(cid).events
        last = await self.redis.xrevrange(events, count=1)
        cursor = as_str(last[0][0]) if last else "0-0"
        while True:
            st = await self.status(cid)
            checked = time.monotonic()
            if st is None or st.done or st.state == CampaignState.PAUSED:
                return st
            if st.sent and not final:
                return st
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return st
                got: Any = await self.redis.xread(
                    {events: cursor}, count=1000, block=max(1, int(min(left, 1.0) * 1000))
                )
                entries = [e for _stream, batch in got for e in batch]
                if entries:
                    cursor = as_str(entries[-1][0])
                if time.monotonic() - checked >= 1.0 or any(
                    _may_end(fields, cid) for _id, fields in entries
                ):
                    break
