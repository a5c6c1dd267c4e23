"""One transport per provider account, chosen by the account's settings: an HTTP session
(``transport.py`` on ``http1.py``) for most, an SMPP session (``smpp.py``) for accounts with
``transport = "smpp"``. The sender and the poller only ``send`` and ``close``.

Delivery receipts that come back on an SMPP session are stored here, through the same
forward-only tracking as pushed reports. A receipt can beat its own message's record (the
message id is indexed when the chunk's results are written), so one naming an id we do
not know yet is tried again for a few seconds, then answered "try later" so that the SMSC
delivers it again rather than it being lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from dispatcher.account_api import account_transport
from dispatcher.config import Settings
from dispatcher.providers.base import Codec, Report
from dispatcher.providers.capabilities import SessionReports, capability
from dispatcher.tracking import BATCH, Applied, Tracker

log = logging.getLogger("dispatcher.sessions")
#: Waits before each try of a receipt whose message is not recorded yet (seconds).
RECEIPT_TRIES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
#: How long a receipt waits for others to share its batch. While a campaign is sent they
#: come one by one, some 3,000 a second: alone, each paid four round trips.
RECEIPT_GATHER_S = 0.005


class Transport(Protocol):
    async def send(self, request: Any) -> tuple[int, bytes]:
        """The answer's status and body (HTTP status, or SMPP command_status and ids);
        ``transport.TransportError`` when none came."""
        ...

    def outcome(self, status: int) -> str:
        """The metrics label of an answer's status."""
        ...

    async def close(self) -> None: ...


def receipt_sink(
    tracker: Tracker, provider: str, codec: Codec
) -> Callable[[bytes], Awaitable[bool]] | None:
    """What stores the reports the codec reads off its session; None if it reads none.
    The sink says whether the report is dealt with (stored, a repeat, or not ours)."""
    reader = capability(codec, SessionReports)
    if reader is None:
        return None
    batches = _Batches(tracker, provider)

    async def store(pdu: bytes) -> bool:
        report = reader.parse_deliver(pdu)
        if report is None:
            return True  # not a receipt: nothing to keep
        for wait in RECEIPT_TRIES:
            await asyncio.sleep(wait)
            if await batches.apply(report) is not Applied.UNKNOWN:
                return True
        log.info("%s receipt for message %s not recorded yet; the SMSC will repeat it",
                 provider, report.message_id)  # fmt: skip
        return False

    return store


class _Batches:
    """Receipts stored a batch at a time (Tracker.apply_batch: a few Redis round trips for
    a batch, where one receipt alone took three). One batch is stored at a time, after
    :data:`RECEIPT_GATHER_S` for others to join it; what arrives meanwhile waits for the
    next, and a burst of thousands goes in batches of :data:`tracking.BATCH`."""

    def __init__(self, tracker: Tracker, provider: str) -> None:
        self.tracker = tracker
        self.provider = provider
        self.waiting: list[tuple[Report, asyncio.Future[Applied]]] = []
        self.storing: asyncio.Task[None] | None = None

    async def apply(self, report: Report) -> Applied:
        answer: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self.waiting.append((report, answer))
        if self.storing is None:
            self.storing = asyncio.create_task(self._store())
        return await answer

    async def _store(self) -> None:
        batch: list[tuple[Report, asyncio.Future[Applied]]] = []
        try:
            while self.waiting:
                if len(self.waiting) < BATCH:
                    await asyncio.sleep(RECEIPT_GATHER_S)
                batch, self.waiting = (
                    self.waiting[:BATCH], self.waiting[BATCH:]
                )  # fmt: skip
                try:
                    got = await self.tracker.apply_batch(self.provider, [r for r, _ in batch])
                except Exception as exc:  # each receipt's sink logs it and says "try later"
                    for _report, answer in batch:
                        if not answer.done():
                            answer.set_exception(exc)
                else:
                    for (_report, answer), outcome in zip(batch, got, strict=True):
                        if not answer.done():
                            answer.set_result(outcome)
                batch = []
        finally:  # cancelled (the session closes): nothing is left waiting for ever
            for _report, answer in [*batch, *self.waiting]:
                answer.cancel()
            self.waiting = []
            self.storing = None


def open_transport(
    settings: Settings,
    provider: str,
    account: str,
    *,
    pool_size: int,
    on_deliver: Callable[[bytes], Awaitable[bool]] | None = None,
) -> Transport:
    """The account's transport (ConfigError if it is misconfigured)."""
    ps = settings.provider(provider)
    acct = ps.account(account)
    if acct.smpp is not None:
        from dispatcher.smpp import SmppTransport  # only SMPP accounts need aiosmpplib

        return SmppTransport(
            acct.smpp,
            acct.key(provider),
            timeout=ps.timeout_seconds,
            connect_timeout=ps.connect_timeout_seconds,
            on_deliver=on_deliver,
        )
    return account_transport(settings, provider, account, pool_size)
