"""The sender against the real mock and a real Redis: when it lets the next chunk get ready."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from tests.conftest import claimed_chunk, make_settings


async def test_the_next_chunk_may_get_ready_as_the_first_request_leaves(
    redis: Redis, prefix: str, mock: str
) -> None:
    """``ready`` is called once the chunk's requests are built and the first is leaving,
    before any answer: not when the whole chunk is answered."""
    settings = make_settings(prefix, f"{mock}/cloudaten")
    chunk = await claimed_chunk(redis, settings, [f"+4479110{i:05d}" for i in range(5)])
    run = chunk.run
    answered_then: list[int] = []
    try:
        await chunk.sender.send_all(
            run, chunk.meta, lambda: answered_then.append(len(run.outcomes))
        )
    finally:
        await chunk.sender.close()
    assert answered_then[0] == 0 and len(run.requests) == 5
    assert len(run.outcomes) == 5 and run.turn is None


async def test_a_chunk_that_must_wait_for_its_account_lets_the_next_get_ready(
    redis: Redis, prefix: str, mock: str
) -> None:
    """While another chunk holds all the account's concurrency, this chunk's first request
    waits for it: ``ready`` is called as it starts waiting, so that chunks of other accounts
    do not wait behind it (benchmarks/fair.py, ten accounts)."""
    settings = make_settings(prefix, f"{mock}/cloudaten")
    chunk = await claimed_chunk(redis, settings, [f"+4479110{i:05d}" for i in range(3)])
    run = chunk.run
    slots = run.account.gate.slots
    held = slots.free
    for _ in range(held):  # as if another chunk of the account were sending
        await slots.enter()
    readied = asyncio.Event()
    try:
        sending = asyncio.create_task(chunk.sender.send_all(run, chunk.meta, readied.set))
        await asyncio.wait_for(readied.wait(), 10)
        assert run.outcomes == {} and not sending.done()
        for _ in range(held):
            slots.leave()
        await sending
    finally:
        await chunk.sender.close()
    assert len(run.outcomes) == 3
