"""Rate limits that hold across every worker process and host, and per-key throttles.

**Account rate (GCRA).** One Lua script keeps a provider account's *theoretical arrival
time* in Redis and hands out send slots: with emission interval T and burst B, slot k is at
``max(now, TAT - (B-1)·T)`` and TAT moves on by T. A process asks for several slots in one
round trip and keeps them locally, so the schedule, not the number of processes, decides
when requests leave. No slot is ever handed out more than ``HORIZON_MS`` ahead: a process
that dies (or stops) with slots in hand idles the account for at most that long, and an
OTP never queues behind more than that many reserved slots.

**Jitter.** Requests reach the provider up to ``jitter`` seconds earlier or later than
scheduled. Counting in windows of W = max(1 s, 1/rate), ``rate·W`` requests spaced
T = (W + jitter) / (rate·W) apart never fit in one window however they jitter, so the
provider never counts more than its limit. (At 50/s with 0.1 s that is 0.91 of the rate;
at 0.4/s, one request every 2.6 s.) Inside a process aiolimiter smooths bursts too.

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

from aiolimiter import AsyncLimiter
from redis.asyncio import Redis

HORIZON_MS = 250.0  # never reserve a slot due further ahead than this
MAX_BATCH = 256
MIN_SLEEP_S = 0.0005  # a slot due sooner than this is taken at once
#: An account's spacing after "too fast" answers (AccountGate.slow_down): from 1 ms,
#: doubling, at most 2 s; 1% less after each other answer.
SPACING_MIN_S, SPACING_MAX_S, SPACING_EASE = 0.001, 2.0, 0.99
SLOW_EVERY_S = 0.05

_GCRA = """
-- KEYS[1]: the account's TAT (ms). ARGV: interval ms, burst, wanted, horizon ms.
-- Returns the delays (ms) of the slots granted, all within the horizon; or, when the next
-- slot lies beyond it, {'wait', ms} until it comes within.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local horizon = tonumber(ARGV[4])
local tau = (burst - 1) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local delays = {}
for i = 1, tonumber(ARGV[3]) do
  local at = math.max(now, tat - tau)
  if at - now > horizon then
    if i == 1 then return {'wait', tostring(at - now - horizon)} end
    break
  end
  tat = math.max(tat, at) + interval
  delays[#delays + 1] = tostring(at - now)
end
redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now + 60000))
return delays
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
        self.interval_ms = interval_ms(rate, jitter_s, headroom)
        self.rate = 1000.0 / self.interval_ms
        self.burst = max(1, burst)
        self._script = redis.register_script(_GCRA)
        self._slots: collections.deque[float] = collections.deque()  # loop times
        self._fetching: asyncio.Future[None] | None = None

    async def _fetch(self) -> None:
        want = max(1, min(MAX_BATCH, int(self.rate * HORIZON_MS / 1000)))
        loop = asyncio.get_running_loop()
        got = await self._script(
            keys=[self.key], args=[self.interval_ms, self.burst, want, HORIZON_MS]
        )
        if got and got[0] in (b"wait", "wait"):
            # The next slot lies beyond the horizon: come back when it is within.
            await asyncio.sleep(float(got[1]) / 1000 + MIN_SLEEP_S)
            return
        now = loop.time()
        self._slots.extend(now + float(d) / 1000 for d in got)

    async def take(self) -> None:
        """Wait for this request's slot: one Redis round trip per batch of slots."""
        while not self._slots:
            if self._fetching is None:
                self._fetching = asyncio.get_running_loop().create_future()
                try:
                    await self._fetch()
                finally:
                    done, self._fetching = self._fetching, None
                    done.set_result(None)
            else:
                await asyncio.shield(self._fetching)
        due = self._slots.popleft()
        delay = due - asyncio.get_running_loop().time()
        if delay > MIN_SLEEP_S:
            await asyncio.sleep(delay)


class Gate:
    """A semaphore whose waiters are served high priority first."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self._waiters = _Waiters()

    async def enter(self, high: bool = False) -> None:
        while self.free <= 0:
            future = self._waiters.add(high)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._waiters.wake_one()  # woken, then cancelled: pass the turn on
                raise
        self.free -= 1

    def leave(self) -> None:
        self.free += 1
        self._waiters.wake_one()


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

    async def enter(self, high: bool = False) -> None:
        await self.slots.enter(high)
        try:
            await self.rate.take()
            await self.local.acquire()
            if self.spacing:
                now = time.monotonic()
                at = max(now, self._next_at)
                self._next_at = at + self.spacing
                if at > now:
                    await asyncio.sleep(at - now)
        except BaseException:
            self.slots.leave()
            raise

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
