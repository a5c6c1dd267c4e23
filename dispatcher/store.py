"""Campaign records in Redis: enqueue in one transaction, status, results, resume, wait.

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
from redis.exceptions import RedisError, ResponseError, WatchError

from dispatcher import logs
from dispatcher.admission import Admission
from dispatcher.intake import Prepared
from dispatcher.keys import DEFAULT_LANE, GROUP, Keys
from dispatcher.model import CampaignState, CampaignStatus, Enqueued, Rank, Result, Status

#: What a Redis outage looks like to a caller (redis-py's errors are not OSErrors).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
#: Fields of one HSET in the enqueue transaction: bounds the size of a single command.
_BATCH = 1000
#: The events stream's approximate length: scripts get it as ``@MAXLEN@`` (lua.render).
EVENTS_MAXLEN = 100_000
ENQUEUE_ADMITS = 4  # chunks an enqueue admits itself
#: Bits a script returns for the transitions it made (lua.PROGRESS and the record script),
#: so that the one process whose call made a transition logs it (logs.py).
SENT, DONE, PAUSED = 1, 2, 4


def now_ms() -> int:
    return int(time.time() * 1000)


def new_campaign_id() -> str:
    return secrets.token_hex(8)


def as_str(value: Any) -> str:
    """Redis replies come as bytes (or str, or None): as text."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


async def ensure_group(redis: Redis, stream: str) -> None:
    """Create the consumer group (and stream) once; from id 0 so nothing queued is missed."""
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


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
    status, raw, error_code, error, at = orjson.loads(report)[:5]
    return replace(
        result,
        status=status,
        raw_status=raw,
        error_code=error_code or result.error_code,
        error=error or result.error,
        status_at=at,
    )


class Store:
    def __init__(self, redis: Redis, keys: Keys, admission: Admission | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.admission = admission

    async def enqueue(self, prepared: Prepared, idempotency_ttl: int) -> Enqueued:
        """Write the whole campaign and its work in one MULTI/EXEC, or nothing.

        With an idempotency key the transaction WATCHes it: of two concurrent enqueues with
        the same key exactly one commits, and the other returns the winner's id.
        """
        c = prepared.campaign
        k = self.keys
        stream = k.queue(c.provider, c.lane)
        await ensure_group(self.redis, stream)
        idem = k.idempotency(c.idempotency_key) if c.idempotency_key else None
        cid = new_campaign_id()
        answer = Enqueued(
            id=cid,
            recipients=prepared.total,
            valid=prepared.valid,
            invalid=len(prepared.invalid),
            duplicates=prepared.duplicates,
            chunks=len(prepared.chunks),
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    if idem is not None:
                        await pipe.watch(idem)
                        existing = await pipe.get(idem)
                        if existing is not None:
                            return await self._existing(as_str(existing))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    self._write(pipe, cid, prepared)
                    if idem is not None:
                        pipe.set(idem, cid, ex=idempotency_ttl)
                    await pipe.execute()
                    break
                except WatchError:
                    continue  # another enqueue took the key: loop to read its id
        _log_enqueued(answer, prepared)
        if self.admission is not None and prepared.chunks:
            # The first chunks go at once, rather than when a worker next looks (an OTP);
            # workers admit the rest as they take work, in turn with the other campaigns.
            await self.admission.admit(ENQUEUE_ADMITS, [c.lane], [c.provider])
        return answer

    def _write(self, pipe: Any, cid: str, p: Prepared) -> None:
        c = p.campaign
        k = self.keys
        created = now_ms()
        invalid_n = len(p.invalid)
        pipe.hset(
            k.meta(cid),
            mapping={
                "provider": c.provider,
                "account": c.account,
                "text": c.text,
                "signature": c.signature or "",
                "options": orjson.dumps(p.options),
                "name": c.name or "",
                "idempotency_key": c.idempotency_key or "",  # trimmed with the campaign
                "total": p.total,
                "valid": p.valid,
                "invalid": invalid_n,
                "duplicates": p.duplicates,
                "chunks": len(p.chunks),
                "recorded": invalid_n,
                "final": invalid_n,
                "entries": len(c.recipients),
                "state": CampaignState.QUEUED.value,
                "kind": c.kind,
                "lane": c.lane,
                "on_unknown": p.on_unknown,
                "start_at": p.start_ms or 0,
                "issued": 0,  # chunks admitted to the stream so far
                "weight": c.weight,
                "retention_days": p.retention_days,
                "reason": "",
                "created_at": created,
            },
        )
        for start in range(0, len(p.chunks), _BATCH):
            batch = p.chunks[start : start + _BATCH]
            pipe.hset(k.chunks(cid), mapping={str(start + i): b for i, b in enumerate(batch)})
        if p.invalid:
            pipe.hset(k.chunks(cid), "invalid", orjson.dumps([r.index for r in p.invalid]))
            for start in range(0, invalid_n, _BATCH):
                batch_r = p.invalid[start : start + _BATCH]
                pipe.hset(
                    k.results(cid), mapping={str(r.index): orjson.dumps(r.row()) for r in batch_r}
                )
            pipe.hincrby(k.counts(cid), Status.INVALID.value, invalid_n)
            pipe.hincrby(k.finals(cid), Status.INVALID.value, invalid_n)
            final = int(Rank.FINAL)  # an int: redis-py would send an enum's repr
            for start in range(0, invalid_n, _BATCH):
                batch_s = p.invalid[start : start + _BATCH]
                pipe.hset(k.state(cid), mapping={str(r.index): final for r in batch_s})
        if p.chunks:
            # Its chunks wait to be admitted, fairly among campaigns and accounts, from their
            # start time on (admission.py).
            pipe.zadd(k.ready_campaigns(c.provider, c.lane, c.account), {cid: 0})
            pipe.zadd(k.ready(c.provider, c.lane), {c.account: 0}, nx=True)
        pipe.zadd(k.campaigns, {cid: created})
        if not p.chunks:
            pipe.xadd(k.events, {"c": cid, "e": "done"}, maxlen=EVENTS_MAXLEN, approximate=True)

    async def _existing(self, cid: str) -> Enqueued:
        meta = await self.redis.hgetall(self.keys.meta(cid))
        m = {as_str(a): as_str(b) for a, b in meta.items()}
        return Enqueued(
            id=cid,
            recipients=int(m.get("total", 0)),
            valid=int(m.get("valid", 0)),
            invalid=int(m.get("invalid", 0)),
            duplicates=int(m.get("duplicates", 0)),
            chunks=int(m.get("chunks", 0)),
            existing=True,
        )

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
            return None  # none, or only partial keys (Redis restarted without its data)
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
        key = self.keys.ready_campaigns(m["provider"], lane, m.get("account", "default"))
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
            rows = await self.redis.hmget(k.results(cid), [str(i) for i in wanted])
            return [
                Result.from_row(i, orjson.loads(r or b"[]"))
                for i, r in zip(wanted, rows, strict=True)
            ]

        for first in range(0, chunks, batch):
            numbers = [str(n) for n in range(first, min(first + batch, chunks))]
            blobs = await self.redis.hmget(k.chunks(cid), numbers)
            members: list[list[Any]] = [
                m for blob in blobs if blob for m in orjson.loads(blob) if m[0] > after
            ]
            if not members:
                continue
            indexes = [str(m[0]) for m in members]
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hmget(k.results(cid), indexes)
                pipe.hmget(k.reports(cid), indexes)
                rows, reports = await pipe.execute()
            for member, row, report in zip(members, rows, reports, strict=True):
                for r in await invalid_upto(member[0]):
                    yield r
                if row is None:
                    result = Result(member[0], member[1], Status.PENDING)
                else:
                    result = Result.from_row(member[0], orjson.loads(row))
                yield with_report(result, report)
        for r in await invalid_upto(2**63):
            yield r

    async def wait(self, cid: str, seconds: float, *, final: bool = False) -> CampaignStatus | None:
        """Block until every recipient has a send result (with ``final``, a final status),
        or the campaign is paused, or ``seconds`` pass.

        Reads the events stream from the id seen *before* checking the status, so an event
        that lands between the check and the read is not missed. Each read blocks at most a
        second, well inside the client's socket timeout.
        """
        deadline = time.monotonic() + seconds
        last = await self.redis.xrevrange(self.keys.events, count=1)
        cursor = as_str(last[0][0]) if last else "0-0"
        while True:
            st = await self.status(cid)
            if st is None or st.done or st.state == CampaignState.PAUSED:
                return st
            if st.sent and not final:
                return st
            left = deadline - time.monotonic()
            if left <= 0:
                return st
            got: Any = await self.redis.xread(
                {self.keys.events: cursor}, count=1000, block=max(1, int(min(left, 1.0) * 1000))
            )
            for _stream, entries in got:
                if entries:
                    cursor = as_str(entries[-1][0])
