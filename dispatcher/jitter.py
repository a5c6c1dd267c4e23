"""How late this process's requests reach a provider, measured, so that the account's rate
allows for the jitter there is rather than a flat share of the rate (ratelimit.py).

A provider counts requests as they arrive. A request that arrives later than its slot,
followed by one that is on time, squeezes the two together; the schedule stays safe if the
spacing allows for the largest such difference. Two things make a request late:

* **here**: the event loop wakes the sender after its slot, or the request waits for an
  authorisation or a connection; measured as the time from the slot to the send;
* **on the way**: the network or the provider's own queue; measured, from above, as the
  spread of answer times (slowest less fastest).

A request that would leave later than its slot allowed for, less the spread (but at
least half of it), takes a new slot instead (sender.py): that, not the estimate, keeps the
provider's count within the rate, so the lateness is taken at its 99th percentile (a
stalled loop's outliers would otherwise widen the spacing for seconds; they cost a slot
each instead). The spread is taken whole, over the last ``SPAN_S`` seconds: it cannot be
undone after the fact. The allowance is twice their sum plus a floor, at most the cap: a
stall a little longer than those seen lately still fits (the mock once counted one request
over at the bare sum). The account's schedule takes the largest allowance of its
processes (ratelimit.py).
"""

from __future__ import annotations

import collections

#: The answer-time spread kept in mind: that of the last this many seconds.
SPAN_S = 5
#: Latenesses kept for the percentile: the last this many sends.
SAMPLES = 512
QUANTILE = 0.99
#: The figures are worked out again at most this often (seconds): they are read on every
#: request, and a tenth of a second is well inside the span they cover.
REFRESH_S = 0.1
#: Less than this is never allowed for: clocks and loop wake-ups are this coarse.
FLOOR_S = 0.002
#: What is measured is what has been seen: the allowance is this many times it (plus the
#: floor), so a stall a little longer than the longest of the last seconds still fits.
MARGIN = 2.0


class Jitter:
    """Lateness over the last SAMPLES sends; answer-time spread in one-second buckets over
    the last SPAN_S."""

    __slots__ = ("_fast", "_late", "_second", "_slow", "_spread", "_spread_at", "cap", "floor")

    def __init__(self, cap_s: float, floor_s: float = FLOOR_S) -> None:
        self.cap = cap_s
        self.floor = min(floor_s, cap_s)
        self._second = 0
        self._late: collections.deque[float] = collections.deque(maxlen=SAMPLES)
        self._slow = [0.0] * SPAN_S
        self._fast = [float("inf")] * SPAN_S
        self._spread = 0.0
        self._spread_at = -REFRESH_S

    def _bucket(self, now: float) -> int:
        second = int(now)
        if second != self._second:
            for s in range(max(self._second + 1, second - SPAN_S + 1), second + 1):
                i = s % SPAN_S
                self._slow[i], self._fast[i] = 0.0, float("inf")
            self._second = second
        return second % SPAN_S

    def late(self, seconds: float) -> None:
        """A request left ``seconds`` after its slot."""
        self._late.append(seconds)

    def answered(self, seconds: float, now: float) -> None:
        """A request's answer came ``seconds`` after it left."""
        i = self._bucket(now)
        self._slow[i] = max(self._slow[i], seconds)
        self._fast[i] = min(self._fast[i], seconds)

    def spread(self, now: float) -> float:
        """Slowest answer less fastest: how much later than another a request may arrive
        once it has left."""
        if now - self._spread_at >= REFRESH_S or now < self._spread_at:
            self._bucket(now)
            fast = min(self._fast)
            self._spread = max(self._slow) - fast if fast != float("inf") else 0.0
            self._spread_at = now
        return self._spread

    def allowance(self, now: float) -> float:
        """The jitter to space requests for: twice the lateness here plus the spread on the
        way, and the floor; at most the cap."""
        late = sorted(self._late)[int(QUANTILE * (len(self._late) - 1))] if self._late else 0.0
        return min(self.cap, MARGIN * (late + self.spread(now)) + self.floor)
