"""The worker's side of the queue: lease chunks, keep leases alive, record and acknowledge.

A chunk is an entry in the provider's stream, read through the consumer group ``workers``.
Its entry stays in the group's pending list while a worker holds it; that is the lease.
A worker that dies leaves it there, and another takes it over with XAUTOCLAIM once it has
been idle for the lease time. Live workers refresh their leases well before that.

Results are written by one Lua script that also acknowledges the entry (settle.py, with the
modes of :class:`Settle`), so a chunk is either recorded and acked or neither. Each result is
written with HSETNX and counted only when new: a chunk recorded twice (a slow worker and its
successor) never counts a recipient twice.
Only the entry's owner (fencing.py) may acknowledge it; recipients whose fate is unknown are
parked by the same script (unknown.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.asyncio import Redis

from dispatcher import answers, chunkblob, ranges
from dispatcher.keys import DEFAULT_LANE, GROUP, LANES, Keys, batch_member
from dispatcher.lua import MEMBERS, script
from dispatcher.meta import CampaignMeta
from dispatcher.model import Result
from dispatcher.msgindex import MessageIndex, ref
from dispatcher.providers.base import ChunkRecipient
from dispatcher.rows import hmget
from dispatcher.settle import RECORD, RecordArgs, RecordKeys, Settle
from dispatcher.store import PAUSED, REDIS_ERRORS, announce, as_str, ensure_group, ensure_layout
from dispatcher.unknown import Park

__all__ = ["REDIS_ERRORS", "ChunkData", "Lease", "Queue", "Recorded", "Settle", "Track"]


@dataclass(slots=True)
class Lease:
    """One queue entry held by this worker: a chunk, or some of its recipients."""

    stream: str
    entry_id: str
    campaign_id: str
    chunk: int
    attempt: int
    redelivered: bool  # taken over or re-queued: some recipients may have results already
    lane: str = DEFAULT_LANE
    taken_over: bool = False  # claimed from another worker whose lease expired
    only: str = ""  # ranges: only these recipients of the chunk (see ranges.py)
    #: ranges: never these (an earlier entry of the chunk handed them to unknown.py)
    x: str = ""


@dataclass(frozen=True, slots=True)
class Track:
    """What polling will need of a chunk's results (see the record script)."""

    account: str
    index_messages: bool = False  # list APIs name messages only by their id
    list_open: bool = False  # the campaign's account is polled with a list API
    kind: str = "sms"  # which list: each campaign kind has its own


class Recorded(NamedTuple):
    new: int  # results written for the first time
    lost: bool  # another worker owns the entry: written, not settled
    gone: bool  # the campaign no longer exists: nothing written
    paused: bool = False  # this record paused the campaign (``hold`` with a reason)


@dataclass(slots=True)
class ChunkData:
    meta: CampaignMeta
    recipients: list[ChunkRecipient]


#: Move the delayed chunks that are due into the stream. KEYS: delayed, stream; ARGV: limit.
_PROMOTE = script(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local cid, n, a, only, x = parse_unit(m)
  if cid ~= nil then add_entry(KEYS[2], cid, n, a, only, x) end
  redis.call('ZREM', KEYS[1], m)
end
return #due
""",
    uses=MEMBERS,
)

#: With partitions, how long one blocking read waits on one partition before the worker
#: looks at all of them again (a read may wait on one Redis Cluster slot only).
PARTITION_BLOCK_MS = 100

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
    keys: Keys, stream: str, entry_id: Any, fields: dict[Any, Any], taken_over: bool
) -> Lease:
    f = {as_str(a): as_str(b) for a, b in fields.items()}
    attempt = int(f.get("a", 0))
    only = f.get("i", "")
    x = f.get("x", "")
    return Lease(
        stream=stream,
        entry_id=as_str(entry_id),
        campaign_id=f["c"],
        chunk=int(f["n"]),
        attempt=attempt,
        redelivered=taken_over or attempt > 0 or bool(only) or bool(x),
        lane=keys.parse_queue(stream)[1],
        taken_over=taken_over,
        only=only,
        x=x,
    )


def _excluded(lease: Lease, mode: Settle, handed: Collection[int], parks: Sequence[Park]) -> str:
    """What an entry queued again in place of ``lease`` must never send: what the lease
    excluded already, what a takeover of it ``handed`` to the unknown-fate machinery, and
    what this record parks. Those recipients are the machinery's now: it queues them in an
    entry of their own when they are to go again, and a second entry naming them would
    send them twice."""
    if mode not in (Settle.REQUEUE, Settle.DELAY, Settle.HOLD):
        return ""
    if not (handed or parks):
        return lease.x
    return ranges.encode({*ranges.decode(lease.x), *handed, *(p.index for p in parks)})


class Queue:
    def __init__(self, redis: Redis, keys: Keys, consumer: str, streams: Sequence[str]) -> None:
        self.redis = redis
        self.keys = keys
        self.consumer = consumer
        self.streams = list(streams)
        self._record = redis.register_script(RECORD)
        self.index = MessageIndex(redis, keys)
        self._extend = redis.register_script(_EXTEND)
        self._promote = redis.register_script(_PROMOTE)
        self._claim_cursor = dict.fromkeys(self.streams, "0-0")
        self._turn = self._wait_turn = 0
        self._lane_groups: dict[tuple[str, ...], list[list[list[str]]]] = {}

    async def setup(self) -> None:
        await ensure_layout(self.redis, self.keys)
        for stream in self.streams:
            await ensure_group(self.redis, stream)

    def lane_streams(self, lanes: Sequence[str]) -> list[list[list[str]]]:
        """This consumer's streams, grouped by lane, most urgent first, and within a lane by
        partition (one read may name the streams of one Redis Cluster slot only). Worked
        out once per set of lanes: every read asks."""
        wanted = tuple(lanes)
        found = self._lane_groups.get(wanted)
        if found is None:
            found = self._lane_groups[wanted] = self._group(wanted)
        return found

    def _group(self, lanes: Sequence[str]) -> list[list[list[str]]]:
        groups = []
        for lane in LANES:
            if lane in lanes:
                by_part: dict[str, list[str]] = {}
                for s in self.streams:
                    if self.keys.parse_queue(s)[1] == lane:
                        by_part.setdefault(self._part_of(s), []).append(s)
                if by_part:
                    groups.append(list(by_part.values()))
        return groups

    def _part_of(self, stream: str) -> str:
        provider, lane = self.keys.parse_queue(stream)
        return stream.removesuffix(f"q:{provider}:{lane}")

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
        read of all of them that waits up to ``block_ms`` for anything (with partitions, a
        read of one partition's, at most :data:`PARTITION_BLOCK_MS`)."""
        lane_groups = self.lane_streams(lanes)
        self._turn += 1  # within a lane, no partition always goes first
        for parts in lane_groups:
            at = self._turn % len(parts)
            for group in parts[at:] + parts[:at]:
                leases = await self._read(group, count, None)
                if leases:
                    return leases
        streams = [s for parts in lane_groups for g in parts for s in g]
        if self.keys.partitions > 1:
            # A blocking read may name one slot's streams only: wait on one partition at a
            # time, briefly, then look at all again.
            bases = sorted({self._part_of(s) for s in streams})
            self._wait_turn = (self._wait_turn + 1) % len(bases)
            streams = [s for s in streams if self._part_of(s) == bases[self._wait_turn]]
            block_ms = min(block_ms, PARTITION_BLOCK_MS)
        return await self._read(streams, count, block_ms)

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
        """The campaign and the entry's recipients; None if the campaign is gone (or only
        partial keys of it remain, as after Redis restarted without its data)."""
        k = self.keys
        cid = lease.campaign_id
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.meta(cid))
            pipe.hget(k.chunks(cid), str(lease.chunk))
            raw_meta, blob = await pipe.execute()
        if not raw_meta or blob is None or b"total" not in raw_meta:
            return None
        meta = CampaignMeta.decode({as_str(a): as_str(b) for a, b in raw_meta.items()})
        recipients = chunkblob.decode(blob)
        if lease.only:
            wanted = set(ranges.decode(lease.only))
            recipients = [r for r in recipients if r.index in wanted]
        if lease.x:
            handed = set(ranges.decode(lease.x))
            recipients = [r for r in recipients if r.index not in handed]
        return ChunkData(meta, recipients)

    async def unsettled(self, cid: str, recipients: list[ChunkRecipient]) -> list[ChunkRecipient]:
        """Those of ``recipients`` with neither a result nor an unknown fate (parked)."""
        if not recipients:
            return recipients
        k = self.keys
        indexes = [str(r.index) for r in recipients]
        have = await hmget(self.redis, k.results(cid), [r.index for r in recipients])
        parked = await self.redis.hmget(k.parked(cid), indexes)
        return [
            r for r, row, park in zip(recipients, have, parked, strict=True)
            if row is None and park is None
        ]  # fmt: skip

    async def record(
        self,
        lease: Lease,
        results: Sequence[Result],
        mode: Settle,
        *,
        token: str = "",
        reason: str = "",
        delay_s: float = 0.0,
        track: Track | None = None,
        dead: Sequence[Result] = (),
        parks: Sequence[Park] = (),
        handed: Collection[int] = (),
    ) -> Recorded:
        """Write ``results``, park ``parks`` and settle the entry per ``mode``, atomically
        (settle.RECORD), after indexing the message ids (msgindex.py).

        ``track`` says what a later poll needs: message ids to index, the campaign to list
        as open, the provider's batch ids; and the account, whose rate a finished chunk
        frees (admission.py) and whose unknown set takes what is parked.
        """
        k = self.keys
        cid = lease.campaign_id
        provider, _lane = k.parse_queue(lease.stream)
        account = track.account if track else "-"
        listed = k.listed(provider, track.kind if track else "sms")
        index_messages = bool(track and track.index_messages)
        sent = answers.sent(results, ids=index_messages)
        if index_messages:  # before the results: see msgindex.py
            await self.index.add(provider, {mid: ref(cid, i) for mid, i in sent.ids.items()})
        batches = {batch_member(b, cid, lease.chunk) for b in sent.batches}
        args = RecordArgs(
            group=GROUP,
            id=lease.entry_id,
            cid=cid,
            chunk=lease.chunk,
            mode=Settle(mode),
            attempt=lease.attempt,
            reason=reason,
            delay=int(delay_s * 1000),
            rows=answers.lines(results),
            list_open="1" if track and track.list_open and sent.any else "",
            batch_lines="\n".join(sorted(batches)) if track else "",
            dead_lines="\n".join(f"{r.index}\t{r.error_code or ''}: {r.error or ''}" for r in dead),
            token=token,
            only=lease.only,
            x=_excluded(lease, mode, handed, parks),
            park_lines="\n".join(p.line() for p in parks),
            park_score=min((p.expires_ms for p in parks), default=0),
        )
        part = k.part(cid)
        keys = RecordKeys(
            stream=lease.stream,
            results=k.results(cid),
            counts=k.counts(cid),
            meta=k.meta(cid),
            events=part.events,
            held=k.held(cid),
            delayed=k.delayed_for(lease.stream),
            state=k.state(cid),
            finals=k.finals(cid),
            open=part.open(listed, account),
            batches=part.batches(listed, account),
            dead=k.dead(cid),
            owner=k.owner(cid),
            flight=k.flight(cid),
            parked=k.parked(cid),
            unknown=part.unknown(listed, account),
            inflight=part.inflight(provider, account),
            responses=part.responses(listed, account),
        )
        got = await self._record(keys=keys, args=args)
        if int(got[0]) < 0:
            return Recorded(0, lost=False, gone=True)
        flags = int(got[2])
        await announce(self.redis, k, cid, flags)
        return Recorded(
            int(got[0]), lost=bool(int(got[1])), gone=False, paused=bool(flags & PAUSED)
        )

    async def drop(self, lease: Lease) -> None:
        """Acknowledge an entry whose campaign no longer exists."""
        await self.redis.xack(lease.stream, GROUP, lease.entry_id)
        await self.redis.xdel(lease.stream, lease.entry_id)
