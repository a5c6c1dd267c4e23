"""Writing what a chunk's run came to: its answered results while it still sends (so
that a crash leaves little of unknown fate), then its settlement, riding out a Redis
outage. One script does each write (queue.py); the worker loop is worker.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from dispatcher import answers, chunkrun, logs, metrics
from dispatcher.aio import checkpoint
from dispatcher.chunkrun import ChunkRun
from dispatcher.keys import Keys
from dispatcher.model import Result
from dispatcher.providers.base import Verdict
from dispatcher.providers.capabilities import ListPolling, ReportsById, capability
from dispatcher.queue import REDIS_ERRORS, Lease, Queue, Recorded, Settle, Track
from dispatcher.unknown import UnknownStore

log = logging.getLogger("dispatcher.worker")
MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
RECORD_PATIENCE_S = 120.0  # how long a chunk's results wait for Redis to come back
FLUSH_EVERY_S = 0.25  # a sending chunk writes its answered results at least this often


def account_pause(lease: Lease, rec: Recorded, reason: str, provider: str, account: str) -> None:
    """An account-level error (a refused key, a missing account) pauses the campaign: one
    line, from the worker whose record paused it; its other chunks that hit the same error
    are only held."""
    if rec.paused:
        logs.event("paused", lease.campaign_id, reason, level=logging.ERROR, provider=provider,
                   account=account, reason=reason, cause="account_error")  # fmt: skip
    else:
        log.debug("campaign %s chunk %d: held (%s)", lease.campaign_id, lease.chunk, reason)


def track(run: ChunkRun) -> Track:
    """What the record script keeps for reports to come: the message-id index for codecs
    whose reports name only the id, the open list for list polling."""
    listed = capability(run.codec, ListPolling) is not None
    return Track(
        run.account.name,
        index_messages=listed or capability(run.codec, ReportsById) is not None,
        list_open=listed,
        kind=run.codec.kind,
    )


class Recording:
    def __init__(self, queue: Queue, keys: Keys, unknown: UnknownStore) -> None:
        self.queue = queue
        self.keys = keys
        self.unknown = unknown

    async def record(
        self, lease: Lease, results: Sequence[Result], *args: Any, **kwargs: Any
    ) -> Recorded:
        """Record and settle a chunk, riding out a Redis outage for up to RECORD_PATIENCE_S.

        Giving up leaves the entry pending: a successor takes it over, parking what this
        attempt was authorised to send, so a long outage costs time, not duplicates.
        """
        delay = MIN_BACKOFF_S
        deadline = time.monotonic() + RECORD_PATIENCE_S
        while True:
            try:
                rec = await self.queue.record(lease, results, *args, **kwargs)
            except REDIS_ERRORS as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning(
                    "campaign %s chunk %d: recording failed (%s); retrying",
                    lease.campaign_id,
                    lease.chunk,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            if not rec.gone:  # counted per chunk, one tally of its statuses
                provider = self.keys.parse_queue(lease.stream)[0]
                metrics.recorded(provider, answers.tally(results))
            return rec

    def maybe_flush(self, run: ChunkRun) -> None:
        """Write answered results while the chunk is still sending, so that a crash leaves
        little of unknown fate: at most every FLUSH_EVERY_S, and no answer waits longer
        than that (a deferred call writes it if no other answer comes). Not once every
        recipient is answered: the settlement writes them next. A batch provider's packets
        answer within milliseconds of each other; a write for each cost more than the
        packet's own bookkeeping, for no safety a quarter of a second does not give."""
        if run.stopped or run.settling or len(run.outcomes) == len(run.recipients):
            return
        if run.flushing is not None and not run.flushing.done():
            return  # it looks again when it ends
        wait = run.last_flush + FLUSH_EVERY_S - time.monotonic()
        if wait > 0:
            if run.flush_later is None:
                loop = asyncio.get_running_loop()
                run.flush_later = loop.call_later(wait, self._flush_due, run)
            return
        todo = [
            p for p, o in run.outcomes.items()
            if p not in run.flushed and o.verdict in (Verdict.OK, Verdict.PERMANENT)
        ]  # fmt: skip
        if todo:
            run.last_flush = time.monotonic()
            run.flushing = asyncio.create_task(self._flush(run, todo, len(run.outcomes)))

    def _flush_due(self, run: ChunkRun) -> None:
        run.flush_later = None
        self.maybe_flush(run)

    async def _flush(self, run: ChunkRun, positions: list[int], answered: int) -> None:
        """One progress write; then another, FLUSH_EVERY_S later, if more than ``answered``
        have answered meanwhile or this one failed."""
        try:
            written = await self._progress(run, positions)
        finally:
            run.flushing = None
        if not written or len(run.outcomes) > answered:
            self.maybe_flush(run)

    async def _progress(self, run: ChunkRun, positions: list[int]) -> bool:
        try:
            results = chunkrun.results(run, positions)[0]
            rec = await self.queue.record(
                run.lease, results, Settle.KEEP,
                token=run.permits.token, track=track(run),
            )  # fmt: skip
        except REDIS_ERRORS as exc:
            log.debug("%s: progress not written yet (%s)", run.where(), exc)
            return False
        checkpoint()
        if not rec.gone:
            metrics.recorded(run.account.provider.name, answers.tally(results))
        run.flushed.update(positions)
        if rec.gone and not run.gone:
            log.warning("%s: the campaign is gone; sending nothing more", run.where())
            run.gone = True
        elif rec.lost and not run.lost:
            log.warning("%s: lease lost to another worker; sending nothing more", run.where())
            run.lost = True
        return True

    async def settle(self, run: ChunkRun) -> None:
        run.settling = True  # no progress write starts from here: this one writes it all
        if run.flush_later is not None:
            run.flush_later.cancel()
            run.flush_later = None
        if run.flushing is not None:
            with contextlib.suppress(Exception):
                await run.flushing
        how = chunkrun.settlement(run)
        if how.mode == Settle.DROP:
            await self.queue.drop(run.lease)
            return
        flushed = run.flushed
        todo = [p for p in run.outcomes if p not in flushed] if flushed else run.outcomes
        results, dead = chunkrun.results(run, todo)
        parks = [] if run.lost else chunkrun.parks(run)
        rec = await self.record(
            run.lease,
            results,
            how.mode,
            token=run.permits.token,
            dead=dead,
            reason=how.reason,
            delay_s=how.delay_s,
            track=track(run),
            parks=parks,
            handed=run.handed,
        )
        provider = run.account.provider.name
        if how.mode == Settle.HOLD and how.reason:
            account_pause(run.lease, rec, how.reason, provider, run.account.name)
        if dead and not rec.gone:
            metrics.DEAD.labels(provider).inc(len(dead))
        if parks and not (rec.gone or rec.lost):
            metrics.parked(provider, [p.reason for p in parks])
        if rec.gone:
            await self.queue.drop(run.lease)
        elif rec.lost and how.mode != Settle.KEEP:
            log.warning("%s: lease lost before it settled; its answers are recorded", run.where())
        elif parks:
            number = {r.index: r.number for r in run.recipients}
            await self.unknown.settle_reported(
                run.lease.campaign_id,
                run.account.provider.name,
                {p.index: number[p.index] for p in parks},
            )
            why = Counter(p.reason for p in parks)
            log.warning(
                "%s: %d recipient(s) parked, their fate unknown (%s); settling them from "
                "what %s says", run.where(), len(parks),
                ", ".join(f"{w} {n}" for w, n in sorted(why.items())), run.account.provider.name,
            )  # fmt: skip
