"""Enqueue as a stream: a campaign's keys are written as its list is validated, then
published in one step.

A list of millions cannot be validated whole in memory and written in one transaction
(and on Redis Cluster a transaction may touch one hash slot only). So, every step a script
on one slot, the campaign's (``{cid}`` here; a partition's tag with partitions, keys.py):

1. **stage**: ``{cid}:meta`` gets ``state=staging`` (and nothing else: readers that find
   no ``provider`` or ``total`` see no campaign), then each batch of chunks, invalid
   results, their ranks and counts goes in one script call on the ``{cid}`` slot
   (staging_lua.py), which gives every key it writes ``staging_ttl_seconds`` to live,
   renewed as the stream goes on;
2. **idempotency** (after the meta, so a key never names a campaign that has none):
   ``SET idem:<key> cid NX EX``. A key held by a published campaign answers with it; by a
   campaign still staging, :class:`EnqueueInProgress`; by one whose meta is gone (a crashed
   enqueue), it is taken over (a script on that one key);
3. **checks** that need the whole list (empty, nothing valid, the balance): on failure the
   staged keys are deleted;
4. **pointers**: ``campaigns`` and the ready sets (each its own slot). Listing skips a
   campaign without a published meta; admission skips a ``staging`` one and drops one
   whose meta is gone;
5. **commit**: one script on the ``{cid}`` keys, if the meta is still ``staging`` (so not
   expired meanwhile): the meta's fields with ``state=queued`` (the moment it becomes
   visible) and PERSIST on every staged key;
6. after it, the ``done`` event of an all-invalid campaign, the log line, and the
   admission of its first chunks.

A crash anywhere before 5 leaves nothing visible, and every staged key expires; after 5 the
campaign is whole (a missing 6 is what workers and status recover from anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import orjson

from dispatcher import logs, rows
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError
from dispatcher.intake import Batch, Builder, Prepared
from dispatcher.model import Campaign, CampaignError, CampaignState, Enqueued, Status
from dispatcher.staging_lua import (
    COMMIT,
    EXTEND,
    RELEASE,
    STAGE,
    STAGING,
    TAKE,
    WRITE,
    write_call,
)
from dispatcher.store import (
    ENQUEUE_ADMITS,
    EVENTS_MAXLEN,
    REDIS_ERRORS,
    Store,
    as_str,
    ensure_group,
    ensure_layout,
    new_campaign_id,
    now_ms,
)

#: Recipients validated in one thread step, written in one script call meanwhile the next
#: is read.
STEP = 32_768
#: Takeovers of an idempotency key tried before giving up (each lost only to another taker).
CLAIM_TRIES = 10

Check = Callable[[Prepared], Awaitable[None]]
T = TypeVar("T")


class NothingToSend(CampaignError):
    """Every recipient is invalid (``Client.enqueue(..., allow_empty=False)``)."""


class EnqueueInProgress(CampaignError):
    """Another enqueue with the same idempotency key is still staging (HTTP 409)."""


class StagingLost(DispatcherError):
    """The staged keys expired (or Redis lost them) before the campaign was published."""


class Staging:
    """One campaign being staged: ``async with`` it (it opens on entry, and deletes what it
    staged if the block fails before :meth:`publish`), :meth:`add` the recipients, then
    :meth:`publish`. ``existing`` is set instead when the idempotency key names a campaign
    already published: add nothing then."""

    def __init__(
        self, store: Store, settings: Settings, builder: Builder, check: Check | None = None
    ) -> None:
        self.store = store
        self.redis = store.redis
        self.keys = k = store.keys
        self.builder = builder
        self.campaign: Campaign = builder.campaign
        self.check = check
        self.cid = cid = new_campaign_id()
        self.ttl = settings.staging_ttl_seconds
        self.idem_ttl = settings.idempotency_ttl_seconds
        key = self.campaign.idempotency_key
        self.idem = k.idempotency(key) if key else None
        self.existing: Enqueued | None = None
        self.fixed = (k.meta(cid), k.chunks(cid), k.counts(cid), k.finals(cid))
        #: Which buckets (rows.py) of results and state hold a staged row: one byte each.
        self._buckets = bytearray()
        #: One thread validates, always the same: the list is read in order, and one
        #: thread's allocations stay in one malloc arena (bounded memory).
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"staging-{cid}")
        self._renewed = time.monotonic()
        self._holds_idem = False
        self._pointers = False
        self._committed = False
        self._release = self.redis.register_script(RELEASE)
        self._write = self.redis.register_script(WRITE)
        self._stage = self.redis.register_script(STAGE)
        self._commit_script = self.redis.register_script(COMMIT)
        self._take = self.redis.register_script(TAKE)
        self._extend = self.redis.register_script(EXTEND)

    async def __aenter__(self) -> Staging:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._thread.shutdown(wait=False)
        if kind is not None and not self._committed:
            await self.abort()

    async def open(self) -> None:
        """Stage the meta, then take the idempotency key (or find its campaign)."""
        if self.idem is not None:
            holder = as_str(await self.redis.get(self.idem))
            if holder and (found := await self._holder(holder)) is not None:
                self.existing = found  # a repeat: nothing is written at all
                return
        await self._stage(keys=[self.fixed[0]], args=[self.ttl])
        if self.idem is not None:
            try:
                self.existing = await self._claim(self.idem)
            except BaseException:
                await self.abort()  # __aexit__ does not run when __aenter__ fails
                self._thread.shutdown(wait=False)
                raise
            if self.existing is not None:
                await self.abort()

    async def _holder(self, cid: str) -> Enqueued | None:
        """The published campaign ``cid``'s answer; None if its meta is gone; raises
        :class:`EnqueueInProgress` while it is staging."""
        state, total = await self.redis.hmget(self.keys.meta(cid), ["state", "total"])
        if as_str(state) == STAGING:
            raise EnqueueInProgress(
                "idempotency_key",
                f"an enqueue with this idempotency_key is in progress (campaign {cid}); "
                "ask again once it is published",
            )
        return None if total is None else await self._answer_of(cid)

    async def _claim(self, idem: str) -> Enqueued | None:
        for _ in range(CLAIM_TRIES):
            # Held for the staging TTL (renewed with the staged keys): a crashed enqueue
            # leaves no key behind; publication gives it idempotency_ttl_seconds.
            if await self.redis.set(idem, self.cid, nx=True, ex=self.ttl):
                self._holds_idem = True
                return None
            holder = as_str(await self.redis.get(idem))
            if not holder:
                continue  # it expired meanwhile: try again
            found = await self._holder(holder)
            if found is not None:
                return found
            # Its enqueue crashed (its staged meta expired): take the key over.
            if not await self._take(keys=[idem], args=[holder, self.cid, self.ttl]):
                continue
            self._holds_idem = True
            return None
        raise EnqueueInProgress("idempotency_key", "too many enqueues race for this key")

    async def _answer_of(self, cid: str) -> Enqueued:
        meta = await self.redis.hgetall(self.keys.meta(cid))
        m = {as_str(a): as_str(b) for a, b in meta.items()}
        counts = {f: int(m.get(f) or 0) for f in ("total", "valid", "invalid", "duplicates")}
        return Enqueued(cid, counts["total"], counts["valid"], counts["invalid"],
                        counts["duplicates"], int(m.get("chunks") or 0), existing=True)  # fmt: skip

    async def add(self, recipients: Iterable[Any]) -> None:
        """Validate and stage ``recipients`` (read in a worker thread, :data:`STEP` at a
        time), each step's writes overlapping the next step's validation."""
        it = iter(recipients)
        writing: asyncio.Task[None] | None = None
        try:
            more = True
            while more:
                batch, more = await self._in_thread(self._step, it)
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(self.write(batch))
            if writing is not None:
                await writing
        except BaseException:
            if writing is not None and not writing.done():
                writing.cancel()
                with contextlib.suppress(BaseException):
                    await writing
            raise

    def _step(self, it: Iterator[Any]) -> tuple[Batch, bool]:
        read = self.builder.add(islice(it, STEP))
        return self.builder.take(), read == STEP

    async def write(self, batch: Batch) -> None:
        """One script call (atomic, one slot): the batch's chunks, invalid results, their
        ranks and counts, and a fresh TTL on every key it wrote, so no staged key ever
        lives without one. Refused (:class:`StagingLost`) once the meta is no longer
        staging. Every staged key's TTL is renewed a few times per TTL as the stream goes."""
        k, cid, ttl = self.keys, self.cid, self.ttl
        renew_all = time.monotonic() - self._renewed > ttl / 4
        if not batch.chunks and not batch.invalid and not renew_all:
            return
        renew = self.bucket_keys() if renew_all else []
        keys, args, numbers = write_call(
            self.fixed, k.results(cid), k.state(cid), ttl, batch, renew=renew
        )
        if not await self._write(keys=keys, args=args):
            raise self._lost()
        for n in numbers:
            if n >= len(self._buckets):
                self._buckets.extend(bytes(n + 1 - len(self._buckets)))
            self._buckets[n] = 1
        if renew_all:
            if self._holds_idem and self.idem is not None:
                await self._extend(keys=[self.idem], args=[cid, ttl])
            self._renewed = time.monotonic()

    def bucket_keys(self) -> list[str]:
        """The results and state buckets staged so far."""
        k, cid, size = self.keys, self.cid, rows.BUCKET
        return [
            rows.bucket(base, n * size)[0]
            for base in (k.results(cid), k.state(cid))
            for n, written in enumerate(self._buckets)
            if written
        ]

    async def _in_thread(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, call, *args)

    def _lost(self) -> StagingLost:
        return StagingLost(
            f"campaign {self.cid}: its staged keys expired before it was published "
            f"(staging_ttl_seconds is {self.ttl}); enqueue it again"
        )

    async def publish(self, *, allow_empty: bool = True) -> Enqueued:
        """Check the whole list, then make the campaign visible (steps 3 to 6 above)."""
        prepared = await self._in_thread(self.builder.finish)
        await self.write(self.builder.take())
        if not allow_empty and prepared.valid == 0:
            first = prepared.first_invalid
            example = f" (recipients[{first.index}]: {first.error})" if first else ""
            raise NothingToSend("recipients", f"none of the {prepared.total} is valid{example}")
        if self.check is not None:
            await self.check(prepared)
        c, k, cid = self.campaign, self.keys, self.cid
        part = k.part(cid)
        await ensure_layout(self.redis, k)  # before anything points at the campaign
        await ensure_group(self.redis, part.queue(c.provider, c.lane))
        created = now_ms()
        self._pointers = True
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(k.campaigns, {cid: created})
            if prepared.chunks:
                # Its chunks wait to be admitted, fairly among campaigns and accounts, from
                # their start time on (admission.py).
                pipe.zadd(part.ready_campaigns(c.provider, c.lane, c.account), {cid: 0})
                pipe.zadd(part.ready(c.provider, c.lane), {c.account: 0}, nx=True)
            await pipe.execute()
        await self._commit(prepared, created)
        answer = Enqueued(cid, prepared.total, prepared.valid, prepared.invalid,
                          prepared.duplicates, prepared.chunks)  # fmt: skip
        if not prepared.chunks:
            await self.redis.xadd(part.events, {"c": cid, "e": "done"}, maxlen=EVENTS_MAXLEN,
                                  approximate=True)  # fmt: skip
        _log_enqueued(answer, prepared)
        if self.store.admission is not None and prepared.chunks:
            # The first chunks go at once, rather than when a worker next looks (an OTP);
            # workers admit the rest as they take work, in turn with the other campaigns.
            await self.store.admission.admit(ENQUEUE_ADMITS, [c.lane], [c.provider])
        return answer

    async def _commit(self, p: Prepared, created: int) -> None:
        c = self.campaign
        meta: dict[Any, Any] = {  # redis-py types its mappings invariantly
            "provider": c.provider, "account": c.account, "text": c.text,
            "signature": c.signature or "", "options": orjson.dumps(p.options),
            "name": c.name or "",
            "idempotency_key": c.idempotency_key or "",  # trimmed with the campaign
            "total": p.total, "valid": p.valid, "invalid": p.invalid,
            "duplicates": p.duplicates, "chunks": p.chunks, "recorded": p.invalid,
            "final": p.invalid, "entries": p.entries, "state": CampaignState.QUEUED.value,
            "kind": c.kind, "lane": c.lane, "on_unknown": p.on_unknown,
            "start_at": p.start_ms or 0,
            "issued": 0,  # chunks admitted to the stream so far
            "weight": c.weight, "retention_days": p.retention_days, "reason": "",
            "created_at": created,
        }  # fmt: skip
        invalid = b""
        if p.invalid:
            indexes = np.frombuffer(p.invalid_indexes, dtype=np.int64)
            invalid = orjson.dumps(indexes, option=orjson.OPT_SERIALIZE_NUMPY)
        pairs = [v for field, value in meta.items() for v in (field, value)]
        staged = [*self.fixed, *self.bucket_keys()]  # meta and chunks first
        if not await self._commit_script(keys=staged, args=[invalid, *pairs]):
            raise self._lost()
        self._committed = True
        if self.idem is not None:
            await self.redis.set(self.idem, self.cid, ex=self.idem_ttl)  # from publication on

    async def abort(self) -> None:
        """Delete what was staged (best effort: it expires anyway) and give the idempotency
        key back."""
        k, cid = self.keys, self.cid
        with contextlib.suppress(*REDIS_ERRORS):
            await self.redis.delete(*self.fixed, *self.bucket_keys())
            if self._holds_idem and self.idem is not None:
                await self._release(keys=[self.idem], args=[cid])
                self._holds_idem = False
            if self._pointers:
                c = self.campaign
                await self.redis.zrem(k.campaigns, cid)
                ready = k.part(cid).ready_campaigns(c.provider, c.lane, c.account)
                await self.redis.zrem(ready, cid)


async def enqueue(
    store: Store,
    settings: Settings,
    builder: Builder,
    recipients: Iterable[Any],
    *,
    allow_empty: bool = True,
    check: Check | None = None,
) -> Enqueued:
    """Stage ``recipients`` for the builder's campaign and publish it (or, for a repeated
    idempotency key, answer with the campaign that has it)."""
    async with Staging(store, settings, builder, check) as staging:
        if staging.existing is not None:
            return staging.existing
        await staging.add(recipients)
        return await staging.publish(allow_empty=allow_empty)


def _log_enqueued(answer: Enqueued, p: Prepared) -> None:
    """The enqueued line, and done at once when every recipient was invalid."""
    c = p.campaign
    counts = {
        "recipients": answer.recipients, "valid": answer.valid, "invalid": answer.invalid,
        "duplicates": answer.duplicates, "chunks": answer.chunks,
    }  # fmt: skip
    logs.event(
        "enqueued", answer.id,
        f"{answer.valid} recipient(s) in {answer.chunks} chunk(s), {answer.invalid} invalid, "
        f"{answer.duplicates} duplicate(s)",
        counts=counts, provider=c.provider, account=c.account, kind=c.kind, lane=c.lane,
    )  # fmt: skip
    if not p.chunks:
        finals = {Status.INVALID.value: answer.invalid}
        logs.event("done", answer.id, f"{answer.recipients} recipients ({logs.tally(finals)})",
                   counts=finals, provider=c.provider, account=c.account)  # fmt: skip
