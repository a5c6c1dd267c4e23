"""The account rate shared through Redis, the priority gate, and the per-key throttle."""

from __future__ import annotations

import asyncio

from aiolimiter import AsyncLimiter
from redis.asyncio import Redis

from dispatcher.ratelimit import AccountGate, Gate, GlobalRate, Throttle


def most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_three_processes_share_one_rate(redis: Redis, prefix: str) -> None:
    """Three limiters on one key (three processes) stay under the rate together."""
    rate = 40.0
    limiters = [GlobalRate(redis, f"{prefix}rate", rate) for _ in range(3)]
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def sender(limiter: GlobalRate, n: int) -> None:
        for _ in range(n):
            await limiter.take()
            times.append(loop.time())

    await asyncio.gather(*(sender(lim, 20) for lim in limiters))
    assert len(times) == 60
    assert most_in_one_second(times) <= rate
    # …and close to it: 60 sends at 36/s (10 % headroom) take about 1.6 s, not 3 × that.
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
