"""Unknown fate: recipients whose request may have reached the provider, and we do not know.

A request's fate is unknown when no answer came after its body may have left (a timeout, a
connection lost mid-request, a shutdown that cut it off), or when its worker died or was
stopped and a successor took the chunk over (fencing.py). Such recipients are never resent
blindly, and never wait in a worker's chunk slot: they are *parked* in ``{cid}:parked`` with
the window of time in which the provider may have received them, and the campaign is listed
in the account's ``unknown:`` set. Then, whichever comes first:

* **found** — the provider's list (reconcile.py) shows the message in its window, or a
  delivery report names it (tracking.py): it is recorded ``accepted`` with the provider's
  message id, as if the answer had arrived;
* **absent** — the provider's list was read over the whole window after it closed and the
  message is not there: it is queued again, for the rest of its chunk's attempts (not a
  blind resend: the provider told us);
* **expired** — nothing settled it within ``unknown_wait_seconds`` of being parked (no
  list API, no report, the list API failing): the campaign's ``on_unknown`` applies,
  ``resend`` (queue it again: the person may get it twice) or ``hold`` (pause the campaign
  with the reason; ``resume`` resends).

Every resolution acts only on recipients still parked (HDEL decides), so workers racing to
resolve the same recipients resolve each once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from redis.asyncio import Redis

from dispatcher import logs, metrics, ranges
from dispatcher.aio import checkpoint
from dispatcher.config import ConfigError, ProviderSettings, Settings
from dispatcher.keys import DEFAULT_LANE, Keys
from dispatcher.lua import MEMBERS, PROGRESS, WRITE_ROWS, script
from dispatcher.model import Result, Status
from dispatcher.msgindex import MessageIndex, ref
from dispatcher.rows import hmget, record_lines, report_fields
from dispatcher.store import announce, as_str

log = logging.getLogger("dispatcher.unknown")
TICK_S = 1.0


class Why(StrEnum):
    """Why a recipient's fate is unknown."""

    TIMEOUT = "timeout"  # no answer within the timeout, after the request left
    CONNECTION = "connection"  # the connection broke after the request may have left
    TAKEOVER = "takeover"  # its worker died or stalled while it was being sent
    SHUTDOWN = "shutdown"  # cut off in flight at the shutdown deadline


@dataclass(frozen=True, slots=True)
class Park:
    """One parked recipient: where it is and when the provider may have received it."""

    index: int
    chunk: int
    from_ms: int  # the provider may have created it from here (Redis clock, minus skew) …
    until_ms: int  # … to here (plus skew): a list read after this time is final for it
    expires_ms: int  # parked this long (unknown_wait_seconds), on_unknown applies
    reason: str

    def line(self) -> str:
        return (
            f"{self.index}\t{self.chunk}\t{self.from_ms}\t{self.until_ms}\t"
            f"{self.expires_ms}\t{self.reason}"
        )

    @classmethod
    def parse(cls, index: int, value: str) -> Park:
        chunk, from_ms, until_ms, expires_ms, reason = value.split("\t")
        return cls(index, int(chunk), int(from_ms), int(until_ms), int(expires_ms), reason)


def expiry_floor(ps: ProviderSettings, listed: bool) -> float:
    """Seconds after its window closed before a parked recipient may expire: with a list
    API, one poll interval, so that a scan can always read it first."""
    return ps.poll_interval_seconds if listed else 0.0


def window(
    ps: ProviderSettings,
    index: int,
    chunk: int,
    *,
    since_ms: int,
    seen_ms: int,
    why: Why,
    listed: bool,
) -> Park:
    """The park of a request authorised at ``since_ms`` whose fate became unknown at
    ``seen_ms`` (both Redis-clock ms): the provider may have it from the first to the
    second, give or take the clocks' skew."""
    skew = int(ps.clock_skew_seconds * 1000)
    seen = max(seen_ms, since_ms)
    until = seen + skew
    expires = seen + int(ps.unknown_wait_seconds * 1000)
    if listed:
        expires = max(expires, until + int(expiry_floor(ps, listed) * 1000))
    return Park(index, chunk, since_ms - skew, until, expires, why.value)


#: ``unpark_each(lines, parked, meta, fn)``: for each ``chunk<TAB>ranges`` line, unpark the
#: recipients still parked and call ``fn(chunk, their ranges)``; how many were unparked.
_UNPARK = (
    ranges.LUA_EACH
    + ranges.LUA_TO_RANGES
    + """
local function unpark(parked, meta, i)
  local v = redis.call('HGET', parked, i)
  if not v then return false end
  redis.call('HDEL', parked, i)
  redis.call('HINCRBY', meta, 'u:' .. string.match(v, '([^\\t]*)$'), -1)
  return true
end
local function unpark_each(lines, parked, meta, fn)
  local n = 0
  for chunk, list in string.gmatch(lines, '([^\\t\\n]+)\\t([^\\n]+)') do
    local moved = {}
    each_index(list, function(i) if unpark(parked, meta, i) then moved[#moved + 1] = i end end)
    if #moved > 0 then
      fn(chunk, to_ranges(moved))
      n = n + #moved
    end
  end
  return n
end
"""
)


class FoundKeys(NamedTuple):
    """The found script's KEYS, in order (its Lua locals are made from these fields)."""

    results: str
    counts: str
    meta: str
    state: str
    finals: str
    parked: str
    events: str


#: ARGV: cid, rows (rows.record_lines). Only recipients still parked are written (their
#: message ids are indexed before: msgindex.py). Returns {how many, store.SENT/DONE flags}.
_FOUND = script(
    """
if redis.call('EXISTS', meta) == 0 then return {0, 0} end  -- gone: nothing written
local function still_parked(index) return redis.call('HEXISTS', parked, index) == 1 end
local new, final_new = write_rows(ARGV[2], {results=results, counts=counts, meta=meta,
  state=state, finals=finals, parked=parked}, still_parked)
local flags = 0
if new > 0 then flags = progress(meta, events, ARGV[1], new, final_new, 'settled', '') end
return {new, flags}
""",
    keys=FoundKeys._fields,
    uses=WRITE_ROWS + PROGRESS,  # WRITE_ROWS brings bucket()
)

#: KEYS: meta, parked, stream, events. ARGV: cid, ``chunk<TAB>ranges`` lines. Unpark what is
#: still parked and queue it again, an entry per chunk naming only those recipients.
_SEND_AGAIN = script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = unpark_each(ARGV[2], KEYS[2], KEYS[1], function(chunk, only)
  add_entry(KEYS[3], ARGV[1], chunk, 1, only, '')
end)
if n > 0 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', @MAXLEN@, '*', 'c', ARGV[1], 'e', 'unparked')
end
return n
""",
    uses=_UNPARK + MEMBERS,
)

#: KEYS: meta, parked, held, events, stream. ARGV: cid, lines as above, reason. Unpark, set
#: aside until resume, and pause the campaign with the reason. A cancelled campaign is never
#: resumed: there they go to work at once instead, to be recorded cancelled, so that the
#: campaign still ends. Returns {how many, 1 if this call paused it}.
_HOLD = script(
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local state, paused = redis.call('HGET', KEYS[1], 'state'), 0
local n = unpark_each(ARGV[2], KEYS[2], KEYS[1], function(chunk, only)
  if state == 'cancelled' then
    add_entry(KEYS[5], ARGV[1], chunk, 1, only, '')
  else
    redis.call('SADD', KEYS[3], held_member(chunk, only))
  end
end)
if n > 0 and state ~= 'cancelled' then
  redis.call('HSET', KEYS[1], 'state', 'paused', 'reason', ARGV[3])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', @MAXLEN@, '*', 'c', ARGV[1], 'e', 'paused')
  if state ~= 'paused' then paused = 1 end
end
return {n, paused}
""",
    uses=_UNPARK + MEMBERS,
)

#: KEYS: parked, unknown zset. ARGV: cid. The campaign's score becomes its soonest expiry;
#: it leaves the set when nothing of it is parked.
_RESCORE = script(
    """
local soonest = nil
local all = redis.call('HVALS', KEYS[1])
for _, v in ipairs(all) do
  local e = tonumber(string.match(v, '^[^\\t]*\\t[^\\t]*\\t[^\\t]*\\t([^\\t]*)'))
  if soonest == nil or e < soonest then soonest = e end
end
if soonest == nil then redis.call('ZREM', KEYS[2], ARGV[1]) return 0 end
redis.call('ZADD', KEYS[2], soonest, ARGV[1])
return #all
"""
)


def by_chunk(parks: Iterable[Park]) -> str:
    """``chunk<TAB>ranges`` lines, the scripts' form of a set of parked recipients."""
    groups: dict[int, list[int]] = defaultdict(list)
    for p in parks:
        groups[p.chunk].append(p.index)
    return "\n".join(f"{c}\t{ranges.encode(ix)}" for c, ix in sorted(groups.items()))


class UnknownStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._found = redis.register_script(_FOUND)
        self._send_again = redis.register_script(_SEND_AGAIN)
        self._hold = redis.register_script(_HOLD)
        self._rescore = redis.register_script(_RESCORE)
        self.index = MessageIndex(redis, keys)

    async def entries(self, cid: str) -> dict[int, Park]:
        raw = await self.redis.hgetall(self.keys.parked(cid))
        return {int(as_str(i)): Park.parse(int(as_str(i)), as_str(v)) for i, v in raw.items()}

    async def found(self, cid: str, provider: str, results: list[Result]) -> int:
        """Record ``results`` (accepted, with the provider's message id) for the recipients
        among them that are still parked; returns how many were settled."""
        if not results:
            return 0
        k = self.keys
        rows = record_lines(results)
        await self.index.add(
            provider, {r.message_id: ref(cid, r.index) for r in results if r.message_id}
        )
        keys = FoundKeys(
            results=k.results(cid), counts=k.counts(cid), meta=k.meta(cid), state=k.state(cid),
            finals=k.finals(cid), parked=k.parked(cid), events=k.part(cid).events,
        )  # fmt: skip
        new, flags = await self._found(keys=keys, args=[cid, rows])
        await announce(self.redis, k, cid, int(flags))
        if int(new):  # a send result after all: counted with the others (metrics.py)
            metrics.RECIPIENTS.labels(provider, Status.ACCEPTED.value).inc(int(new))
            metrics.RESOLVED.labels(provider, "found").inc(int(new))
        return int(new)

    async def settle_reported(self, cid: str, provider: str, numbers: dict[int, str]) -> int:
        """Settle the parked recipients among ``numbers`` (index → number) that a delivery
        report already named: it came before they were parked (the report of a request
        whose answer was lost, or sent by a worker that died), and proves the provider has
        the message. Returns how many were settled."""
        if not numbers:
            return 0
        k = self.keys
        indexes = [str(i) for i in numbers]
        parked = await self.redis.hmget(k.parked(cid), indexes)
        reports = await hmget(self.redis, k.reports(cid), list(numbers))
        found = []
        for (index, number), park, report in zip(numbers.items(), parked, reports, strict=True):
            if park is None or report is None:
                continue
            _status, _raw, _code, _error, at, mid = report_fields(report)
            why = Park.parse(index, as_str(park)).reason
            found.append(
                Result(index, number, Status.ACCEPTED, mid, sent_at=at,
                       error=f"fate was unknown ({why}); a report shows {provider} has it")
            )  # fmt: skip
        return await self.found(cid, provider, found)

    async def send_again(self, cid: str, stream: str, parks: Iterable[Park]) -> int:
        """Queue again those of ``parks`` still parked; how many."""
        k = self.keys
        keys = [k.meta(cid), k.parked(cid), stream, k.part(cid).events]
        return int(await self._send_again(keys=keys, args=[cid, by_chunk(parks)]))

    async def hold(
        self, cid: str, stream: str, parks: Iterable[Park], reason: str
    ) -> tuple[int, bool]:
        """Set ``parks`` aside until resume and pause the campaign; how many, and whether
        this call paused it (it may have been paused already). In a cancelled campaign they
        are queued on ``stream`` instead, to be recorded cancelled."""
        k = self.keys
        keys = [k.meta(cid), k.parked(cid), k.held(cid), k.part(cid).events, stream]
        n, paused = await self._hold(keys=keys, args=[cid, by_chunk(parks), reason])
        return int(n), bool(int(paused))

    async def rescore(self, cid: str, unknown_key: str) -> int:
        """Re-file the campaign in the account's unknown set; how many are still parked."""
        keys = [self.keys.parked(cid), unknown_key]
        return int(await self._rescore(keys=keys, args=[cid]))


def now_ms() -> int:
    return int(time.time() * 1000)


class Settler:
    """Applies ``on_unknown`` to what nothing settled in time. Runs in every worker;
    resolving is idempotent, so several at once are harmless."""

    def __init__(self, redis: Redis, settings: Settings, store: UnknownStore) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = store.keys
        self.store = store

    def targets(self) -> list[tuple[str, str, str]]:
        """(provider, kind, account) of every unknown set this configuration can fill."""
        from dispatcher.providers import KINDS

        return [
            (name, kind, account)
            for (name, kind) in sorted(KINDS)
            if name in self.settings.providers
            for account in sorted(self.settings.providers[name].accounts)
        ]

    async def run(self, errors: tuple[type[BaseException], ...]) -> None:
        while True:
            for provider, kind, account in self.targets():
                try:
                    await self.expire(provider, kind, account)
                except errors as exc:
                    log.warning("settling unknown fates of %s/%s: %s", provider, account, exc)
                except ConfigError:
                    pass
                checkpoint()
            await asyncio.sleep(TICK_S)

    async def expire(self, provider: str, kind: str, account: str) -> int:
        """Apply on_unknown to the parked recipients of this account that expired, in every
        partition."""
        done = 0
        for part in self.keys.parts:
            zkey = part.unknown(self.keys.listed(provider, kind), account)
            done += await self._expire(provider, account, zkey)
        return done

    async def _expire(self, provider: str, account: str, zkey: str) -> int:
        k = self.keys
        now = now_ms()
        due = await self.redis.zrangebyscore(zkey, "-inf", now, start=0, num=20)
        done = 0
        for raw in due:
            cid = as_str(raw)
            meta = await self.redis.hmget(k.meta(cid), ["total", "on_unknown", "lane"])
            if meta[0] is None:  # the campaign is gone: nothing to settle
                await self.redis.zrem(zkey, cid)
                continue
            on_unknown = as_str(meta[1]) or "resend"
            lane = as_str(meta[2]) or DEFAULT_LANE
            expired = [p for p in (await self.store.entries(cid)).values() if p.expires_ms <= now]
            if expired:
                done += await self._apply(cid, (provider, account), lane, on_unknown, expired)
            await self.store.rescore(cid, zkey)
        return done

    async def _apply(
        self, cid: str, where: tuple[str, str], lane: str, on_unknown: str, parks: list[Park]
    ) -> int:
        provider, account = where
        why = ", ".join(f"{w} {n}" for w, n in sorted(Counter(p.reason for p in parks).items()))
        wait = self.settings.provider(provider).unknown_wait_seconds
        if on_unknown == "hold":
            reason = (
                f"{len(parks)} recipient(s) may or may not have reached {provider} ({why}) "
                f"and {provider} did not say within {wait:g} s; resume sends them again "
                "(they may get it twice)"
            )
            stream = self.keys.part(cid).queue(provider, lane)
            n, paused = await self.store.hold(cid, stream, parks, reason)
            metrics.RESOLVED.labels(provider, "held").inc(n)
            if paused:
                logs.event("paused", cid, reason, level=logging.WARNING, provider=provider,
                           account=account, reason=reason, cause="unknown_fate")  # fmt: skip
            return n
        n = await self.store.send_again(cid, self.keys.part(cid).queue(provider, lane), parks)
        metrics.RESOLVED.labels(provider, "resent").inc(n)
        if n:
            log.warning(
                "campaign %s: %d recipient(s) of unknown fate (%s) unsettled by %s after "
                "%g s; sending them again (on_unknown = resend)", cid, n, why, provider, wait
            )  # fmt: skip
        return n
