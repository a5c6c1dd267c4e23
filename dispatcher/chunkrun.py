"""One chunk being sent: its state while the sender works on it (sender.py), and what it
comes to when it settles: the results to record, the dead letters, the recipients parked
of unknown fate, and how the queue entry is settled (worker.py records them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field

from dispatcher.answers import Answers
from dispatcher.config import ProviderSettings
from dispatcher.fencing import Permits
from dispatcher.metrics import AccountStats
from dispatcher.model import Result
from dispatcher.providers.base import ChunkRecipient, Codec, Outcome, Request, Verdict
from dispatcher.providers.capabilities import ListPolling, capability
from dispatcher.queue import Lease
from dispatcher.ratelimit import AccountGate
from dispatcher.sessions import Transport
from dispatcher.settle import Settle
from dispatcher.store import now_ms
from dispatcher.unknown import Park, Why, window

log = logging.getLogger("dispatcher.worker")
URGENT_LANE = "otp"


@dataclass
class Account:
    """What every send to one provider account shares within this process."""

    name: str
    provider: ProviderSettings
    codec: Codec
    transport: Transport
    gate: AccountGate
    api_key: str
    serials: Iterator[int]  # 1…65535 and round again: packet serials, SMPP references
    stats: AccountStats = field(default_factory=AccountStats)  # requests, for /metrics


@dataclass
class ChunkRun:
    """The state of one chunk being sent."""

    lease: Lease
    account: Account
    recipients: list[ChunkRecipient]
    codec: Codec  # the campaign kind's codec (the account's SMS codec for SMS)
    permits: Permits = field(default_factory=lambda: Permits(""))
    #: Recipients a takeover handed to the unknown-fate machinery (fencing.TakenOver): what
    #: this entry queues again must not name them.
    handed: frozenset[int] = frozenset()
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    pause_reason: str = ""
    busy: bool = False  # the provider asked us to come back later: stop sending
    defer_ms: float = 0.0  # some recipients must wait this long (per-number throttle)
    lost: bool = False  # another worker owns the entry now: send nothing more
    gone: bool = False  # the campaign no longer exists: send and write nothing more
    halted: bool = False  # paused or cancelled while this chunk ran: back to the queue
    requests: list[Request] = field(default_factory=list)  # in the order they go
    unknown_at: dict[int, int] = field(default_factory=dict)  # position → Redis ms
    flushed: set[int] = field(default_factory=set)  # positions whose results are written
    flushing: asyncio.Task[None] | None = None
    #: Hands the worker's turn on, as the chunk's first request leaves (worker.py).
    turn: Callable[[], None] | None = None
    flush_later: asyncio.TimerHandle | None = None  # a flush put off (recording.py)
    settling: bool = False  # its settlement has begun: no more progress writes
    last_flush: float = field(default_factory=time.monotonic)
    _auth_from: int = 0  # requests before this one need no authorisation any more

    @property
    def urgent(self) -> bool:
        return self.lease.lane == URGENT_LANE

    @property
    def stopped(self) -> bool:
        return self.lost or self.gone or self.halted

    def where(self) -> str:
        return f"campaign {self.lease.campaign_id} chunk {self.lease.chunk}"


class Turn:
    """One chunk at a time gets ready to send: loaded, claimed, its requests built and
    the first of them sent; then the next, in the order they came. Chunks read together
    would otherwise all be parsed and built before the first request left: for four
    30,000-recipient chunks, ~150 ms of a provider kept waiting. A chunk whose first
    request must wait for its account (ratelimit.AccountGate) hands the turn on as it
    starts waiting: held through that wait, every chunk of a busy account stalled every
    other account's next chunk, and ten accounts took up to 2× their time. A chunk keeps
    the turn at most ``most_s`` in any case."""

    def __init__(self, most_s: float) -> None:
        self.most_s = most_s
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def take(self) -> AsyncIterator[Callable[[], None]]:
        """Wait for the turn; yields what hands it on (again on leaving: no matter)."""
        await self._lock.acquire()
        held = True

        def hand_on() -> None:
            nonlocal held
            if held:
                held = False
                self._lock.release()

        timer = asyncio.get_running_loop().call_later(self.most_s, hand_on)
        try:
            yield hand_on
        finally:
            timer.cancel()
            hand_on()


@dataclass(frozen=True, slots=True)
class Settlement:
    mode: Settle  # see queue.Queue.record
    delay_s: float = 0.0
    reason: str = ""


def parks(run: ChunkRun) -> list[Park]:
    """The recipients whose fate this run left unknown: those it noted when (``unknown_at``)."""
    ps = run.account.provider
    listed = capability(run.codec, ListPolling) is not None  # once, not per recipient
    outcomes = run.outcomes
    return [
        window(ps, run.recipients[pos].index, run.lease.chunk,
               since_ms=run.permits.granted[pos][1], seen_ms=seen,
               why=Why(outcomes[pos].error_code or Why.TIMEOUT), listed=listed)
        for pos, seen in run.unknown_at.items()
        if outcomes[pos].verdict is Verdict.UNKNOWN
    ]  # fmt: skip


def results(run: ChunkRun, positions: Iterable[int]) -> tuple[Answers, list[Result]]:
    """The chunk's send results of ``positions`` (those of unknown fate left out), and the
    dead letters among them: transient failures that outlasted every attempt, ``failed``
    here and listed for ``retry``. No Result is made for the record (answers.py)."""
    outcomes, recipients = run.outcomes, run.recipients
    unknown, retry = Verdict.UNKNOWN, Verdict.RETRY
    kept: list[ChunkRecipient]
    told: list[Outcome]
    in_order = False
    if not run.unknown_at:  # none of unknown fate (sender._unknown notes each): no test
        wanted = list(positions)
        if positions is outcomes:  # every answer, in the order they came
            told = list(outcomes.values())
        else:
            told = list(map(outcomes.__getitem__, wanted))
        # a chunk's recipients are in the campaign's order (intake cuts them so)
        in_order = len(wanted) == len(recipients) and wanted == list(range(len(recipients)))
        kept = recipients if in_order else list(map(recipients.__getitem__, wanted))
    else:
        kept, told = [], []
        for pos in positions:
            o = outcomes[pos]
            if o.verdict is not unknown:
                kept.append(recipients[pos])
                told.append(o)
    answers = Answers(kept, told, now_ms(), in_order=in_order)
    return answers, [answers[i] for i, o in enumerate(told) if o.verdict is retry]


def settlement(run: ChunkRun) -> Settlement:
    complete = len(run.outcomes) == len(run.recipients)
    ps = run.account.provider
    where = f"campaign {run.lease.campaign_id} chunk {run.lease.chunk}"
    if run.gone:
        return Settlement(Settle.DROP)
    if run.lost:
        return Settlement(Settle.KEEP)
    if run.halted:  # read again, it is held (paused) or its rest cancelled
        return Settlement(Settle.REQUEUE)
    if run.pause_reason:  # logged once, by the worker whose record pauses the campaign
        return Settlement(Settle.HOLD, reason=run.pause_reason)
    if complete:
        return Settlement(Settle.ACK)
    if run.busy:
        log.warning("%s: %s is busy; again in %.0f s", where, ps.name, ps.retry_later_seconds)
        return Settlement(Settle.DELAY, delay_s=ps.retry_later_seconds)
    if run.defer_ms:
        return Settlement(Settle.DELAY, delay_s=run.defer_ms / 1000)
    return Settlement(Settle.REQUEUE)
