"""Campaign control in Redis: pause, resume, cancel, and retrying the dead-letter list.

Each is one Lua script, so a control never races a worker's record of the same campaign.
Chunks that go back to work are queued as re-deliveries (a=1): the worker then sends only the
recipients that have no result yet.
"""

from __future__ import annotations

from typing import NamedTuple

from redis.asyncio import Redis

from dispatcher import logs
from dispatcher.keys import DEFAULT_LANE, Keys
from dispatcher.lua import MEMBERS, ROW_RANK, script
from dispatcher.ranges import LUA_TO_RANGES
from dispatcher.rows import LUA_BUCKETS
from dispatcher.store import as_str

#: ``requeue(stream, cid, member)``: queue a held ``chunk[|i[|x]]`` again as a re-delivery
#: (a=1): the worker then sends only the recipients that have no result yet.
_REQUEUE = (
    MEMBERS
    + """
local function requeue(stream, cid, member)
  local n, only, x = parse_held(member)
  add_entry(stream, cid, n, '1', only, x)
end
"""
)

_RESUME = script(
    """
-- KEYS: meta, held, stream, events; ARGV: cid
if redis.call('HGET', KEYS[1], 'state') ~= 'paused' then return -1 end
local chunks = redis.call('SMEMBERS', KEYS[2])
for _, m in ipairs(chunks) do requeue(KEYS[3], ARGV[1], m) end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'queued', 'reason', '')
redis.call('XADD', KEYS[4], 'MAXLEN', '~', @MAXLEN@, '*', 'c', ARGV[1], 'e', 'resumed')
return #chunks
""",
    uses=_REQUEUE,
)


_PAUSE = script(
    """
-- KEYS: meta, events; ARGV: cid, reason
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'paused' or state == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'paused', 'reason', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', @MAXLEN@, '*', 'c', ARGV[1], 'e', 'paused')
return 1
"""
)


class CancelKeys(NamedTuple):
    """The cancel script's KEYS, in order (its Lua locals are made from these fields)."""

    meta: str
    held: str
    stream: str
    events: str
    delayed: str
    ready: str  # the campaign's ready set: its account's campaigns waiting to be admitted


_CANCEL = script(
    """
-- ARGV: cid
if redis.call('HGET', meta, 'state') == 'cancelled' then return -1 end
redis.call('HSET', meta, 'state', 'cancelled', 'reason', 'cancelled by operator')
-- Held, delayed and not yet admitted chunks go to work at once: workers record their
-- recipients as cancelled, so every recipient still ends with a final status.
local moved = 0
local issued = redis.call('HGET', meta, 'issued')
if issued then
  local chunks = tonumber(redis.call('HGET', meta, 'chunks'))
  for n = tonumber(issued), chunks - 1 do
    redis.call('XADD', stream, '*', 'c', ARGV[1], 'n', n, 'a', 0)
    moved = moved + 1
  end
  redis.call('HSET', meta, 'issued', chunks)
  redis.call('ZREM', ready, ARGV[1])
end
for _, m in ipairs(redis.call('SMEMBERS', held)) do
  requeue(stream, ARGV[1], m)
  moved = moved + 1
end
redis.call('DEL', held)
local prefix = ARGV[1] .. '|'
for _, m in ipairs(redis.call('ZRANGE', delayed, 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then
    redis.call('ZREM', delayed, m)
    local _, n, _, only, x = parse_unit(m)
    requeue(stream, ARGV[1], held_member(n, only, x))
    moved = moved + 1
  end
end
redis.call('XADD', events, 'MAXLEN', '~', @MAXLEN@, '*', 'c', ARGV[1], 'e', 'cancelled')
return moved
""",
    keys=CancelKeys._fields,
    uses=_REQUEUE,
)


class RetryKeys(NamedTuple):
    """The retry script's KEYS, in order (its Lua locals are made from these fields)."""

    meta: str
    results: str
    counts: str
    finals: str
    state: str
    dead: str
    stream: str
    events: str


_RETRY = script(
    """
-- ARGV: cid
-- Forget the failed result of every dead-lettered recipient and queue it again, an entry
-- per chunk naming just those recipients (a=1).
local entries = redis.call('HGETALL', dead)
local chunks, n = {}, 0
for i = 1, #entries, 2 do
  local index, chunk = entries[i], string.match(entries[i + 1], '^([^\t]*)')
  local rkey, field = bucket(results, index)
  local row = redis.call('HGET', rkey, field)
  if row then
    redis.call('HDEL', rkey, field)
    local skey = bucket(state, index)
    redis.call('HINCRBY', counts, 'failed', -1)
    redis.call('HINCRBY', meta, 'recorded', -1)
    local held = tonumber(redis.call('HGET', skey, field) or '@RANK_NONE@')
    if math.max(held, row_rank(row)) == @RANK_FINAL@ then
      redis.call('HINCRBY', finals, 'failed', -1)
      redis.call('HINCRBY', meta, 'final', -1)
    end
    redis.call('HDEL', skey, field)
    n = n + 1
    chunks[chunk] = chunks[chunk] or {}
    table.insert(chunks[chunk], tonumber(index))
  end
end
redis.call('DEL', dead)
-- not finished any more: its retention counts again from when it is (lua.PROGRESS)
if n > 0 then redis.call('HDEL', meta, 'done_at') end
for chunk, list in pairs(chunks) do
  table.sort(list)
  redis.call('XADD', stream, '*', 'c', ARGV[1], 'n', chunk, 'a', '1', 'i', to_ranges(list))
end
redis.call('XADD', events, 'MAXLEN', '~', @MAXLEN@, '*', 'c', ARGV[1], 'e', 'retry')
return n
""",
    keys=RetryKeys._fields,
    uses=LUA_TO_RANGES + LUA_BUCKETS + ROW_RANK,
)


class Control:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._resume = redis.register_script(_RESUME)
        self._pause = redis.register_script(_PAUSE)
        self._cancel = redis.register_script(_CANCEL)
        self._retry = redis.register_script(_RETRY)

    async def _where(self, cid: str) -> tuple[str, str]:
        """The campaign's provider and lane; KeyError if there is no such campaign."""
        provider, lane, _account = await self._placed(cid)
        return provider, lane

    async def _placed(self, cid: str) -> tuple[str, str, str]:
        """The campaign's provider, lane and account; KeyError if there is none."""
        got = await self.redis.hmget(self.keys.meta(cid), ["provider", "lane", "account"])
        if got[0] is None:
            raise KeyError(cid)
        return as_str(got[0]), as_str(got[1]) or DEFAULT_LANE, as_str(got[2]) or "default"

    async def resume(self, cid: str) -> int:
        """Put the chunks held by a pause back in the queue; -1 if it was not paused."""
        provider, lane, account = await self._placed(cid)
        k = self.keys
        part = k.part(cid)
        keys = [k.meta(cid), k.held(cid), part.queue(provider, lane), part.events]
        n = int(await self._resume(keys=keys, args=[cid]))
        if n >= 0:
            logs.event("resumed", cid, f"{n} held chunk(s) queued again", provider=provider,
                       account=account)  # fmt: skip
        return n

    async def pause(self, cid: str, reason: str = "paused by operator") -> bool:
        """Stop sending (chunks in flight finish); False if already paused or cancelled."""
        provider, _lane, account = await self._placed(cid)
        k = self.keys
        events = k.part(cid).events
        paused = bool(await self._pause(keys=[k.meta(cid), events], args=[cid, reason]))
        if paused:
            logs.event("paused", cid, reason, provider=provider, account=account, reason=reason,
                       cause="operator")  # fmt: skip
        return paused

    async def cancel(self, cid: str) -> int:
        """Send nothing more; unsent recipients become ``cancelled``. -1 if already so."""
        provider, lane, account = await self._placed(cid)
        k = self.keys
        part = k.part(cid)
        keys = CancelKeys(
            meta=k.meta(cid),
            held=k.held(cid),
            stream=part.queue(provider, lane),
            events=part.events,
            delayed=part.delayed(provider, lane),
            ready=part.ready_campaigns(provider, lane, account),
        )
        moved = int(await self._cancel(keys=keys, args=[cid]))
        if moved >= 0:
            logs.event("cancelled", cid, f"by operator; {moved} unsent chunk(s) to be recorded "
                       "cancelled", provider=provider, account=account)  # fmt: skip
        return moved

    async def dead(self, cid: str) -> dict[int, str]:
        """The dead-letter list: recipient index → why it failed."""
        raw = await self.redis.hgetall(self.keys.dead(cid))
        return {int(as_str(k)): as_str(v).partition("\t")[2] for k, v in raw.items()}

    async def retry(self, cid: str) -> int:
        """Send the dead-lettered recipients again; how many."""
        provider, lane = await self._where(cid)
        k = self.keys
        keys = RetryKeys(
            meta=k.meta(cid),
            results=k.results(cid),
            counts=k.counts(cid),
            finals=k.finals(cid),
            state=k.state(cid),
            dead=k.dead(cid),
            stream=k.part(cid).queue(provider, lane),
            events=k.part(cid).events,
        )
        return int(await self._retry(keys=keys, args=[cid]))
