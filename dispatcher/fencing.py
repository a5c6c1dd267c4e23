"""Fencing: a worker that no longer owns a queue entry sends nothing more from it.

Every entry a worker works on gets an *owner token* in ``{cid}:owner`` when it is claimed:
set only if the entry has no owner yet (a fresh read), or taken over after its lease
expired (XAUTOCLAIM), or written ``done`` once the entry is settled. Before requests leave,
the worker asks :data:`_AUTHORIZE` to check its token and note the recipients it is about to
send, with Redis's time, in ``{cid}:flight``; that answer is good for ``AUTH_TTL_S`` on the
worker's own monotonic clock, after which it must ask again. So a worker that was stopped
(SIGSTOP, a long GC, a frozen VM) past its lease wakes up with expired authorisations, asks,
is refused, and stops before sending.

A successor that takes an entry over (:data:`_TAKEOVER`) swaps in its own token and, in the
same script, parks every recipient the previous owner was authorised to send and did not
record: the provider may have it (unknown fate, see unknown.py). Such a request could have
left up to ``AUTH_TTL_S`` after its authorisation and reached the provider up to the
provider's timeout after that, so that is the window in which the provider's records are
searched for it. Everything the previous owner was authorised to send is the unknown-fate
machinery's from then on, even once it has moved on from parked (held for an operator,
queued again in an entry of its own): the takeover notes it as the entry's ``x`` and no later
owner of the entry, nor any entry queued in its place, sends it.

All keys of each script carry the campaign's hash tag.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from redis.asyncio import Redis

from dispatcher.keys import Keys
from dispatcher.lua import script
from dispatcher.ranges import LUA_EACH, LUA_TO_RANGES, decode, encode
from dispatcher.rows import LUA_BUCKETS
from dispatcher.store import as_str

#: How long an authorisation lets a worker send, on its monotonic clock.
AUTH_TTL_S = 1.0
DONE = "done"

_CLAIM = """
-- KEYS: meta, owner. ARGV: entry, token. 1 ok, 2 ok and the campaign starts with it (the
-- first chunk claimed while it runs: started_at set), 0 someone else has (had) it, -1 gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'paused' or state == 'cancelled' then return 1 end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return 1 + redis.call('HSETNX', KEYS[1], 'started_at', ms)
"""

_AUTHORIZE = """
-- KEYS: meta, owner, flight. ARGV: entry, token, ranges.
-- {1, ms} authorised at Redis time ms; {0} another worker owns the entry; {-1} gone;
-- {2} the campaign was paused or cancelled since the chunk started.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return {0} end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'paused' or state == 'cancelled' then return {2} end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local marks = redis.call('HGET', KEYS[3], ARGV[1]) or ''
redis.call('HSET', KEYS[3], ARGV[1], marks .. ms .. ':' .. ARGV[3] .. ';')
return {1, ms}
"""


class TakeoverKeys(NamedTuple):
    """The takeover script's KEYS, in order (its Lua locals are made from these fields)."""

    meta: str
    owner: str
    flight: str
    results: str
    parked: str
    unknown: str  # the account's unknown zset


_TAKEOVER = script(
    """
-- ARGV: entry, token, cid, chunk, skew ms, late ms, wait ms, floor ms (with a list API to
-- settle them, expiry comes no sooner than this long after the window closed; 0: none).
-- Returns {-1} gone, {-2} already settled, or {parked, handed}: handed is every recipient
-- a previous owner of the entry was authorised to send (ranges), kept in the flight hash
-- as <entry>:x until the entry settles, so that no later owner sends them from it.
if redis.call('EXISTS', meta) == 0 then return {-1} end
if redis.call('HGET', owner, ARGV[1]) == 'done' then return {-2} end
redis.call('HSET', owner, ARGV[1], ARGV[2])
local marks = redis.call('HGET', flight, ARGV[1])
redis.call('HDEL', flight, ARGV[1])
local xfield = ARGV[1] .. ':x'
local before = redis.call('HGET', flight, xfield) or ''
if not marks then return {0, before} end
local skew, late, wait, floor = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]),
  tonumber(ARGV[8])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first, last = {}, {}
for ms, ranges in string.gmatch(marks, '(%d+):([^;]*);') do
  local at = tonumber(ms)
  each_index(ranges, function(i)
    if first[i] == nil or at < first[i] then first[i] = at end
    if last[i] == nil or at > last[i] then last[i] = at end
  end)
end
local handed, all = {}, {}
each_index(before, function(i) handed[i] = true end)
for i in pairs(first) do handed[i] = true end
for i in pairs(handed) do all[#all + 1] = i end
table.sort(all)
local x = to_ranges(all)
redis.call('HSET', flight, xfield, x)
local n, soonest = 0, nil
for i, at in pairs(first) do
  local rkey, rfield = bucket(results, i)
  if redis.call('HEXISTS', rkey, rfield) == 0 and redis.call('HEXISTS', parked, i) == 0 then
    local until_ = last[i] + late + skew
    local expires = now + wait
    if floor > 0 then expires = math.max(expires, until_ + floor) end
    redis.call('HSET', parked, i, table.concat(
      {ARGV[4], at - skew, until_, expires, 'takeover'}, '\\t'))
    n = n + 1
    if soonest == nil or expires < soonest then soonest = expires end
  end
end
if n > 0 then
  redis.call('HINCRBY', meta, 'u:takeover', n)
  redis.call('HINCRBY', meta, 'parked_ever', n)  -- a running total: never goes down
  redis.call('ZADD', unknown, 'LT', soonest, ARGV[3])
end
return {n, x}
""",
    keys=TakeoverKeys._fields,
    uses=LUA_EACH + LUA_TO_RANGES + LUA_BUCKETS,
)


class TakenOver(NamedTuple):
    """What a takeover came to: the claim, how many recipients it parked, and every
    recipient a previous owner was authorised to send (parked now or before, or recorded):
    the new owner sends none of them."""

    claim: Claim
    parked: int = 0
    handed: frozenset[int] = frozenset()


class Claim(Enum):
    OK = "ok"
    LOST = "lost"  # another worker owns (or settled) the entry
    GONE = "gone"  # the campaign no longer exists (Redis lost it, or it was purged)
    HALTED = "halted"  # paused or cancelled by an operator: send nothing more for now


@dataclass(slots=True)
class Permits:
    """What one chunk run is authorised to send: position → (loop time asked, Redis ms)."""

    token: str
    granted: dict[int, tuple[float, int]] = field(default_factory=dict)
    pending: asyncio.Future[Claim] | None = None

    def fresh(self, positions: tuple[int, ...], now: float) -> bool:
        """Whether a request (its positions, authorised together) may leave now."""
        got = self.granted.get(positions[0])
        return got is not None and now - got[0] < AUTH_TTL_S

    def since_ms(self, position: int) -> int | None:
        """Redis time of the position's latest authorisation, if any."""
        got = self.granted.get(position)
        return got[1] if got else None


class Fence:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._claim = redis.register_script(_CLAIM)
        self._authorize = redis.register_script(_AUTHORIZE)
        self._takeover = redis.register_script(_TAKEOVER)

    async def claim(self, cid: str, entry: str, token: str) -> Claim:
        """Own a freshly read entry (one no worker has owned before)."""
        return (await self.claim_first(cid, entry, token))[0]

    async def claim_first(self, cid: str, entry: str, token: str) -> tuple[Claim, bool]:
        """:meth:`claim`, and whether this claim started the campaign: the first of its
        chunks claimed while it is neither paused nor cancelled (logged once, by the
        claiming worker)."""
        k = self.keys
        got = int(await self._claim(keys=[k.meta(cid), k.owner(cid)], args=[entry, token]))
        return {1: Claim.OK, 2: Claim.OK, 0: Claim.LOST}.get(got, Claim.GONE), got == 2

    async def take_over(
        self,
        cid: str,
        chunk: int,
        entry: str,
        token: str,
        unknown_key: str,
        *,
        skew_s: float,
        late_s: float,
        wait_s: float,
        floor_s: float = 0.0,
    ) -> TakenOver:
        """Own an entry whose lease expired; park what its previous owner may have sent."""
        k = self.keys
        got = await self._takeover(
            keys=TakeoverKeys(meta=k.meta(cid), owner=k.owner(cid), flight=k.flight(cid),
                              results=k.results(cid), parked=k.parked(cid), unknown=unknown_key),
            args=[entry, token, cid, chunk, int(skew_s * 1000),
                  int((AUTH_TTL_S + late_s) * 1000), int(wait_s * 1000), int(floor_s * 1000)],
        )  # fmt: skip
        code = int(got[0])
        if code == -1:
            return TakenOver(Claim.GONE)
        if code == -2:
            return TakenOver(Claim.LOST)
        return TakenOver(Claim.OK, code, frozenset(decode(as_str(got[1]))))

    async def authorize(
        self, cid: str, entry: str, permits: Permits, positions: dict[int, int]
    ) -> Claim:
        """Authorise ``positions`` (position → recipient index) of a run; one call at a
        time per run, so concurrent requests share the answer."""
        if permits.pending is not None:
            return await asyncio.shield(permits.pending)
        future: asyncio.Future[Claim] = asyncio.get_running_loop().create_future()
        permits.pending = future
        try:
            asked = time.monotonic()
            k = self.keys
            got = await self._authorize(
                keys=[k.meta(cid), k.owner(cid), k.flight(cid)],
                args=[entry, permits.token, encode(positions.values())],
            )
            code = int(got[0])
            claim = {1: Claim.OK, 0: Claim.LOST, 2: Claim.HALTED}.get(code, Claim.GONE)
            if claim is Claim.OK:
                permits.granted.update(dict.fromkeys(positions, (asked, int(got[1]))))
            future.set_result(claim)
            return claim
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: other waiters re-raise it themselves
            raise
        finally:
            permits.pending = None
