"""Lua fragments that several scripts share: writing send results, and the progress event.

A send result can be written by the worker that sent it (queue.py), by the list scan that
found a message whose fate was unknown (reconcile.py), or on a delivery report that proves
the provider had it (tracking.py). All three go through :data:`WRITE_ROWS`, so a result is
written once (HSETNX), counted once, settles a parked recipient, and a report that came
first keeps its rank.
"""

from __future__ import annotations

from dispatcher.model import FINAL
from dispatcher.store import DONE, EVENTS_MAXLEN, SENT

_FINAL_TABLE = "{" + ", ".join(f"['{s.value}']=1" for s in sorted(FINAL)) + "}"

#: ``write_rows(rows, k)``: ``rows`` is ``index<TAB>status<TAB>row json`` lines; ``k`` holds
#: the key names results, counts, meta, state, finals, parked. Returns new, final_new.
WRITE_ROWS = (
    """
local FINAL = @FINAL@
local function write_rows(rows, k)
  local new, final_new = 0, 0
  local tally, final_tally = {}, {}
  for index, status, row in string.gmatch(rows, '([^\\t\\n]+)\\t([^\\t\\n]+)\\t([^\\n]+)') do
    if redis.call('HSETNX', k.results, index, row) == 1 then
      tally[status] = (tally[status] or 0) + 1
      new = new + 1
      local parked = redis.call('HGET', k.parked, index)
      if parked then  -- its fate was unknown: now it is known
        redis.call('HDEL', k.parked, index)
        redis.call('HINCRBY', k.meta, 'u:' .. string.match(parked, '([^\\t]*)$'), -1)
      end
      -- a report may have come first: the rank only moves up, and a final counts once
      local rank = FINAL[status] and 3 or 1
      if rank > tonumber(redis.call('HGET', k.state, index) or '0') then
        redis.call('HSET', k.state, index, rank)
        if rank == 3 then
          final_tally[status] = (final_tally[status] or 0) + 1
          final_new = final_new + 1
        end
      end
    end
  end
  for status, n in pairs(tally) do redis.call('HINCRBY', k.counts, status, n) end
  for status, n in pairs(final_tally) do redis.call('HINCRBY', k.finals, status, n) end
  return new, final_new
end
"""
).replace("@FINAL@", _FINAL_TABLE)

#: ``progress(meta, events, cid, new, final_new, event, chunk)``: count the new results and
#: say on the events stream what happened: ``done``, ``sent``, or ``event``. Returns the
#: transitions this call made (store.SENT, store.DONE bits): the counts crossed the total
#: here, so the caller's process logs them, once.
PROGRESS = (
    """
local function progress(meta, events, cid, new, final_new, event, chunk)
  local recorded = redis.call('HINCRBY', meta, 'recorded', new)
  local final = redis.call('HINCRBY', meta, 'final', final_new)
  local total = tonumber(redis.call('HGET', meta, 'total'))
  if final_new > 0 and final >= total then
    event = 'done'
  elseif new > 0 and recorded >= total then
    event = 'sent'
  end
  redis.call('XADD', events, 'MAXLEN', '~', @MAXLEN@, '*', 'c', cid, 'e', event, 'n', chunk)
  local flags = 0
  if new > 0 and recorded >= total and recorded - new < total then flags = flags + @SENT@ end
  if final_new > 0 and final >= total and final - final_new < total then
    flags = flags + @DONE@
  end
  return flags
end
""".replace("@MAXLEN@", str(EVENTS_MAXLEN))
    .replace("@SENT@", str(SENT))
    .replace("@DONE@", str(DONE))
)
