"""How a queue entry is settled: the modes, and the record script that writes a chunk's
results and settles its entry in one step (queue.Queue.record runs it).

The script's KEYS and ARGV are :class:`RecordKeys` and :class:`RecordArgs`: the Lua locals
that name them are generated from the same fields (lua.script), so Python and Lua agree on
their order by construction.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from dispatcher.lua import MEMBERS, PROGRESS, WRITE_ROWS, script

__all__ = ["RECORD", "RecordArgs", "RecordKeys", "Settle"]


class Settle(StrEnum):
    """What becomes of a queue entry once its results are recorded. The values are what the
    record script compares, so they stay these words."""

    ACK = "ack"  # the chunk is complete
    REQUEUE = "requeue"  # ack and queue the rest again (shutdown, halted)
    HOLD = "hold"  # ack and set the rest aside until resume (paused)
    KEEP = "keep"  # record only: a progress flush, or the lease was lost
    DELAY = "delay"  # ack and queue the rest again after a delay (provider busy)
    DROP = "drop"  # the campaign is gone: acknowledge, record nothing (queue.Queue.drop)


class RecordKeys(NamedTuple):
    """The record script's KEYS, in order."""

    stream: str
    results: str
    counts: str
    meta: str
    events: str
    held: str
    delayed: str
    state: str
    finals: str
    open: str
    batches: str
    dead: str
    owner: str
    flight: str
    parked: str
    unknown: str
    inflight: str
    responses: str


class RecordArgs(NamedTuple):
    """The record script's ARGV, in order (see :data:`RECORD`)."""

    group: str
    id: str  # the entry
    cid: str
    chunk: int
    mode: Settle
    attempt: int
    reason: str  # with hold: pause the campaign for this reason
    delay: int  # ms, with delay
    rows: bytes  # rows.record_lines: an "=<index>" line where a run breaks, then a row a line
    list_open: str  # "1": list the campaign as open to its list API
    batch_lines: str  # batch|cid|chunk lines (keys.batch_member)
    dead_lines: str  # index<TAB>why lines: the dead-letter list
    token: str  # the owner token: only the entry's owner settles it
    only: str  # ranges: the entry is only these recipients of the chunk
    x: str  # ranges: recipients excluded from what it queues again (unknown.py hands them on)
    park_lines: str  # unknown.Park.line() lines
    park_score: int  # the soonest expiry of those parks


#: The record script: write a chunk's results and settle its entry per ``mode``
#: (:class:`Settle`), atomically. Rows are one string of lines: one argument instead of
#: three per recipient keeps a 30,000-recipient record cheap (orjson never writes a raw tab
#: or newline). Parks are ``index<TAB>chunk<TAB>from<TAB>until<TAB>expires<TAB>reason``
#: lines: recipients whose fate is unknown (unknown.py); what the entry queues again
#: (requeue, delay, hold) excludes ``x``, the recipients handed to the unknown-fate machinery
#: since the chunk was first queued, so that they are never sent again from two entries at
#: once. Only the entry's owner (its token)
#: may settle it; anyone else's record is downgraded to ``keep`` and parks nothing.
#: Returns {-1} if the campaign is gone (nothing written), else {new results, lost, flags}
#: (store.SENT, DONE, PAUSED: the transitions this call made, for the caller to log).
RECORD = script(
    r"""
delay = tonumber(delay)
if redis.call('EXISTS', meta) == 0 then return {-1, 0} end
local lost, paused = 0, 0
if mode ~= 'keep' and redis.call('HGET', owner, id) ~= token then
  mode, lost = 'keep', 1
end
if mode == 'hold' and reason == '' and redis.call('HGET', meta, 'state') ~= 'paused' then
  -- Resumed (or cancelled) since the worker found it paused: a resume that ran in between
  -- found nothing held, so setting it aside now would strand it. Back to work instead.
  mode = 'requeue'
end
local new, final_new = write_rows(rows, {results=results, counts=counts, meta=meta,
  state=state, finals=finals, parked=parked})
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if list_open == '1' then redis.call('ZADD', open, 'NX', now, cid) end
for member in string.gmatch(batch_lines, '([^\n]+)') do
  redis.call('ZADD', batches, 'NX', now, member)
  redis.call('ZADD', responses, 'NX', 0, member)  -- its replies: asked for soonest
end
-- the dead-letter list: recipients whose transient failures outlasted every attempt
for index, why in string.gmatch(dead_lines, '([^\t\n]+)\t([^\n]*)') do
  redis.call('HSET', dead, index, chunk .. '\t' .. why)
end
if lost == 0 then
  local n = 0
  for index, entry, why in string.gmatch(park_lines, '([^\t\n]+)\t([^\n]*\t)([^\t\n]+)') do
    local rkey, rfield = bucket(results, index)
    if redis.call('HEXISTS', rkey, rfield) == 0 and redis.call('HEXISTS', parked, index) == 0 then
      redis.call('HSET', parked, index, entry .. why)
      redis.call('HINCRBY', meta, 'u:' .. why, 1)
      n = n + 1
    end
  end
  if n > 0 then
    redis.call('HINCRBY', meta, 'parked_ever', n)  -- a running total: never goes down
    redis.call('ZADD', unknown, 'LT', park_score, cid)
  end
end
if mode ~= 'keep' then
  redis.call('XACK', stream, group, id)
  redis.call('XDEL', stream, id)
  redis.call('HSET', owner, id, 'done')  -- a late former owner finds it settled
  redis.call('HDEL', flight, id, id .. ':x')
  if mode ~= 'requeue' and only == '' then
    -- done, held or waiting in the delayed set: its account's rate is free of it
    redis.call('ZREM', inflight, cid .. '|' .. chunk)
  end
end
if mode == 'requeue' then
  add_entry(stream, cid, chunk, tonumber(attempt) + 1, only, x)
elseif mode == 'delay' then
  redis.call('ZADD', delayed, now + delay, unit(cid, chunk, tonumber(attempt) + 1, only, x))
elseif mode == 'hold' then
  redis.call('SADD', held, held_member(chunk, only, x))
  if reason ~= '' and redis.call('HGET', meta, 'state') ~= 'paused' then
    redis.call('HSET', meta, 'state', 'paused', 'reason', reason)
    redis.call('XADD', events, 'MAXLEN', '~', @MAXLEN@, '*', 'c', cid, 'e', 'paused')
    paused = @PAUSED@
  end
end
local flags = progress(meta, events, cid, new, final_new,
  mode == 'keep' and 'progress' or 'chunk', chunk)
return {new, lost, flags + paused}
""",
    keys=RecordKeys._fields,
    argv=RecordArgs._fields,
    uses=WRITE_ROWS + PROGRESS + MEMBERS,
)
