"""The account rate shared through Redis, the priority gate, and the per-key throttle."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiolimiter import AsyncLimiter
from redis.asyncio import Redis

from benchmarks.bench_rate import most_in_one_second
from dispatcher.jitter import FLOOR_S, Jitter
from dispatcher.ratelimit import (
    HORIZON_MS,
    AccountGate,
    Gate,
    GlobalRate,
    Throttle,
    interval_ms,
    local_limiter,
)


async def test_three_processes_share_one_rate(redis: Redis, prefix: str) -> None:
    """Three limiters on one key (three processes) stay under the rate together."""
    rate = 40.0
    limiters = [GlobalRate(redis, f"{prefix}rate", rate) for _ in range(3)]
    times: list[float] = []

    async def sender(limiter: GlobalRate, n: int) -> None:
        for _ in range(n):
            # As the sender does: a slot the loop woke us too late for is not used.
            slot = await limiter.take()
            while limiter.too_late(slot, time.monotonic()):
                slot = await limiter.take()
            times.append(time.monotonic())

    await asyncio.gather(*(sender(lim, 20) for lim in limiters))
    assert len(times) == 60
    assert most_in_one_second(times) <= rate
    # …and close to it: 60 sends take about 1.5 s (at most 1.65 s with the 0.1 s jitter
    # cap), not 3 × that.
    assert max(times) - min(times) < 60 / (rate * 0.9) * 1.5


async def test_burst_allows_that_many_at_once(redis: Redis, prefix: str) -> None:
    limiter = GlobalRate(redis, f"{prefix}burst", 10.0, burst=5, headroom=0.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(5):
        await limiter.take()
    assert loop.time() - start < 0.1  # five at once, then one every 100 ms


async def test_gate_serves_urgent_waiters_first() -> None:
    gate = Gate(1)
    await gate.enter()
    order: list[str] = []

    async def wait(name: str, high: bool, queued: asyncio.Event) -> None:
        queued.set()  # enter() queues us before it first suspends
        await gate.enter(high)
        order.append(name)
        gate.leave()

    tasks = []
    for name, high in [("bulk0", False), ("bulk1", False), ("bulk2", False), ("otp", True)]:
        queued = asyncio.Event()
        tasks.append(asyncio.create_task(wait(name, high, queued)))
        await queued.wait()
    gate.leave()
    await asyncio.gather(*tasks)
    assert order[0] == "otp"


async def test_account_gate_gives_back_its_slot_on_cancel(redis: Redis, prefix: str) -> None:
    gate = AccountGate(1, AsyncLimiter(1000, 1), GlobalRate(redis, f"{prefix}r", 1000.0))
    await gate.enter()
    queued = asyncio.Event()

    async def wait() -> None:
        queued.set()
        await gate.enter()

    waiter = asyncio.create_task(wait())
    await queued.wait()
    waiter.cancel()
    gate.leave()
    await gate.enter()  # the cancelled waiter did not keep the slot
    gate.leave()


async def test_throttle_spacing(redis: Redis, prefix: str) -> None:
    throttle = Throttle(redis)
    key = f"{prefix}throttle:+447911000001"
    assert await throttle.try_take(key, 30_000) == 0
    left = await throttle.try_take(key, 30_000)
    assert 29_000 < left <= 30_000
    await redis.delete(key)  # as if the 30 s had passed
    assert await throttle.try_take(key, 30_000) == 0


async def test_no_slot_is_reserved_beyond_the_horizon(redis: Redis, prefix: str) -> None:
    """Many requests waiting in three processes never push the account's schedule more
    than the horizon ahead of now: a process that dies with slots in hand idles the
    account for at most that long. (Granting one slot per fetch whatever its time once let
    forty waiting CloudSMS packets per process book ten seconds and more ahead.)"""
    key = f"{prefix}horizon"
    limiters = [GlobalRate(redis, key, 10.0) for _ in range(3)]
    done = asyncio.Queue[None]()

    async def one(limiter: GlobalRate) -> None:
        await limiter.take()
        done.put_nowait(None)

    tasks = [asyncio.create_task(one(lim)) for lim in limiters for _ in range(40)]
    try:
        for _ in range(5):  # five requests have gone: the others wait with theirs booked
            await done.get()
            tat = float((await redis.get(key) or b"0").split()[0])
            seconds, micros = await redis.time()
            now = seconds * 1000 + micros / 1000
            assert tat - now <= HORIZON_MS + limiters[0].interval_ms
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_spacing_keeps_every_window_under_the_rate() -> None:
    # At 50/s with 0.1 s of jitter: 50 requests span 1.1 s, so no second holds 51.
    assert interval_ms(50, 0.1) == pytest.approx(22.0)
    # Below one a second the window is 1/rate: 0.4/s is a request every 2.5 s + 0.1 s.
    assert interval_ms(0.4, 0.1) == pytest.approx(2600.0)
    assert interval_ms(100, 0.0, headroom=0.5) == pytest.approx(20.0)


async def test_a_local_limiter_below_one_a_second_grants_a_request() -> None:
    limiter = local_limiter(0.4)  # AsyncLimiter(0.4, 1) would refuse every acquire
    await limiter.acquire()
    assert not limiter.has_capacity()


async def test_the_spacing_allows_for_the_largest_jitter_any_process_reported(
    redis: Redis, prefix: str
) -> None:
    """One process that measured 40 ms of lateness spaces the account's slots for it (with
    its margin), and so does its neighbour that measured none."""
    key = f"{prefix}shared-jitter"
    quiet, jittery = GlobalRate(redis, key, 50.0), GlobalRate(redis, key, 50.0)
    # Twice 40 ms, plus the floor: within the 0.1 s cap.
    for _ in range(10):
        jittery.jitter.late(0.04)
    await jittery.take()
    await quiet.take()
    assert quiet.interval_ms == pytest.approx(interval_ms(50, 0.082))
    assert jittery.interval_ms == pytest.approx(interval_ms(50, 0.082))
    # With nothing measured (the floor) the spacing is all but the bare rate.
    alone = GlobalRate(redis, f"{prefix}alone", 50.0)
    await alone.take()
    assert alone.interval_ms == pytest.approx(interval_ms(50, FLOOR_S))


async def test_a_slot_too_late_for_its_allowance_is_not_used(redis: Redis, prefix: str) -> None:
    rate = GlobalRate(redis, f"{prefix}late", 50.0)
    slot = await rate.take()
    at, allowed = slot
    assert allowed == pytest.approx(FLOOR_S)
    assert not rate.too_late(slot, at + allowed / 2)
    for _ in range(10):
        assert rate.too_late(slot, at + allowed * 2)
    # …and that lateness, seen often, is measured: the next slots allow for twice it.
    assert rate.jitter.allowance(at + allowed * 2) == pytest.approx(allowed * 4 + FLOOR_S)


def test_jitter_is_lateness_plus_answer_spread_within_its_bounds() -> None:
    j = Jitter(cap_s=0.1)
    assert j.allowance(100.0) == FLOOR_S  # nothing seen yet
    for _ in range(200):
        j.late(0.004)
    j.late(0.9)  # one stalled send: the percentile leaves it out (it took a new slot)
    j.answered(0.010, 100.2)
    j.answered(0.025, 100.3)
    assert j.spread(100.3) == pytest.approx(0.015)
    assert j.allowance(100.3) == pytest.approx(2 * 0.019 + FLOOR_S)
    for _ in range(10):
        j.late(0.5)  # a loop this late this often: at the cap
    assert j.allowance(101.0) == 0.1
    # Five seconds on, the answers' spread is forgotten.
    assert j.spread(106.5) == 0.0


async def test_gate_hands_a_freed_slot_to_its_waiter() -> None:
    """A slot given back goes to the task that waited for it: a task entering before the
    waiter runs does not take it (and the waiter does not queue again at the back)."""
    gate = Gate(1)
    await gate.enter()
    queued = asyncio.Event()

    async def waiter() -> None:
        queued.set()
        await gate.enter()

    task = asyncio.create_task(waiter())
    await queued.wait()
    gate.leave()
    assert gate.free == 0  # handed over, not freed for whoever comes first
    newcomer = asyncio.create_task(gate.enter())
    await task  # the waiter got in
    assert not newcomer.done()
    gate.leave()
    await newcomer


async def test_the_account_gate_says_when_a_request_must_wait(redis: Redis, prefix: str) -> None:
    """``waits`` is called before a wait for the account's concurrency or its rate, and
    not when the request may go at once (chunkrun.Turn hands the worker's turn on then)."""
    gate = AccountGate(1, AsyncLimiter(1000, 1), GlobalRate(redis, f"{prefix}w", 10.0))
    told: list[str] = []
    await gate.enter(waits=lambda: told.append("first"))
    assert told == []  # a free slot and the rate's first slot: no wait
    queued = asyncio.Event()

    def second_waits() -> None:
        told.append("second")
        queued.set()

    second = asyncio.create_task(gate.enter(waits=second_waits))
    await queued.wait()  # it queues for the concurrency slot the first holds
    assert told == ["second"] and not second.done()
    gate.leave()
    await second
    gate.leave()
    told.clear()
    # Concurrency free, but the rate's next slot is ~0.1 s away (10/s): it waits for that.
    await gate.enter(waits=lambda: told.append("rate"))
    assert told == ["rate"]
    gate.leave()
