"""What happens to the mock's messages after they are accepted: a final status, pushed to the
customer's callback with the seeds' retry schedule, and readable from list endpoints.

Seeds 000 §2.2 and 001 §2.2: "When our platform doesn't receive a 200 HTTP status code, we
will try to deliver the report again (up to 5 times), which are 1min 10min 60min 24h 72h."
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from dispatcher.mock.state import MockState
from dispatcher.mock.stats import Recorder

RETRY_SCHEDULE_S = (60, 600, 3600, 86_400, 259_200)
PUSH_TIMEOUT_S = 10.0


def decide(state: MockState, key: str) -> str:
    """The final outcome of a message (delivered, undelivered, expired or rejected), the
    same every time for the same key, spread by the configured mix."""
    mix = state.settings.dlr_mix
    total = sum(weight for _, weight in mix)
    point = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % total
    for outcome, weight in mix:
        if point < weight:
            return outcome
        point -= weight
    return mix[-1][0]


def final_at_ms(state: MockState, accepted_ms: int) -> int:
    return accepted_ms + int(state.settings.dlr_delay_ms)


class Pusher:
    """Sends pushes with retries; bounded concurrency; never blocks the request path."""

    def __init__(self, state: MockState, concurrency: int = 64) -> None:
        self.state = state
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PUSH_TIMEOUT_S)
            )
        return self._session

    def schedule(
        self,
        recorder: Recorder,
        delay_s: float,
        send: Callable[[aiohttp.ClientSession], Awaitable[bool]],
    ) -> None:
        """Push after ``delay_s``; ``send`` returns True when the receiver said 200."""
        task = asyncio.create_task(self._run(recorder, delay_s, send))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        recorder: Recorder,
        delay_s: float,
        send: Callable[[aiohttp.ClientSession], Awaitable[bool]],
    ) -> None:
        await asyncio.sleep(delay_s)
        for attempt in range(len(RETRY_SCHEDULE_S) + 1):
            if attempt:
                recorder.stats.push_retries += 1
                factor = self.state.settings.retry_time_factor
                await asyncio.sleep(RETRY_SCHEDULE_S[attempt - 1] * factor)
            try:
                async with self._slots:
                    ok = await send(self.session())
            except (aiohttp.ClientError, TimeoutError, OSError):
                ok = False
            if ok:
                recorder.stats.pushes += 1
                return
        recorder.stats.push_abandoned += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


async def post_json(session: aiohttp.ClientSession, url: str, body: bytes) -> bool:
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=body, headers=headers) as resp:
        await resp.read()
        return resp.status == 200


async def get_query(session: aiohttp.ClientSession, url: str, params: dict[str, str]) -> bool:
    async with session.get(url, params=params) as resp:
        await resp.read()
        return resp.status == 200


class ListLimiter:
    """The seeds' "Request frequency limit: once every minute" for list APIs, per key."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self._last: dict[str, float] = {}

    def allow(self, key: str, recorder: Recorder) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.state.settings.list_interval_s:
            recorder.stats.list_refused += 1
            return False
        self._last[key] = now
        recorder.stats.list_calls += 1
        return True


def now_ms() -> int:
    return int(time.time() * 1000)


def current(message: dict[str, Any], at_ms: int) -> bool:
    """Has the message reached its final status by ``at_ms``?"""
    return at_ms >= int(message["final_at"])


#: Faults that strike after the provider did its work: the answer never reaches the client.
ANSWER_FAULTS = ("lost", "late")
_ANSWER_FAULT = web.RequestKey("answer_fault", str)


async def gatekeeper(
    state: MockState,
    recorder: Recorder,
    provider: str,
    request: web.Request,
    busy: Callable[[], web.Response],
) -> web.Response | None:
    """What stands before a provider's send endpoint: its rate limit and injected faults.
    Returns a response to give instead of the real one, or None to go on."""
    if state.over_rate(provider):
        return web.json_response({"error": "Too Many Requests"}, status=429)
    kind = state.fault()
    if kind is None:
        return None
    recorder.stats.faults += 1
    if kind in ANSWER_FAULTS:
        request[_ANSWER_FAULT] = kind  # the provider works as usual; see answered()
        return None
    if kind == "5xx":
        return web.json_response({"error": "Service Unavailable"}, status=503)
    if kind == "timeout":
        await asyncio.sleep(state.settings.fault_timeout_s)
        return web.json_response({"error": "late"}, status=504)
    if kind == "drop":
        if request.transport is not None:
            request.transport.close()  # the client sees the connection go, with no answer
        return web.Response(status=500)
    return busy()


async def answered(
    state: MockState, recorder: Recorder, request: web.Request, response: web.Response
) -> web.Response:
    """The provider's answer, unless an answer fault was drawn for this request: ``lost``
    closes the connection instead (the provider has accepted what it accepted), ``late``
    holds the answer for ``fault_timeout_s`` (the client has given up by then)."""
    kind = request.get(_ANSWER_FAULT)
    if kind is None:
        return response
    recorder.stats.answers_lost += 1
    if kind == "late":
        await asyncio.sleep(state.settings.fault_timeout_s)
    elif request.transport is not None:
        request.transport.close()
    return response
