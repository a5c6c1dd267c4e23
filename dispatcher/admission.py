"""Fair admission: which chunk goes to work next, across accounts and campaigns.

A campaign's chunks do not enter its lane's stream when it is enqueued: they wait in the
lane's *ready* sets, and are admitted a few at a time, by one script that

* rotates across the lane's **accounts** (the one served longest ago first), skipping an
  account whose rate is already busy: it has ``cap`` chunks admitted and not yet done
  (``inflight:``), about what its rate sends in a second, plus one. A worker therefore takes
  a chunk only for an account that can send soon; accounts whose rate is free are served at
  once, whatever another account has queued;
* within an account, picks among its running **campaigns** by weighted fair queuing:
  each admitted chunk moves its campaign's finish tag on by 1/weight, and the campaign
  with the lowest tag goes next (round robin when weights are equal; a new campaign starts
  at the account's virtual clock, so it neither waits for older ones nor jumps ahead of
  them for long);
* skips paused campaigns, those whose start time has not come, and those still being
  enqueued (``state=staging``, staging.py; one whose meta is gone is dropped).

The otp lane rotates the same way but ignores the caps: one-time passwords never wait for
an account's bulk work. The stream stays the lease: what is admitted is read, leased, taken
over, recorded and acknowledged exactly as before; the record script takes a chunk out of
``inflight:`` when it is done. Workers admit before they read; an enqueue admits at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from redis.asyncio import Redis

from dispatcher.config import ProviderSettings, Settings
from dispatcher.keys import LANES, Keys
from dispatcher.providers import account_codec, chunk_size
from dispatcher.providers.base import Codec

#: Seconds of an account's rate that its admitted chunks may hold.
BUSY_S = 1.0
MOST_CAP = 1000
STALE_MS = 60_000  # an in-flight mark this old is checked: is its campaign still there?
MAX_CAMPAIGNS = 50  # campaigns of one account looked at per pick
CID = "@cid@"  # stands for a campaign id in a key name (never one: ids are hex)

_ADMIT = """
-- KEYS[1]: the partition's events stream (a key of its slot, for a cluster to route by).
-- ARGV: the partition's prefix (keys.Part.base), what comes before and after a campaign
--   id in its meta key, most to admit, then per (provider, lane) in priority order:
--   provider, lane, uncapped ('1' for otp), default cap, 'account=cap,…'
-- Returns how many chunks were admitted.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, meta_pre, meta_post, most = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local admitted = 0

local function meta_key(cid) return meta_pre .. cid .. meta_post end

local function prune(inflight)
  local old = redis.call('ZRANGEBYSCORE', inflight, '-inf', now - @STALE@, 'LIMIT', 0, 10)
  for _, m in ipairs(old) do
    if redis.call('EXISTS', meta_key(string.match(m, '^([^|]+)'))) == 0 then
      redis.call('ZREM', inflight, m)
    end
  end
end

-- The account's next campaign and chunk, or nil if none may go now: the lowest finish tag
-- among those that may go; of equal tags, the one admitted least recently (``round`` grows
-- with every admission of the lane).
local function pick(campaigns, vclock, account, round)
  local list = redis.call('ZRANGE', campaigns, 0, @MAXC@ - 1, 'WITHSCORES')
  local best, best_tag, best_served, best_meta = nil, nil, nil, nil
  for i = 1, #list, 2 do
    local cid, tag = list[i], tonumber(list[i + 1])
    if best_tag ~= nil and tag > best_tag + 1e-9 then break end
    local m = redis.call('HMGET', meta_key(cid), 'state', 'start_at', 'issued', 'chunks',
                         'weight', 'served')
    local issued, chunks = tonumber(m[3] or '0'), tonumber(m[4] or '0')
    if m[1] == 'staging' then
      -- Still being enqueued (staging.py): nothing to admit yet, and it stays.
    elseif m[4] == false or issued >= chunks then
      redis.call('ZREM', campaigns, cid)  -- gone, or all its chunks admitted
    elseif m[1] ~= 'paused' and tonumber(m[2] or '0') <= now then
      local served = tonumber(m[6] or '0')
      if best == nil or served < best_served then
        best, best_tag, best_served, best_meta = cid, tag, served, m
      end
    end
  end
  if best == nil then return nil end
  local issued, chunks = tonumber(best_meta[3] or '0'), tonumber(best_meta[4])
  local v = tonumber(redis.call('HGET', vclock, account) or '0')
  local start = math.max(best_tag, v)
  redis.call('HSET', vclock, account, start)
  redis.call('HSET', meta_key(best), 'issued', issued + 1, 'served', round)
  if issued + 1 >= chunks then
    redis.call('ZREM', campaigns, best)
  else
    redis.call('ZADD', campaigns, start + 1 / math.max(1, tonumber(best_meta[5] or '1')), best)
  end
  return best, issued
end

local i = 5
while i <= #ARGV and admitted < most do
  local provider, lane, uncapped, cap = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local caps = {}
  for name, n in string.gmatch(ARGV[i + 4], '([^=,]+)=(%d+)') do caps[name] = tonumber(n) end
  i = i + 5
  local ready = prefix .. 'ready:' .. provider .. ':' .. lane
  local vclock = prefix .. 'vclock:' .. provider .. ':' .. lane
  local stream = prefix .. 'q:' .. provider .. ':' .. lane
  local blocked = {}
  while admitted < most do
    local served = false
    local accounts = redis.call('ZRANGE', ready, 0, -1)
    for _, account in ipairs(accounts) do
      if not blocked[account] then
        local inflight = prefix .. 'inflight:' .. provider .. ':' .. account
        local campaigns = ready .. ':' .. account
        prune(inflight)
        if uncapped == '1' or redis.call('ZCARD', inflight) < (caps[account] or cap) then
          local last = redis.call('ZREVRANGE', ready, 0, 0, 'WITHSCORES')
          local round = tonumber(last[2]) + 1
          local cid, chunk = pick(campaigns, vclock, account, round)
          if cid then
            redis.call('XADD', stream, '*', 'c', cid, 'n', chunk, 'a', 0)
            redis.call('ZADD', inflight, now, cid .. '|' .. chunk)
            redis.call('ZADD', ready, round, account)  -- to the back of the round
            admitted = admitted + 1
            served = true
          else
            blocked[account] = true
          end
          if redis.call('EXISTS', campaigns) == 0 then redis.call('ZREM', ready, account) end
        else
          blocked[account] = true
        end
        if served then break end
      end
    end
    if not served then break end
  end
end
return admitted
""".replace("@STALE@", str(STALE_MS)).replace("@MAXC@", str(MAX_CAMPAIGNS))


def cap_for(ps: ProviderSettings, codec: Codec, account: str = "default") -> int:
    """How many chunks an account may have admitted at once: what its rate sends in
    ``BUSY_S``, plus one so that the next is there when one finishes."""
    per_request = codec.per_request
    requests = math.ceil(chunk_size(ps, codec) / per_request) if per_request else 1
    chunk_seconds = requests / ps.rate_for(account)
    return min(MOST_CAP, max(1, math.ceil(BUSY_S / chunk_seconds)) + 1)


class Admission:
    """Admits chunks of the given providers' lanes, most urgent lane first."""

    def __init__(self, redis: Redis, settings: Settings, providers: Sequence[str]) -> None:
        self.redis = redis
        self.keys = Keys.of(settings, redis)
        self.providers = list(providers)
        self._script = redis.register_script(_ADMIT)
        self._turn = 0
        # Each partition's prefix, and what comes before and after an id in its meta key.
        self._parts = [(p.base, *f"{p.campaign(CID)}:meta".split(CID), p.events)
                       for p in self.keys.parts]  # fmt: skip
        self._caps: dict[str, tuple[int, str]] = {}  # provider → its cap, accounts' own caps
        for p in providers:
            ps = settings.provider(p)
            default = account_codec(settings, p, "")  # the provider's own (HTTP) codec
            own = [
                f"{name}={cap_for(ps, account_codec(settings, p, name), name)}"
                for name, acct in sorted(ps.accounts.items())
                if acct.rate_per_second is not None or acct.transport != "http"
            ]
            self._caps[p] = (cap_for(ps, default), ",".join(own))

    async def admit(
        self, most: int, lanes: Sequence[str] = LANES, providers: Sequence[str] | None = None
    ) -> int:
        """Admit up to ``most`` chunks of these lanes (most urgent first) and providers;
        how many were."""
        if most <= 0:
            return 0
        work: list[str | int] = []
        for lane in (lane for lane in LANES if lane in lanes):
            for p in providers or self.providers:
                cap, own = self._caps[p]
                work += [p, lane, "1" if lane == "otp" else "0", cap, own]
        parts = self._parts
        self._turn = (self._turn + 1) % len(parts)  # no partition always goes first
        admitted = 0
        for base, meta_pre, meta_post, events in parts[self._turn :] + parts[: self._turn]:
            args: list[str | int] = [base, meta_pre, meta_post, most - admitted, *work]
            admitted += int(await self._script(keys=[events], args=args))
            if admitted >= most:
                break
        return admitted
