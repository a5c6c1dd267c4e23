"""Rate limits that hold across every worker process and host, and per-key throttles.

**Account rate (GCRA).** One Lua script keeps a provider account's *theoretical arrival
time* in Redis and hands out send slots: with emission interval T and burst B, slot k is at
``max(now, TAT - (B-1)·T)`` and TAT moves on by T. A process asks for several slots in one
round trip and keeps them locally, so the schedule, not the number of processes, decides
when requests leave. No slot is ever handed out more than ``HORIZON_MS`` ahead: a process
that dies (or stops) with slots in hand idles the account for at most that long, and an
OTP never queues behind more than that many reserved slots.

**Jitter.** Requests reach the provider later than scheduled by up to some jitter J.
Counting in windows of W = max(1 s, 1/rate), ``rate·W`` requests spaced
T = (W + J) / (rate·W) apart never fit in one window however they jitter, so the provider
never counts more than its limit. J is measured (jitter.py): twice the lateness at sending
(its 99th percentile) plus the spread of answer times that a process saw lately, plus
2 ms, at most ``rate_jitter_seconds``; the script keeps the largest a process reported.
(At 50/s: 0.98 of the rate with 20 ms of jitter; 0.91 at the 0.1 s cap.) A request that
would leave later than its slot allowed for takes a new slot (sender.py). Inside a process
aiolimiter smooths bursts too.

**Priority.** Requests of the ``otp`` lane are served first for the account's concurrency
slots.

**Per-key throttle.** ``SET key NX PX spacing``: a recipient whose number was called less
than ``spacing`` ago is delayed (by what is left of it), never refused — the seeds' "one voice
call per number per 30 seconds".
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter
from redis.asyncio import Redis

from dispatcher.jitter import SPAN_S, Jitter

HORIZON_MS = 250.0  # never reserve a slot due further ahead than this
MAX_BATCH = 256
MIN_SLEEP_S = 0.0005  # a slot due sooner than this is taken at once
FETCH_AHEAD_S = 0.02  # slots fetched beyond those waited for: the rate's 20 ms
MEMORY_MS = SPAN_S * 1000  # a process's jitter counts for the account this long
#: Late slots are given up (and taken anew) only at rates whose spacing is at most this
#: (ms): a new slot at 0.35/s is three seconds away, and chaos runs at such rates showed
#: a chunk sent twice that no takeover had parked; slower accounts keep the cap's spacing.
LATE_CHECK_MAX_MS = 100.0
#: An account's spacing after "too fast" answers (AccountGate.slow_down): from 1 ms,
#: doubling, at most 2 s; 1% less after each other answer.
SPACING_MIN_S, SPACING_MAX_S, SPACING_EASE = 0.001, 2.0, 0.99
SLOW_EVERY_S = 0.05

_GCRA = """
-- KEYS[1]: the account's schedule, "<TAT ms> <jitter ms> <when that jitter was seen, ms>".
-- ARGV: interval ms without jitter, window ms, burst, wanted, horizon ms, this process's
-- jitter ms, how long a jitter is kept in mind (ms).
-- The spacing allows for the largest jitter a process has reported within that time.
-- Returns {interval, jitter, delays (ms) of the slots granted, all within the horizon};
-- or, when the next slot lies beyond it, {interval, jitter, 'wait', ms until it comes within}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local base, window, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local horizon, mine = tonumber(ARGV[5]), tonumber(ARGV[6])
local tat, jit, jat = 0, 0, 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local a, b, c = string.match(raw, '^(%S+) (%S+) (%S+)$')
  if a then tat, jit, jat = tonumber(a), tonumber(b), tonumber(c) else tat = tonumber(raw) or 0 end
end
if mine >= jit or now - jat > tonumber(ARGV[7]) then jit, jat = mine, now end
local interval = base * (1 + jit / window)
local tau = (burst - 1) * interval
local out = {string.format('%.4f', interval), string.format('%.4f', jit)}
for i = 1, tonumber(ARGV[4]) do
  local at = math.max(now, tat - tau)
  if at - now > horizon then
    if i == 1 then
      out[3], out[4] = 'wait', string.format('%.3f', at - now - horizon)
      return out
    end
    break
  end
  tat = math.max(tat, at) + interval
  out[#out + 1] = string.format('%.3f', at - now)
end
redis.call('SET', KEYS[1], string.format('%.3f %.4f %.3f', tat, jit, jat),
           'PX', math.ceil(tat - now + 60000))
return out
"""

_THROTTLE = """
-- KEYS[1]: the throttle key. ARGV: spacing ms. 0 if taken now, else ms left.
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then return 0 end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = tonumber(ARGV[1]) end
return left
"""


class _Waiters:
    """Futures served high priority first, then in arrival order."""

    def __init__(self) -> None:
        self.high: collections.deque[asyncio.Future[None]] = collections.deque()
        self.normal: collections.deque[asyncio.Future[None]] = collections.deque()

    def add(self, high: bool) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self.high if high else self.normal).append(future)
        return future

    def wake_one(self) -> bool:
        for queue in (self.high, self.normal):
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)
                    return True
        return False


def interval_ms(rate: float, jitter_s: float = 0.1, headroom: float = 0.0) -> float:
    """The spacing of requests that keeps the provider's count within ``rate`` per window
    of max(1 s, 1/rate) even if each request arrives ``jitter_s`` early or late."""
    window = max(1.0, 1.0 / rate)
    return 1000.0 * (window + jitter_s) / (rate * window) / (1.0 - headroom)


def local_limiter(rate: float) -> AsyncLimiter:
    """aiolimiter at ``rate``: a rate below one a second is one request per 1/rate seconds
    (``AsyncLimiter(0.4, 1)`` could never grant a whole request)."""
    return AsyncLimiter(1, 1.0 / rate) if rate < 1 else AsyncLimiter(rate, 1.0)


class GlobalRate:
    """An account's send slots, shared through Redis by every process."""

    def __init__(
        self,
        redis: Redis,
        key: str,
        rate: float,
        burst: int = 1,
        *,
        headroom: float = 0.0,
        jitter_s: float = 0.1,
    ) -> None:
        self.redis = redis
        self.key = key
        self.window_ms = 1000.0 * max(1.0, 1.0 / rate)
        self.base_ms = interval_ms(rate, 0.0, headroom)
        #: The spacing now (ms): it moves with the jitter measured (jitter.Jitter).
        self.interval_ms = interval_ms(rate, jitter_s, headroom)
        self.jitter = Jitter(jitter_s)
        self.checks_lateness = self.base_ms <= LATE_CHECK_MAX_MS
        self.burst = max(1, burst)
        self._script = redis.register_script(_GCRA)
        self._slots: collections.deque[tuple[float, float]] = collections.deque()
        self._fetching: asyncio.Future[None] | None = None
        self._waiting = 0  # requests in take()
        self._batch = 1  # slots to fetch beyond those waited for (see _fetch)
        self._dropped = 0  # slots gone stale since the last fetch

    async def _fetch(self, waits: Callable[[], None] | None) -> None:
        # As many slots as there are requests waiting for one, or more while every slot
        # fetched is taken in time (doubling, up to what the rate gives in FETCH_AHEAD_S;
        # halving when some went stale): a slot nobody takes in time is the account's rate
        # wasted (every process's share is reserved in Redis), and a round trip per few
        # requests is CPU wasted.
        ahead = max(1, int(FETCH_AHEAD_S * 1000 / self.interval_ms))
        if self._dropped:
            self._batch, self._dropped = max(1, self._batch // 2), 0
        else:
            self._batch = min(ahead, self._batch * 2)
        want = min(MAX_BATCH, max(self._waiting, self._batch))
        mine = 1000.0 * self.jitter.allowance(time.monotonic())
        got = await self._script(
            keys=[self.key],
            args=[self.base_ms, self.window_ms, self.burst, want, HORIZON_MS, mine, MEMORY_MS],
        )
        self.interval_ms = float(got[0])
        jitter_s = float(got[1]) / 1000
        if got[2] in (b"wait", "wait"):
            # The next slot lies beyond the horizon: come back when it is within.
            if waits is not None:
                waits()
            await asyncio.sleep(float(got[3]) / 1000 + MIN_SLEEP_S)
            return
        # The slots in time.monotonic(), not the loop's clock: uvloop's is read once per
        # turn of the loop, in whole milliseconds, and would hide how late a request left.
        now = time.monotonic()
        self._slots.extend((now + float(d) / 1000, jitter_s) for d in got[2:])

    async def take(self, waits: Callable[[], None] | None = None) -> tuple[float, float]:
        """Wait for this request's slot: one Redis round trip per batch of slots. The
        slot's time (time.monotonic()) and the jitter its spacing allows for (seconds).
        ``waits`` is called before waiting for the rate itself (not for a round trip)."""
        self._waiting += 1
        try:
            return await self._take(waits)
        finally:
            self._waiting -= 1

    async def _take(self, waits: Callable[[], None] | None) -> tuple[float, float]:
        while not self._slots or self._stale(self._slots[0]):
            if self._slots:
                self._slots.popleft()  # its time has passed: a request on it could be too late
                self._dropped += 1
                continue
            if self._fetching is None:
                self._fetching = asyncio.get_running_loop().create_future()
                try:
                    await self._fetch(waits)
                finally:
                    done, self._fetching = self._fetching, None
                    done.set_result(None)
            else:
                await asyncio.shield(self._fetching)
        slot = self._slots.popleft()
        delay = slot[0] - time.monotonic()
        if delay > MIN_SLEEP_S:
            if waits is not None:
                waits()
            await asyncio.sleep(delay)
        return slot

    def _tolerance(self, allowed: float, now: float) -> float:
        """How late a request may leave on a slot that allows for ``allowed`` of jitter:
        what the spread of answers leaves of it, but never less than half. (Answer times
        that spread wider than the cap say more about how long the provider works on a
        request than about when it arrives.)"""
        return max(allowed - self.jitter.spread(now), allowed / 2)

    def _stale(self, slot: tuple[float, float]) -> bool:
        if not self.checks_lateness:
            return False
        now = time.monotonic()
        return now - slot[0] > self._tolerance(slot[1], now)

    def too_late(self, slot: tuple[float, float], now: float) -> bool:
        """Whether a request on ``slot`` leaving at ``now`` could arrive closer to another
        than the spacing allows for: it should take a new slot instead."""
        late = now - slot[0]
        self.jitter.late(late)
        return self.checks_lateness and late > self._tolerance(slot[1], now)


class Gate:
    """A semaphore whose waiters are served high priority first."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self._waiters = _Waiters()

    async def enter(self, high: bool = False, waits: Callable[[], None] | None = None) -> None:
        if self.free > 0:
            self.free -= 1
            return
        if waits is not None:
            waits()
        future = self._waiters.add(high)
        try:
            await future  # woken by leave(): the slot is ours
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave()  # handed the slot, then cancelled: pass it on
            raise

    def leave(self) -> None:
        # Straight to the next waiter, if any: were it only woken, a task entering
        # meanwhile would take the slot and the waiter would queue again at the back.
        if not self._waiters.wake_one():
            self.free += 1


class AccountGate:
    """Everything a request to one account waits for in this process, in priority order:
    a concurrency slot, its global rate slot, then local smoothing."""

    def __init__(self, concurrency: int, local: AsyncLimiter, rate: GlobalRate) -> None:
        self.slots = Gate(concurrency)
        self.local = local
        self.rate = rate
        #: After "too fast" answers: at least this long between two of this process's
        #: requests to the account (seconds; 0: only the rate). It doubles at each
        #: "too fast" and shrinks a little at each other answer, so it settles just under
        #: what the provider takes (additive-increase, multiplicative-decrease, in spacing).
        self.spacing = 0.0
        self._next_at = 0.0
        self._slowed_at = 0.0

    async def enter(
        self, high: bool = False, waits: Callable[[], None] | None = None
    ) -> tuple[float, float]:
        """Wait for a concurrency slot, then a rate slot (returned: see GlobalRate.take).
        ``waits`` is called before any wait for the account's concurrency or rate, so that
        a caller can let others go ahead meanwhile (chunkrun.Turn); round trips to Redis
        do not count."""
        await self.slots.enter(high, waits)
        try:
            slot = await self.rate.take(waits)
            if waits is not None and not self.local.has_capacity():
                waits()
            await self.local.acquire()
            if self.spacing:
                now = time.monotonic()
                at = max(now, self._next_at)
                self._next_at = at + self.spacing
                if at > now:
                    if waits is not None:
                        waits()
                    await asyncio.sleep(at - now)
        except BaseException:
            self.slots.leave()
            raise
        return slot

    def leave(self) -> None:
        self.slots.leave()

    def slow_down(self) -> None:
        """The provider said "too fast" (SMPP throttling): space this process's requests
        to the account twice as far apart. The requests already in flight when it said so
        say it again: one doubling per SLOW_EVERY_S counts them once."""
        now = time.monotonic()
        if now - self._slowed_at < SLOW_EVERY_S:
            return
        self._slowed_at = now
        self.spacing = min(SPACING_MAX_S, max(SPACING_MIN_S, self.spacing * 2))
        self._next_at = max(self._next_at, now + self.spacing)

    def steady(self) -> None:
        """An answer that was not "too fast": a little less spacing, none in the end."""
        if self.spacing:
            self.spacing *= SPACING_EASE
            if self.spacing < SPACING_MIN_S / 2:
                self.spacing = 0.0


class Throttle:
    """One event per key per spacing (e.g. one call per number per 30 s), across processes."""

    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_THROTTLE)

    async def try_take(self, key: str, spacing_ms: int) -> int:
        """0 if the key was free (and is now taken); otherwise the ms until it frees."""
        return int(await self._script(keys=[key], args=[spacing_ms]))
