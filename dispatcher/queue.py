"""The worker's side of the queue: lease chunks, keep leases alive, record and acknowledge.

A chunk is an entry in the provider's stream, read through the consumer group ``workers``.
Its entry stays in the group's pending list while a worker holds it; that is the lease.
A worker that dies leaves it there, and another takes it over with XAUTOCLAIM once it has
been idle for the lease time. Live workers refresh their leases well before that.

Results are written by one Lua script that also acknowledges the entry, so a chunk is either
recorded and acked or neither. Each result is written with HSETNX and counted only when
new: a chunk recorded twice (a slow worker and its successor) never counts a recipient twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatcher.keys import DEFAULT_LANE, GROUP, LANES, Keys
from dispatcher.model import Result
from dispatcher.providers.base import ChunkRecipient
from dispatcher.store import EVENTS_MAXLEN, as_str, ensure_group

#: What a Redis outage looks like to a caller (redis-py's errors are not OSErrors).
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)


@dataclass(slots=True)
class Lease:
    """One chunk entry held by this worker."""

    stream: str
    entry_id: str
    campaign_id: str
    chunk: int
    attempt: int
    redelivered: bool  # taken over or re-queued: some recipients may have results already
    lane: str = DEFAULT_LANE


@dataclass(frozen=True, slots=True)
class Track:
    """What polling will need of a chunk's results (see the record script)."""

    account: str
    index_messages: bool = False  # list APIs name messages only by their id
    list_open: bool = False  # the campaign's account is polled with a list API
    kind: str = "sms"  # which list: each campaign kind has its own


@dataclass(slots=True)
class ChunkData:
    meta: dict[str, str]
    recipients: list[ChunkRecipient]
    #: When an earlier attempt started sending this chunk and never settled it (its
    #: worker died): what it sent is unknown. None if no attempt was cut short.
    sending_since: int | None = None


#: ARGV: group, entry id, cid, chunk, mode, attempt, reason, delay ms, rows. ``rows`` is one
#: string of ``index<TAB>status<TAB>row json`` lines: a single argument instead of three per
#: recipient keeps a 30,000-recipient record cheap to send (orjson never writes a raw tab or
#: newline, so the separators are safe).
#: mode: ack = chunk complete; requeue = ack and queue the rest again (shutdown);
#: hold = ack and set aside until resume (paused); keep = record only (lease lost);
#: delay = ack and queue the rest again after the delay (provider busy).
#: For polling later: ARGV[10] ``message id<TAB>index`` lines for the message index,
#: ARGV[11] "1" to list the campaign as open, ARGV[12] ``batch|cid|chunk`` lines.
#: ARGV[13] ``index<TAB>reason`` lines for the dead-letter list (KEYS[13]).
_RECORD = r"""
local stream, results, counts, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events, held, delayed = KEYS[5], KEYS[6], KEYS[7]
local state, finals, msgidx, open, batches = KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local group, id, cid, chunk = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local mode, attempt, reason, delay = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local FINAL = {invalid=1, delivered=1, undelivered=1, expired=1, rejected=1, failed=1,
               submitted=1, cancelled=1}
local new, final_new = 0, 0
local tally, final_tally = {}, {}
for index, status, row in string.gmatch(ARGV[9], '([^\t\n]+)\t([^\t\n]+)\t([^\n]+)') do
  if redis.call('HSETNX', results, index, row) == 1 then
    tally[status] = (tally[status] or 0) + 1
    new = new + 1
    -- a report may have come first: the rank only moves up, and a final counts once
    local rank = FINAL[status] and 3 or 1
    if rank > tonumber(redis.call('HGET', state, index) or '0') then
      redis.call('HSET', state, index, rank)
      if rank == 3 then
        final_tally[status] = (final_tally[status] or 0) + 1
        final_new = final_new + 1
      end
    end
  end
end
for status, n in pairs(tally) do
  redis.call('HINCRBY', counts, status, n)
end
for status, n in pairs(final_tally) do
  redis.call('HINCRBY', finals, status, n)
end
local recorded = redis.call('HINCRBY', meta, 'recorded', new)
local final = redis.call('HINCRBY', meta, 'final', final_new)
for mid, index in string.gmatch(ARGV[10], '([^\t\n]+)\t([^\n]+)') do
  redis.call('HSET', msgidx, mid, cid .. '.' .. index)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[11] == '1' then
  redis.call('ZADD', open, 'NX', now, cid)
end
for member in string.gmatch(ARGV[12], '([^\n]+)') do
  redis.call('ZADD', batches, 'NX', now, member)
end
-- the dead-letter list: recipients whose transient failures outlasted every attempt
for index, reason in string.gmatch(ARGV[13], '([^\t\n]+)\t([^\n]*)') do
  redis.call('HSET', KEYS[13], index, chunk .. '\t' .. reason)
end
if mode ~= 'keep' then
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  redis.call('HDEL', KEYS[14], chunk)  -- this attempt ended cleanly: no fate is unknown
end
if mode == 'requeue' then
  redis.call('XADD', stream, '*', 'c', cid, 'n', chunk, 'a', tonumber(attempt) + 1)
elseif mode == 'delay' then
  redis.call('ZADD', delayed, now + delay, cid .. '|' .. chunk .. '|' .. (tonumber(attempt) + 1))
elseif mode == 'hold' then
  redis.call('SADD', held, chunk)
  if reason ~= '' and redis.call('HGET', meta, 'state') ~= 'paused' then
    redis.call('HSET', meta, 'state', 'paused', 'reason', reason)
    redis.call('XADD', events, 'MAXLEN', '~', ARGV_MAXLEN, '*', 'c', cid, 'e', 'paused')
  end
end
local total = tonumber(redis.call('HGET', meta, 'total'))
local event = 'chunk'
if final_new > 0 and final >= total then
  event = 'done'
elseif new > 0 and recorded >= total then
  event = 'sent'
end
redis.call('XADD', events, 'MAXLEN', '~', ARGV_MAXLEN, '*', 'c', cid, 'e', event, 'n', chunk)
return new
""".replace("ARGV_MAXLEN", str(EVENTS_MAXLEN))

#: Move the delayed chunks that are due into the stream. KEYS: delayed, stream; ARGV: limit.
_PROMOTE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local cid, n, a = string.match(m, '^(.-)|(%d+)|(%d+)$')
  redis.call('XADD', KEYS[2], '*', 'c', cid, 'n', n, 'a', a)
  redis.call('ZREM', KEYS[1], m)
end
return #due
"""

#: Refresh the idle time of entries this consumer still owns; return the ones it lost.
_EXTEND = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""


def _lease(
    keys: Keys, stream: str, entry_id: Any, fields: dict[Any, Any], redelivered: bool
) -> Lease:
    f = {as_str(a): as_str(b) for a, b in fields.items()}
    attempt = int(f.get("a", 0))
    return Lease(
        stream=stream,
        entry_id=as_str(entry_id),
        campaign_id=f["c"],
        chunk=int(f["n"]),
        attempt=attempt,
        redelivered=redelivered or attempt > 0,
        lane=keys.parse_queue(stream)[1],
    )


class Queue:
    def __init__(self, redis: Redis, keys: Keys, consumer: str, streams: Sequence[str]) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.streams = list(streams)
        self._record = redis.register_script(_RECORD)
        self._extend = redis.register_script(_EXTEND)
        self._promote = redis.register_script(_PROMOTE)
        self._claim_cursor = dict.fromkeys(self.streams, "0-0")

    async def setup(self) -> None:
        for stream in self.streams:
            await ensure_group(self.redis, stream)

    def lane_streams(self, lanes: Sequence[str]) -> list[list[str]]:
        """This consumer's streams, grouped by lane, most urgent first."""
        groups = []
        for lane in LANES:
            if lane in lanes:
                group = [s for s in self.streams if self.keys.parse_queue(s)[1] == lane]
                if group:
                    groups.append(group)
        return groups

    async def _read(self, streams: list[str], count: int, block_ms: int | None) -> list[Lease]:
        got: Any = await self.redis.xreadgroup(
            GROUP, self.consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms
        )
        leases = []
        for stream, entries in got or []:
            for entry_id, fields in entries:
                if fields:
                    leases.append(_lease(self.keys, as_str(stream), entry_id, fields, False))
        return leases

    async def read(self, count: int, block_ms: int, lanes: Sequence[str] = LANES) -> list[Lease]:
        """New chunks, the most urgent lane first: a quick look at each lane in turn, then a
        read of all of them that waits up to ``block_ms`` for anything."""
        groups = self.lane_streams(lanes)
        for group in groups:
            leases = await self._read(group, count, None)
            if leases:
                return leases
        return await self._read([s for g in groups for s in g], count, block_ms)

    async def claim(self, count: int, min_idle_ms: int) -> list[Lease]:
        """Take over chunks whose worker has not refreshed its lease for ``min_idle_ms``."""
        leases: list[Lease] = []
        for stream in self.streams:
            if len(leases) >= count:
                break
            cursor, entries, *_ = await self.redis.xautoclaim(
                stream,
                GROUP,
                self.consumer,
                min_idle_ms,
                start_id=self._claim_cursor[stream],
                count=count - len(leases),
            )
            self._claim_cursor[stream] = as_str(cursor)
            for entry_id, fields in entries:
                if fields:
                    leases.append(_lease(self.keys, stream, entry_id, fields, True))
                else:  # the entry was deleted while pending: nothing left to do
                    await self.redis.xack(stream, GROUP, entry_id)
        return leases

    async def promote(self, limit: int = 1000) -> int:
        """Queue again the delayed chunks that are due; how many moved."""
        moved = 0
        for stream in self.streams:
            delayed = self.keys.delayed_for(stream)
            moved += int(await self._promote(keys=[delayed, stream], args=[limit]))
        return moved

    async def extend(self, leases: Sequence[Lease]) -> set[str]:
        """Refresh our leases; return the entry ids another worker has taken over."""
        lost: set[str] = set()
        by_stream: dict[str, list[str]] = {}
        for lease in leases:
            by_stream.setdefault(lease.stream, []).append(lease.entry_id)
        for stream, ids in by_stream.items():
            got = await self._extend(keys=[stream], args=[GROUP, self.consumer, *ids])
            lost.update(as_str(x) for x in got)
        return lost

    async def load(self, lease: Lease) -> ChunkData | None:
        """The campaign and the chunk's recipients still without a result."""
        k = self.keys
        cid = lease.campaign_id
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.meta(cid))
            pipe.hget(k.chunks(cid), str(lease.chunk))
            pipe.hget(k.sending(cid), str(lease.chunk))
            raw_meta, blob, since = await pipe.execute()
        if not raw_meta or blob is None:
            return None
        meta = {as_str(a): as_str(b) for a, b in raw_meta.items()}
        members = orjson.loads(blob)
        recipients = [ChunkRecipient(m[0], m[1], m[2] if len(m) > 2 else None) for m in members]
        if lease.redelivered and recipients:
            have = await self.redis.hmget(k.results(cid), [str(r.index) for r in recipients])
            recipients = [r for r, row in zip(recipients, have, strict=True) if row is None]
        return ChunkData(meta, recipients, int(since) if since else None)

    async def mark_sending(self, lease: Lease) -> None:
        """Note that this chunk's requests are about to leave (cleared when it settles)."""
        await self.redis.hset(
            self.keys.sending(lease.campaign_id), str(lease.chunk), str(int(time.time() * 1000))
        )

    async def record(
        self,
        lease: Lease,
        results: Sequence[Result],
        mode: str,
        *,
        reason: str = "",
        delay_s: float = 0.0,
        track: Track | None = None,
        dead: Sequence[Result] = (),
    ) -> int:
        """Write ``results`` and settle the entry per ``mode``, atomically. Returns new results.

        ``track`` says what a later poll needs: message ids to index, the campaign to list
        as open, the provider's batch ids.
        """
        k = self.keys
        cid = lease.campaign_id
        provider, _lane = k.parse_queue(lease.stream)
        account = track.account if track else "-"
        listed = k.listed(provider, track.kind if track else "sms")
        accepted = [r for r in results if r.status == "accepted"]
        mids = (
            b"\n".join(
                b"%s\t%d" % (r.message_id.encode(), r.index) for r in accepted if r.message_id
            )
            if track and track.index_messages
            else b""
        )
        batches = (
            "\n".join(sorted({f"{r.batch_id}|{cid}|{lease.chunk}" for r in accepted if r.batch_id}))
            if track
            else ""
        )
        args: list[Any] = [
            GROUP,
            lease.entry_id,
            cid,
            lease.chunk,
            mode,
            lease.attempt,
            reason,
            int(delay_s * 1000),
            b"\n".join(
                b"%d\t%s\t%s" % (r.index, r.status.encode(), orjson.dumps(r.row())) for r in results
            ),
            mids,
            "1" if track and track.list_open and accepted else "",
            batches,
            "\n".join(f"{r.index}\t{r.error_code or ''}: {r.error or ''}" for r in dead),
        ]
        keys = [
            lease.stream,
            k.results(cid),
            k.counts(cid),
            k.meta(cid),
            k.events,
            k.held(cid),
            k.delayed_for(lease.stream),
            k.state(cid),
            k.finals(cid),
            k.message_index(provider),
            k.open(listed, account),
            k.batches(listed, account),
            k.dead(cid),
            k.sending(cid),
        ]
        return int(await self._record(keys=keys, args=args))

    async def drop(self, lease: Lease) -> None:
        """Acknowledge an entry whose campaign no longer exists."""
        await self.redis.xack(lease.stream, GROUP, lease.entry_id)
        await self.redis.xdel(lease.stream, lease.entry_id)
