"""chunkrun.Turn: chunks get ready one at a time, in the order they ask."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.chunkrun import Turn

LONG_S = 3600.0  # a turn that only its holder hands on, within any test


async def test_the_next_chunk_gets_ready_once_the_one_before_hands_on() -> None:
    turn = Turn(LONG_S)
    asking = [asyncio.Event() for _ in range(3)]
    entered = [asyncio.Event() for _ in range(3)]
    go = [asyncio.Event() for _ in range(3)]
    order: list[int] = []

    async def get_ready(n: int) -> None:
        # Set right before asking: a task runs on from here until the turn makes it wait,
        # so once the test sees it, the task is either waiting or in.
        asking[n].set()
        async with turn.take() as hand_on:
            order.append(n)
            entered[n].set()
            await go[n].wait()
            hand_on()
            hand_on()  # twice, and again on leaving: the turn goes on once
            await go[n].wait()

    tasks = [asyncio.create_task(get_ready(n)) for n in range(3)]
    await asyncio.wait_for(entered[0].wait(), 5)
    await asyncio.wait_for(asyncio.gather(asking[1].wait(), asking[2].wait()), 5)
    assert order == [0]
    go[0].set()
    await asyncio.wait_for(entered[1].wait(), 5)
    assert order == [0, 1]  # in the order they asked
    go[1].set()
    go[2].set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == [0, 1, 2]


async def test_a_failure_or_a_long_wait_hands_the_turn_on() -> None:
    turn = Turn(LONG_S)
    with pytest.raises(RuntimeError):
        async with turn.take():
            raise RuntimeError("load failed")
    async with asyncio.timeout(5), turn.take():
        pass  # the failure handed it on
    short = Turn(0.01)
    # Its holder never hands it on (a first request waiting for its rate): the next gets
    # it all the same.
    async with short.take(), asyncio.timeout(5), short.take():
        pass
