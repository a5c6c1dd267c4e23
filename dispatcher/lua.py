"""What the Lua scripts share: the constants they take from Python, writing send results,
the progress event, the members of the delayed and held sets, and named KEYS.

Every script goes through :func:`render` (through :func:`script`), which fills each
``@NAME@`` from :data:`CONSTANTS`: the events stream's length, the transition bits, the
status ranks and the final statuses have one source, in Python, and a misspelt name fails
at import.

A send result can be written by the worker that sent it (queue.py), by the list scan that
found a message whose fate was unknown (reconcile.py), or on a delivery report that proves
the provider had it (tracking.py). All three go through :data:`WRITE_ROWS`, so a result is
written once (HSETNX), counted once, settles a parked recipient, and a report that came
first keeps its rank.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dispatcher.model import FINAL, Rank
from dispatcher.rows import BUCKET, LUA_BUCKETS, LUA_WORDS
from dispatcher.store import DONE, EVENTS_MAXLEN, PAUSED, SENT

#: What ``@NAME@`` stands for in every script: ``MAXLEN`` (the events stream's approximate
#: length), the transition bits ``SENT``, ``DONE``, ``PAUSED`` (store.py), the ranks
#: ``RANK_NONE`` … ``RANK_FINAL`` (model.Rank) and ``FINAL``, a table of the final statuses.
CONSTANTS: dict[str, str] = {
    "MAXLEN": str(EVENTS_MAXLEN),
    "SENT": str(SENT),
    "DONE": str(DONE),
    "PAUSED": str(PAUSED),
    "FINAL": "{" + ", ".join(f"['{s.value}']=1" for s in sorted(FINAL)) + "}",
    **{f"RANK_{r.name}": str(int(r)) for r in Rank},
}
_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LUA_KEYWORDS = frozenset({
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
})  # fmt: skip


def render(text: str, **extra: object) -> str:
    """``text`` with every ``@NAME@`` replaced by its :data:`CONSTANTS` value (or by one of
    ``extra``, a script's own); a name with neither raises KeyError, at import."""
    values = {**CONSTANTS, **{name: str(v) for name, v in extra.items()}}

    def value(m: re.Match[str]) -> str:
        if m[1] not in values:
            raise KeyError(f"no Lua constant @{m[1]}@")
        return values[m[1]]

    return _PLACEHOLDER.sub(value, text)


def script(body: str, *, keys: Sequence[str] = (), argv: Sequence[str] = (), uses: str = "") -> str:
    """A script's text, rendered: the fragments it ``uses``, then a ``local name = KEYS[i]``
    line for each of ``keys`` (and ``ARGV[i]`` for ``argv``), then ``body``.

    Callers pass the ``_fields`` of the NamedTuple they send as the keys (and args), so the
    order on both sides comes from one tuple and cannot drift."""
    names = [*keys, *argv]
    for name in names:
        if not _NAME.match(name) or name in _LUA_KEYWORDS:
            raise ValueError(f"{name!r} cannot name a Lua local")
    if len(set(names)) != len(names):
        raise ValueError(f"a name is given twice: {names}")
    lines = [f"local {n} = KEYS[{i}]" for i, n in enumerate(keys, 1)]
    lines += [f"local {n} = ARGV[{i}]" for i, n in enumerate(argv, 1)]
    return render(uses + "\n".join(lines) + "\n" + body)


#: ``unit(cid, chunk, attempt, only, x)`` names a piece of work in the delayed set, as
#: keys.unit does in Python: ``cid|chunk|attempt``, then ``|only`` when only some of the
#: chunk's recipients are to be sent, and ``|x`` when some are excluded (handed to the
#: unknown-fate machinery by an earlier entry of the chunk: never this entry's to send);
#: ``parse_unit(m)`` gives back cid, chunk, attempt, only and x ('' for none), or nil.
#: ``held_member(chunk, only, x)`` names it in a campaign's held set, ``chunk[|only[|x]]``;
#: ``parse_held(m)`` gives back chunk, only and x. ``add_entry(stream, cid, chunk, attempt,
#: only, x)`` queues it: fields c, n, a, and i (only) and x where not empty.
MEMBERS = """
local function unit(cid, chunk, attempt, only, x)
  local m = cid .. '|' .. chunk .. '|' .. attempt
  only, x = only or '', x or ''
  if x ~= '' then return m .. '|' .. only .. '|' .. x end
  if only ~= '' then m = m .. '|' .. only end
  return m
end
local function parse_unit(m)
  return string.match(m, '^([^|]+)|(%d+)|(%d+)|?([^|]*)|?([^|]*)$')
end
local function held_member(chunk, only, x)
  only, x = only or '', x or ''
  if x ~= '' then return chunk .. '|' .. only .. '|' .. x end
  if only ~= '' then return chunk .. '|' .. only end
  return chunk
end
local function parse_held(m)
  return string.match(m, '^(%d+)|?([^|]*)|?([^|]*)$')
end
local function add_entry(stream, cid, chunk, attempt, only, x)
  local f = {'c', cid, 'n', chunk, 'a', attempt}
  if only ~= nil and only ~= '' then f[#f + 1] = 'i'; f[#f + 1] = only end
  if x ~= nil and x ~= '' then f[#f + 1] = 'x'; f[#f + 1] = x end
  return redis.call('XADD', stream, '*', unpack(f))
end
"""

#: ``row_rank(row)``: the rank (model.Rank) a send result row gives its recipient: FINAL
#: for a final status, else ACCEPTED; NONE for no row (nil or false). A recipient's rank is
#: the higher of its row's and its ``state`` entry, which only a report writes (keys.py): a
#: chunk's results then cost no second hash, and the rank still only moves up. It brings
#: ``FINAL`` and ``WORD`` (rows.LUA_WORDS).
ROW_RANK = render(
    """
local FINAL = @FINAL@
local WORD = @WORDS@
local function row_rank(row)
  if not row then return @RANK_NONE@ end
  local word = WORD[string.byte(row)] or cjson.decode(row)[1]  -- JSON: its first field
  return FINAL[word] and @RANK_FINAL@ or @RANK_ACCEPTED@
end
""",
    WORDS=LUA_WORDS,
)

#: ``write_rows(rows, k[, keep])``: ``rows`` as rows.record_lines writes them (``=<index>``
#: lines, a row a line for the next index, and ``*<n>`` for the last row again at the next
#: n indexes); ``k`` holds the key names results, counts,
#: meta, state, finals, parked (results and state are bucketed: rows.py); ``keep(index)``,
#: if given, says which rows to write. Returns new, final_new. It brings ``bucket``
#: (rows.LUA_BUCKETS).
#:
#: It works a bucket at a time: one HMGET finds which rows are new, one HSET writes them,
#: and one HMGET reads the ranks reports gave them (a final counts once), so a chunk costs a
#: few calls per 128 recipients rather than four per recipient (those calls were most of
#: Redis' CPU at batch providers' rates). A bucket that does not exist yet (a chunk's first
#: record, a recipient no report named) needs no HMGET: an EXISTS says so, asked only of a
#: bucket with many rows to write. A row is written only where none is (what HSETNX did
#: one at a time), the first of two for the same recipient wins, and the parked hash is
#: read only when it has entries. The row is the rank (``row_rank``): none is written.
#: The ranks are read only for final rows. A ``*<n>`` line that covers a whole bucket
#: (a batch's one answer for 25,000 recipients) keeps it as that row alone, and a new
#: bucket of a row that is not final, with nobody parked, is written by one HSET of
#: arguments made once a call, not a row at a time (25,000 rows: 17.2 -> 11.0 ms).
WRITE_ROWS = (
    LUA_BUCKETS
    + ROW_RANK
    + render(
        """
local function read_new(key, names, n)  -- the values of names, {} when surely none
  if n >= @FEW@ and redis.call('EXISTS', key) == 0 then return {} end
  return redis.call('HMGET', key, unpack(names, 1, n))
end
local function each_row(b)  -- a whole bucket (one row at every field) as any other
  if b.whole then
    local fields, rows, words = {}, {}, {}
    for f = 0, @BUCKET@ - 1 do fields[f + 1], rows[f + 1], words[f + 1] = f, b.whole, b.word end
    b.fields, b.rows, b.words, b.whole = fields, rows, words, nil
  end
  return b
end
local function write_bucket(k, b, name, whole, tally, final_tally, any_parked)
  local rkey = k.results .. ':' .. b.b
  if b.whole then
    if not any_parked and not FINAL[b.word] and redis.call('EXISTS', rkey) == 0 then
      redis.call('HSET', rkey, unpack(whole(b.whole)))
      tally[b.word] = (tally[b.word] or 0) + @BUCKET@
      return @BUCKET@, 0
    end
    each_row(b)
  end
  local n, fields, rows, words = b.n, b.fields, b.rows, b.words
  local have = {}
  if n < @FEW@ or redis.call('EXISTS', rkey) == 1 then
    local names = {}
    for i = 1, n do names[i] = name(fields[i]) end
    have = redis.call('HMGET', rkey, unpack(names, 1, n))
  end
  local set, new, seen, m, finals = {}, {}, {}, 0, false
  local word, count = nil, 0  -- rows of one status in a row: tallied together
  for i = 1, n do
    local f = fields[i]
    if not have[i] and not seen[f] then
      seen[f] = true
      set[2 * m + 1], set[2 * m + 2] = name(f), rows[i]
      m = m + 1
      new[m] = i
      local w = words[i]
      if w ~= word then
        if count > 0 then tally[word] = (tally[word] or 0) + count end
        word, count = w, 0
        finals = finals or FINAL[w]
      end
      count = count + 1
    end
  end
  if count > 0 then tally[word] = (tally[word] or 0) + count end
  if m == 0 then return 0, 0 end
  redis.call('HSET', rkey, unpack(set))
  if any_parked then  -- their fates were unknown: now they are known
    local indexes = {}
    for j = 1, m do indexes[j] = tostring(b.b * @BUCKET@ + fields[new[j]]) end
    local parked = redis.call('HMGET', k.parked, unpack(indexes))
    for j = 1, m do
      if parked[j] then
        redis.call('HDEL', k.parked, indexes[j])
        redis.call('HINCRBY', k.meta, 'u:' .. string.match(parked[j], '([^\\t]*)$'), -1)
      end
    end
  end
  if not finals then return m, 0 end
  -- a report may have come first, final: then this final was counted already
  local asked = {}
  for j = 1, m do asked[j] = name(fields[new[j]]) end
  local ranks = read_new(k.state .. ':' .. b.b, asked, m)
  local final_new = 0
  for j = 1, m do
    local word = words[new[j]]
    if FINAL[word] and tonumber(ranks[j] or '@RANK_NONE@') < @RANK_FINAL@ then
      final_tally[word] = (final_tally[word] or 0) + 1
      final_new = final_new + 1
    end
  end
  return m, final_new
end
local function write_rows(rows, k, keep)
  local buckets, order, names, wholes = {}, {}, {}, {}
  local function name(f)  -- a field's name, made once a call
    local s = names[f]
    if not s then s = tostring(f); names[f] = s end
    return s
  end
  local function whole(row)  -- HSET's arguments for every field of a bucket at this row
    local set = wholes[row]
    if not set then
      set = {}
      for f = 0, @BUCKET@ - 1 do set[2 * f + 1], set[2 * f + 2] = name(f), row end
      wholes[row] = set
    end
    return set
  end
  -- index, its field in its bucket, and that bucket's rows (nil: look it up)
  local index, f, cur = 0, 0, nil
  local row, word  -- the last row line and its status
  for line in string.gmatch(rows, '[^\\n]+') do
    local c = string.byte(line)
    local times = 1
    if c == 61 then  -- '=<index>': the next row's
      index = tonumber(string.sub(line, 2))
      f, cur, times = index % @BUCKET@, nil, 0
    elseif c == 42 then  -- '*<n>': the last row again, for the next n indexes
      times = tonumber(string.sub(line, 2))
    else
      row, word = line, WORD[c] or cjson.decode(line)[1]  -- a JSON row starts with its status
    end
    while times > 0 do
      if f == 0 and times >= @BUCKET@ and not keep and not buckets[index / @BUCKET@] then
        -- a whole bucket of the one row (a batch's shared answer): kept as that
        local bn = index / @BUCKET@
        buckets[bn] = {b = bn, n = @BUCKET@, whole = row, word = word}
        order[#order + 1] = bn
        index, times, cur = index + @BUCKET@, times - @BUCKET@, nil
      else
        if not keep or keep(index) then
          if not cur then
            local bn = (index - f) / @BUCKET@
            cur = buckets[bn]
            if not cur then
              cur = {b = bn, n = 0, fields = {}, rows = {}, words = {}}
              buckets[bn] = cur
              order[#order + 1] = bn
            end
            each_row(cur)  -- a whole bucket's rows come first: the first row wins
          end
          local n = cur.n + 1
          cur.n, cur.fields[n], cur.rows[n], cur.words[n] = n, f, row, word
        end
        index, f, times = index + 1, f + 1, times - 1
        if f == @BUCKET@ then f, cur = 0, nil end
      end
    end
  end
  local new, final_new = 0, 0
  local tally, final_tally = {}, {}
  local any_parked = redis.call('EXISTS', k.parked) == 1
  for _, bn in ipairs(order) do
    local n, fn = write_bucket(k, buckets[bn], name, whole, tally, final_tally, any_parked)
    new, final_new = new + n, final_new + fn
  end
  for status, n in pairs(tally) do redis.call('HINCRBY', k.counts, status, n) end
  for status, n in pairs(final_tally) do redis.call('HINCRBY', k.finals, status, n) end
  return new, final_new
end
""",
        BUCKET=BUCKET,
        FEW=16,
    )
)

#: ``progress(meta, events, cid, new, final_new, event, chunk)``: count the new results and
#: say on the events stream what happened: ``done``, ``sent``, or ``event``. Returns the
#: transitions this call made (store.SENT, store.DONE bits): the counts crossed the total
#: here, so the caller's process logs them, once. A campaign that is finished (every
#: recipient has a result, and a final status unless it was cancelled) gets ``done_at``
#: once: its retention counts from then (retention.py).
PROGRESS = render(
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
  if recorded >= total and (final >= total or redis.call('HGET', meta, 'state') == 'cancelled')
  then  -- finished: its retention starts now (retention.py)
    local t = redis.call('TIME')
    redis.call('HSETNX', meta, 'done_at', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  end
  redis.call('XADD', events, 'MAXLEN', '~', @MAXLEN@, '*', 'c', cid, 'e', event, 'n', chunk)
  local flags = 0
  if new > 0 and recorded >= total and recorded - new < total then flags = flags + @SENT@ end
  if final_new > 0 and final >= total and final - final_new < total then
    flags = flags + @DONE@
  end
  return flags
end
"""
)
