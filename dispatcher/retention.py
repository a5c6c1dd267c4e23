"""Retention: a finished campaign leaves Redis for an archive file once its days are over.

**Finished**: every recipient has a send result and a final status (``done``); or the
campaign was cancelled and every recipient has a result (the unsent ones ``cancelled``):
reports still due for what went out before the cancel are dropped once it is archived,
as any report about a campaign we no longer hold.

**When**: meta ``done_at`` (Unix ms) is set once, by lua.PROGRESS, when a result finishes
the campaign. Where nothing set it (a delivery report finished it, every recipient was
invalid, it was cancelled after its last result, it finished before this release), the
sweep sets it the first time it finds the campaign finished: its ``created_at`` if it had
nothing to send (done at enqueue), else that moment, so never earlier than the truth.
``retry`` clears it. The campaign is due ``retention_days`` (meta: the campaign's, else
the settings') after ``done_at``; 0 is at once.

**Steps**, each touching one Redis Cluster slot and safe to repeat, in an order where a
crash at any point loses nothing and leaves nothing behind for good:

1. write the archive file, atomically (archive.py); skipped when one is there whose
   counters match the campaign's (a crash after this step);
2. trim the global indexes: the ``msgidx`` entries of its message ids (only those still
   naming it), its members of the ``open``, ``unknown``, ``batches`` and ``responses``
   sets of its provider and account, its ``idem`` key if that still names it; one forced
   while unfinished also leaves ``ready``, ``delayed`` and ``inflight``;
3. delete every ``{cid}`` key in one UNLINK (Keys.campaign_keys): readers switch from
   Redis to the file at that instant (Store reads the file once the meta is gone);
4. remove it from ``campaigns``, last: a sweep that finds a member with no meta and an
   archive file only does this step.

A crash before 1 completes leaves a temp file (removed by a later write) and the campaign
as it was; between 1 and 4 the next sweep finishes the job. Sweeps walk ``campaigns`` by
rank from a shared cursor (``retention:cursor``), bounded per pass (:data:`CHECK_PER_PASS`,
:data:`ARCHIVE_PER_PASS`); workers run one every ``retention_sweep_seconds`` under the lock
``retention:lock``, one process at a time.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from dispatcher import logs, rows
from dispatcher.aio import checkpoint
from dispatcher.archive import Archive, archived_meta, header_for
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError
from dispatcher.keys import DEFAULT_LANE, Keys, parse_batch_member
from dispatcher.model import CampaignState
from dispatcher.msgindex import MessageIndex
from dispatcher.store import REDIS_ERRORS, Store, as_str, now_ms

log = logging.getLogger("dispatcher.retention")
DAY_MS = 86_400_000
CHECK_PER_PASS = 1000  # campaigns one pass looks at
ARCHIVE_PER_PASS = 20  # campaigns one pass archives
READ_BATCH = 200  # campaigns whose meta one pipeline reads
SCAN_COUNT = 1000
#: The meta fields the sweep reads to decide.
WATCHED = ("total", "recorded", "final", "state", "done_at", "retention_days", "created_at",
           "chunks")  # fmt: skip
#: What a pass survives, logged: Redis away, an archive that cannot be written.
SWEEP_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, DispatcherError)
#: What must not change while an archive is written (else it is written again later).
COUNTERS = ("total", "recorded", "final", "state")

_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
#: KEYS[1]: meta; ARGV[1]: when. Note when it finished unless known; nothing if it is gone
#: (an HSETNX alone would bring back a meta with one field). Returns done_at or nil.
_STAMP = """
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then return false end
redis.call('HSETNX', KEYS[1], 'done_at', ARGV[1])
return redis.call('HGET', KEYS[1], 'done_at')
"""


class RetentionError(DispatcherError):
    """A campaign that cannot be archived or purged as asked; the message names it."""


class NotFinished(RetentionError):
    """Archiving or purging it needs ``force``: it may still send or record."""


class NoSuchCampaign(RetentionError):
    def __init__(self, cid: str) -> None:  # the words of client.CampaignNotFound
        super().__init__(f"no campaign {cid!r}")
        self.campaign_id = cid


def finished(m: Mapping[str, str]) -> bool:
    """Nothing more will be sent or recorded for it: see the module docstring."""
    if not m.get("total"):
        return False
    total, recorded, final = (int(m.get(f) or 0) for f in ("total", "recorded", "final"))
    return recorded >= total and (final >= total or m.get("state") == CampaignState.CANCELLED)


def _glob(text: str) -> str:
    """``text`` matched literally in a SCAN MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


@dataclass(slots=True)
class Swept:
    """What a sweep did, and where the next goes on (``wrapped``: it reached the end)."""

    checked: int = 0
    archived: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # id → why
    next: int = 0
    wrapped: bool = False


class Retention:
    def __init__(self, redis: Redis, settings: Settings, store: Store | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys.of(settings, redis)
        own = store.archive if store is not None else None
        self.archive = own or Archive(settings.archive_dir, settings.prefix)
        self.store = store if store is not None else Store(redis, self.keys, archive=self.archive)
        self.index = MessageIndex(redis, self.keys)
        self._delete_if = redis.register_script(_DELETE_IF)
        self._extend_if = redis.register_script(_EXTEND_IF)
        self._stamp = redis.register_script(_STAMP)
        self._token = secrets.token_hex(8)
        self._hold_ms = 0  # while a worker's pass holds the lock: extend it this far

    # -- when ------------------------------------------------------------------------------

    async def due_at(self, cid: str, m: Mapping[str, str]) -> int | None:
        """When the campaign is due for its archive (Unix ms); None while unfinished."""
        if not finished(m):
            return None
        done = m.get("done_at")
        if not done:
            nothing_sent = int(m.get("chunks") or 0) == 0
            when = int(m.get("created_at") or 0) if nothing_sent else now_ms()
            done = as_str(await self._stamp(keys=[self.keys.meta(cid)], args=[when or now_ms()]))
            if not done:
                return None  # gone meanwhile
        days = m.get("retention_days")
        return int(done) + (int(days) if days else self.settings.retention_days) * DAY_MS

    # -- the sweep -------------------------------------------------------------------------

    async def sweep(self, check: int = CHECK_PER_PASS, most: int = ARCHIVE_PER_PASS) -> Swept:
        """One bounded pass from the shared cursor, which it moves on."""
        start = int(await self.redis.get(self.keys.retention_cursor) or 0)
        swept = await self._walk(start, check, most)
        await self.redis.set(self.keys.retention_cursor, 0 if swept.wrapped else swept.next)
        return swept

    async def archive_due(self) -> Swept:
        """Every campaign due now, the whole of ``campaigns`` walked (the command)."""
        total = Swept()
        while not total.wrapped:
            swept = await self._walk(total.next, CHECK_PER_PASS, CHECK_PER_PASS)
            total.checked += swept.checked
            total.archived += swept.archived
            total.failed.update(swept.failed)
            total.next, total.wrapped = swept.next, swept.wrapped
        return total

    async def _walk(self, start: int, check: int, most: int) -> Swept:
        out = Swept(next=start)
        while out.checked < check and len(out.archived) < most:
            got: Any = await self.redis.zrange(
                self.keys.campaigns, out.next, out.next + READ_BATCH - 1
            )
            ids = [as_str(c) for c in got]
            if not ids:
                out.wrapped = True
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for cid in ids:
                    pipe.hmget(self.keys.meta(cid), list(WATCHED))
                metas = await pipe.execute()
            removed = consumed = 0  # ranks gone from before the cursor; ranks looked at
            for cid, values in zip(ids, metas, strict=True):
                if out.checked >= check or len(out.archived) >= most:
                    break  # the next pass starts here
                consumed += 1
                out.checked += 1
                m = {f: as_str(v) for f, v in zip(WATCHED, values, strict=True) if v is not None}
                if "total" not in m:
                    # Archived, and a crash came before step 4; or no meta at all: an enqueue
                    # that never published, its staged keys expired (staging.py). One still
                    # staging has a meta (state staging) and is left alone.
                    if not m or self.archive.exists(cid):
                        await self.forget(cid)
                        removed += 1
                    continue
                due = await self.due_at(cid, m)
                if due is None or due > now_ms():
                    continue
                try:
                    await self.archive_campaign(cid)
                except DispatcherError as exc:
                    log.warning("campaign %s: not archived: %s", cid, exc)
                    out.failed[cid] = str(exc)
                    continue
                out.archived.append(cid)
                removed += 1
                if self._hold_ms:
                    await self._extend_if(
                        keys=[self.keys.retention_lock], args=[self._token, self._hold_ms]
                    )
            out.next += consumed - removed
        return out

    async def run(self, every_s: float) -> None:
        """The worker's duty: a pass every ``every_s`` across all processes, until cancelled."""
        hold_ms = max(1, int(every_s * 1000))
        while True:
            await asyncio.sleep(every_s)
            try:
                lock = self.keys.retention_lock
                if await self.redis.set(lock, self._token, nx=True, px=hold_ms):
                    self._hold_ms = hold_ms
                    swept = await self.sweep()
                    if swept.archived or swept.failed:
                        log.info("retention: %d checked, %d archived, %d failed", swept.checked,
                                 len(swept.archived), len(swept.failed))  # fmt: skip
            except SWEEP_ERRORS as exc:
                log.warning("retention sweep failed: %s", exc)
            except Exception:
                log.exception("retention sweep failed")
            finally:
                self._hold_ms = 0
            checkpoint()

    # -- one campaign ------------------------------------------------------------------------

    async def archive_campaign(self, cid: str, *, force: bool = False) -> Path:
        """Steps 1 to 4 for one campaign, whatever its retention; a campaign not finished
        only with ``force`` (what it has not sent then never goes). Returns the file."""
        meta = await self.store.meta(cid)
        if "total" not in meta:
            if not self.archive.exists(cid):
                raise NoSuchCampaign(cid)
            await self.forget(cid)  # archived already: a crash may have come before step 4
            return self.archive.path(cid)
        if not force and not finished(meta):
            raise NotFinished(f"campaign {cid} is not finished ({_progress(meta)})")
        path = await self.write(cid, meta)
        await self.trim(cid, meta, self._redis_message_ids(cid, meta), work=not finished(meta))
        await self.drop(cid, meta)
        await self.forget(cid)
        logs.event("archived", cid, str(path), provider=meta.get("provider"),
                   account=meta.get("account"))  # fmt: skip
        return path

    async def write(self, cid: str, meta: Mapping[str, str]) -> Path:
        """Step 1: the archive file, unless one matching the campaign's counters is there."""
        header = await self.archive.header(cid)
        if header is not None and _same(header["meta"], meta):
            return self.archive.path(cid)
        status = await self.store.status(cid)
        if status is None or status.archived_at is not None:  # gone, or archived meanwhile
            raise RetentionError(f"campaign {cid} left Redis while it was being archived")
        at = now_ms()
        kept = archived_meta({**meta, "archived_at": str(at)})
        header = header_for(
            cid, self.keys.prefix, replace(status, share=None, archived_at=at), kept
        )

        async def unchanged() -> None:
            if not _same(kept, await self.store.meta(cid)):
                raise RetentionError(f"campaign {cid} changed while it was archived; try again")

        return await self.archive.write(cid, header, self.store.results(cid), unchanged)

    async def trim(
        self, cid: str, meta: Mapping[str, str], message_ids: AsyncIterator[str], *, work: bool
    ) -> None:
        """Step 2: the campaign out of every global index (``work``: the queues' too)."""
        k = self.keys
        provider, account = meta["provider"], meta.get("account") or "default"
        batch: list[str] = []
        async for mid in message_ids:
            batch.append(mid)
            if len(batch) >= SCAN_COUNT:
                await self.index.forget(provider, cid, batch)
                batch = []
        if batch:
            await self.index.forget(provider, cid, batch)
        part = k.part(cid)
        for listed in sorted({provider, k.listed(provider, meta.get("kind") or "sms")}):
            await self.redis.zrem(part.open(listed, account), cid)
            await self.redis.zrem(part.unknown(listed, account), cid)
            for key in (part.batches(listed, account), part.responses(listed, account)):
                await self._zrem_matching(
                    key, f"*|{_glob(cid)}|*", lambda m: parse_batch_member(m)[1] == cid
                )
        if meta.get("idempotency_key"):
            await self._delete_if(keys=[k.idempotency(meta["idempotency_key"])], args=[cid])
        if work:
            lane = meta.get("lane") or DEFAULT_LANE
            await self.redis.zrem(part.ready_campaigns(provider, lane, account), cid)
            for key in (part.delayed(provider, lane), part.inflight(provider, account)):
                await self._zrem_matching(key, f"{_glob(cid)}|*", lambda m: m.split("|")[0] == cid)

    async def drop(self, cid: str, meta: Mapping[str, str]) -> None:
        """Step 3: every ``{cid}`` key, in one call (one slot)."""
        entries = int(meta.get("entries") or meta.get("total") or 0)
        await self.redis.unlink(*self.keys.campaign_keys(cid, entries))

    async def forget(self, cid: str) -> None:
        """Step 4: out of ``campaigns``."""
        await self.redis.zrem(self.keys.campaigns, cid)

    async def purge(self, cid: str, *, force: bool = False) -> bool:
        """Delete the campaign for good: its keys, index entries and archive file. One not
        finished only with ``force``. True if it had an archive file (now deleted)."""
        meta = await self.store.meta(cid)
        if "total" in meta:
            if not force and not finished(meta):
                raise NotFinished(f"campaign {cid} is not finished ({_progress(meta)})")
            await self.trim(cid, meta, self._redis_message_ids(cid, meta), work=not finished(meta))
            await self.drop(cid, meta)
        else:
            header = await self.archive.header(cid)
            listed = await self.redis.zscore(self.keys.campaigns, cid) is not None
            if header is None and not listed:
                raise NoSuchCampaign(cid)
            if header is not None:  # trimmed when archived; again, for any late index write
                meta = {n: v if isinstance(v, str) else orjson.dumps(v).decode()
                        for n, v in header["meta"].items()}  # fmt: skip
                mids = (str(r.message_id) async for r in self.archive.results(cid) if r.message_id)
                await self.trim(cid, meta, mids, work=False)
        await self.forget(cid)
        removed = await asyncio.to_thread(self.archive.remove, cid)
        logs.event("purged", cid, "keys, index entries" + (" and archive" if removed else ""),
                   provider=meta.get("provider"), account=meta.get("account"))  # fmt: skip
        return removed

    # -- helpers -----------------------------------------------------------------------------

    async def _redis_message_ids(self, cid: str, meta: Mapping[str, str]) -> AsyncIterator[str]:
        """The provider message ids its results and reports hold (rows.py's buckets)."""
        entries = int(meta.get("entries") or meta.get("total") or 0)
        k = self.keys
        for base, is_report in ((k.results(cid), False), (k.reports(cid), True)):
            for keys in _batched(rows.bucket_keys(base, entries), 64):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.hvals(key)
                    answers = await pipe.execute()
                for blob in (b for blobs in answers for b in blobs):
                    mid = (
                        rows.report_fields(blob)[5]
                        if is_report
                        else rows.unpack_row(0, None, blob).message_id
                    )
                    if mid:
                        yield str(mid)

    async def _zrem_matching(self, key: str, pattern: str, mine: Any) -> None:
        """ZREM the members of ``key`` that match ``pattern`` and ``mine(member)``."""
        scan = self.redis.zscan_iter(key, match=pattern, count=SCAN_COUNT)
        gone = [m for m in [as_str(member) async for member, _score in scan] if mine(m)]
        for part in _batched(gone, SCAN_COUNT):
            await self.redis.zrem(key, *part)


def _same(kept: Mapping[str, Any], meta: Mapping[str, str]) -> bool:
    """The counters an archive was written with are the campaign's now."""
    return all(str(kept.get(f, "")) == str(meta.get(f, "")) for f in COUNTERS)


def _progress(m: Mapping[str, str]) -> str:
    total, recorded, final = (int(m.get(f) or 0) for f in ("total", "recorded", "final"))
    return f"state {m.get('state')}, {total - recorded} of {total} without a result, " + (
        f"{total - final} without a final status"
    )


def _batched(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
