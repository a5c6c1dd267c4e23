"""Sending one chunk: build its requests with the codec, send them through the account's
gate (concurrency, global rate, priority), retry transient failures, and say how the chunk
is to be settled. The worker loop around it (leases, recording, shutdown) is in worker.py.

No request leaves without a fresh authorisation of the chunk's owner token (fencing.py),
asked for a few requests ahead at a time. A request whose answer never came although it may
have left (a timeout, a connection lost mid-request, a shutdown cutting it off) is not
retried: its recipients' fate is unknown, and they are parked (unknown.py).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis

from dispatcher import logs
from dispatcher.account_api import account_transport
from dispatcher.config import ProviderSettings, Settings
from dispatcher.fencing import Claim, Fence, Permits
from dispatcher.keys import Keys
from dispatcher.metrics import AccountStats, account_stats
from dispatcher.model import Result, Status
from dispatcher.providers import CODECS
from dispatcher.providers.base import (
    BuildContext,
    ChunkRecipient,
    Codec,
    HttpRequest,
    Outcome,
    SendJob,
    Verdict,
    refused,
    transient,
)
from dispatcher.providers.smsclouds import SmscloudsCodec
from dispatcher.queue import Lease
from dispatcher.ratelimit import AccountGate, GlobalRate, Throttle, local_limiter
from dispatcher.store import now_ms
from dispatcher.transport import Transport, TransportError, close_all
from dispatcher.unknown import Park, Why, window

log = logging.getLogger("dispatcher.worker")
SERIAL_MAX = 65535
URGENT_LANE = "otp"
AHEAD_S = 0.1  # authorise the requests due to leave within this long in one call


@dataclass
class Account:
    """What every send to one provider account shares within this process."""

    name: str
    provider: ProviderSettings
    codec: Codec
    transport: Transport
    gate: AccountGate
    api_key: str
    serials: Iterator[int]  # packet serial numbers, 1…65535 and round again (CloudSMS)
    stats: AccountStats = field(default_factory=AccountStats)  # requests, for /metrics


@dataclass
class ChunkRun:
    """The state of one chunk being sent."""

    lease: Lease
    account: Account
    recipients: list[ChunkRecipient]
    codec: Codec  # the campaign kind's codec (the account's SMS codec for SMS)
    permits: Permits = field(default_factory=lambda: Permits(""))
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    pause_reason: str = ""
    busy: bool = False  # the provider asked us to come back later: stop sending
    defer_ms: float = 0.0  # some recipients must wait this long (per-number throttle)
    lost: bool = False  # another worker owns the entry now: send nothing more
    gone: bool = False  # the campaign no longer exists: send and write nothing more
    halted: bool = False  # paused or cancelled while this chunk ran: back to the queue
    requests: list[HttpRequest] = field(default_factory=list)  # in the order they go
    unknown_at: dict[int, int] = field(default_factory=dict)  # position → Redis ms
    flushed: set[int] = field(default_factory=set)  # positions whose results are written
    on_outcome: Callable[[bool], None] | None = None  # the worker's progress flush
    flushing: asyncio.Task[None] | None = None
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


@dataclass(frozen=True, slots=True)
class Settlement:
    mode: str  # see queue.Queue.record
    delay_s: float = 0.0
    reason: str = ""


class Sender:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.throttle = Throttle(redis)
        self.fence = Fence(redis, self.keys)
        self.halting = False  # set near the drain deadline: no new HTTP requests
        self.deadlines: set[asyncio.Timeout] = set()
        self._accounts: dict[tuple[str, str], Account] = {}

    def account(self, provider: str, account: str) -> Account:
        """The account's shared state, made on first use (ConfigError if misconfigured)."""
        key = (provider, account)
        acct = self._accounts.get(key)
        if acct is None:
            ps = self.settings.provider(provider)
            codec = CODECS[provider]
            api_key = ps.account(account).key(provider)
            logs.protect(api_key)  # an error that quotes it logs no key
            transport = account_transport(self.settings, provider, account, ps.concurrency)
            rate = GlobalRate(
                self.redis,
                self.keys.rate(provider, account),
                ps.rate_for(account),
                ps.burst,
                headroom=ps.rate_headroom,
                jitter_s=ps.rate_jitter_seconds,
            )
            gate = AccountGate(ps.concurrency, local_limiter(ps.rate_for(account)), rate)
            acct = Account(
                account,
                ps,
                codec,
                transport,
                gate,
                api_key,
                itertools.cycle(range(1, SERIAL_MAX + 1)),
                account_stats(provider, account),
            )
            self._accounts[key] = acct
        return acct

    async def close(self) -> None:
        await close_all([a.transport for a in self._accounts.values()])

    async def send_all(self, run: ChunkRun, meta: dict[str, str]) -> None:
        if not run.recipients:
            return
        acct = run.account
        job = SendJob(
            campaign_id=run.lease.campaign_id,
            chunk=run.lease.chunk,
            text=meta["text"],
            signature=meta.get("signature") or None,
            callback_url=self.settings.callback_url(acct.provider.name),
            options=orjson.loads(meta.get("options") or "{}"),
        )
        ctx = BuildContext(acct.api_key, lambda: next(acct.serials), time.time())
        if job.options.get("hlr_scrub"):
            await self._scrub(run)
        # Build for the recipients still to send; positions are mapped back to the chunk's.
        todo = [pos for pos in range(len(run.recipients)) if pos not in run.outcomes]
        built = run.codec.build(job, [run.recipients[p] for p in todo], ctx)
        run.outcomes.update({todo[p]: o for p, o in built.refused.items()})
        run.requests = [
            HttpRequest(r.method, r.path, r.body, tuple(todo[p] for p in r.positions))
            for r in built.requests
        ]
        run._auth_from = 0
        scope = asyncio.timeout(None)
        self.deadlines.add(scope)
        try:
            async with scope, asyncio.TaskGroup() as group:
                for request in run.requests:
                    group.create_task(self._send(run, request))
        except TimeoutError:
            pass  # shutdown deadline: what answered is in run.outcomes
        finally:
            self.deadlines.discard(scope)

    async def _scrub(self, run: ChunkRun) -> None:
        """HLR look-ups before a Smsclouds send: numbers reported invalid are recorded as
        rejected and not sent. A look-up that fails keeps its number."""
        codec = run.codec
        assert isinstance(codec, SmscloudsCodec)
        acct = run.account

        async def look_up(pos: int, number: str) -> None:
            path = codec.hlr_path(number)
            if path is None:
                return
            await acct.gate.enter(run.urgent)
            try:
                status, body = await acct.transport.send(HttpRequest("GET", path, None, (pos,)))
            except TransportError:
                return
            finally:
                acct.gate.leave()
            if codec.hlr_invalid(status, body):
                run.outcomes[pos] = refused("HLR_INVALID", "the HLR look-up says no such number")

        async with asyncio.TaskGroup() as group:
            for pos, rcpt in enumerate(run.recipients):
                group.create_task(look_up(pos, rcpt.number))

    def _should_send(self, run: ChunkRun) -> bool:
        return not (self.halting or run.stopped or run.pause_reason or run.busy)

    def _ahead(self, run: ChunkRun, request: HttpRequest) -> dict[int, int]:
        """This request's positions and those of the next few requests not yet sent, for
        one authorisation: as many requests as the account's rate lets go within AHEAD_S
        (at least one, at most its concurrency). Fewer would cost a Redis call a request
        at high rates; more would leave more recipients of unknown fate if this worker
        stopped, since a successor cannot tell what was authorised from what was sent.
        Position → recipient index."""
        acct = run.account
        most = max(1, min(acct.provider.concurrency,
                          math.ceil(AHEAD_S * 1000 / acct.gate.rate.interval_ms)))  # fmt: skip
        now = time.monotonic()
        wanted = [request]
        while run._auth_from < len(run.requests):
            head = run.requests[run._auth_from]
            if head.positions[0] in run.outcomes or head.positions[0] in run.permits.granted:
                run._auth_from += 1  # answered, or already on its way
            else:
                break
        for r in run.requests[run._auth_from :]:
            if len(wanted) >= most:
                break
            pending = r is not request and r.positions[0] not in run.outcomes
            if pending and not run.permits.fresh(r.positions, now):
                wanted.append(r)
        return {p: run.recipients[p].index for r in wanted for p in r.positions}

    async def _authorised(self, run: ChunkRun, request: HttpRequest) -> bool:
        """Whether this request may leave now: its run still owns the entry, checked in
        Redis no longer than AUTH_TTL_S ago."""
        while not run.stopped and not run.permits.fresh(request.positions, time.monotonic()):
            if run.permits.pending is not None:  # another request asks: its answer may do
                await asyncio.shield(run.permits.pending)
                continue
            claim = await self.fence.authorize(
                run.lease.campaign_id, run.lease.entry_id, run.permits, self._ahead(run, request)
            )
            if claim is Claim.LOST and not run.lost:
                log.warning("%s: lease lost to another worker; sending nothing more", run.where())
                run.lost = True
            elif claim is Claim.GONE and not run.gone:
                log.warning("%s: the campaign is gone; sending nothing more", run.where())
                run.gone = True
            elif claim is Claim.HALTED and not run.halted:
                log.info("%s: paused or cancelled; the rest goes back to the queue", run.where())
                run.halted = True
        return not run.stopped

    def _unknown(self, run: ChunkRun, request: HttpRequest, why: Why, error: str) -> None:
        """The request may have reached the provider and we cannot tell: its recipients'
        fate is unknown."""
        now = time.monotonic()
        outcome = Outcome(Verdict.UNKNOWN, Status.PENDING, error_code=why.value, error=error)
        for pos in request.positions:
            asked, at = run.permits.granted[pos]
            run.outcomes[pos] = outcome
            run.unknown_at[pos] = at + int((now - asked) * 1000)

    async def _throttled(self, run: ChunkRun, request: HttpRequest) -> bool:
        """Take the per-number spacing right before sending; True if it is too early."""
        spacing = (
            run.account.provider.per_number_spacing_seconds or run.codec.number_spacing_seconds
        )
        if not spacing or len(request.positions) != 1:
            return False
        acct = run.account
        number = run.recipients[request.positions[0]].number
        key = self.keys.throttle(f"{acct.provider.name}.{run.codec.kind}", acct.name, number)
        left = await self.throttle.try_take(key, int(spacing * 1000))
        if left:
            run.defer_ms = max(run.defer_ms, float(left))
        return bool(left)

    async def _send(self, run: ChunkRun, request: HttpRequest) -> None:
        acct = run.account
        ps = acct.provider
        outcomes: list[Outcome] = []
        stats = acct.stats
        for attempt in range(ps.max_attempts):
            if not self._should_send(run):
                return
            asked = time.perf_counter()
            await acct.gate.enter(run.urgent)
            stats.wait.observe(time.perf_counter() - asked)
            try:
                if not self._should_send(run):
                    return
                if not await self._authorised(run, request):
                    return  # not ours any more: the successor sees it as unknown fate
                # Last before the request leaves, so that the spacing holds where the
                # provider measures it, not where an authorisation waited.
                if await self._throttled(run, request):
                    return  # not sent: it goes back to the queue
                sent = time.perf_counter()
                try:
                    status, body = await acct.transport.send(request)
                except asyncio.CancelledError:
                    self._unknown(run, request, Why.SHUTDOWN, "cut off in flight at shutdown")
                    raise
                except TransportError as exc:
                    stats.failed(exc.code, exc.maybe_sent, time.perf_counter() - sent)
                    if exc.maybe_sent:
                        why = Why.TIMEOUT if exc.code == "TIMEOUT" else Why.CONNECTION
                        self._unknown(run, request, why, str(exc))
                        self._progress(run, request)
                        return
                    outcomes = [transient(exc.code, str(exc))] * len(request.positions)
                else:
                    stats.answered(status, time.perf_counter() - sent)
                    outcomes = run.codec.parse(request, status, body)
            finally:
                acct.gate.leave()
            if any(o.verdict is Verdict.ACCOUNT for o in outcomes):
                first = next(o for o in outcomes if o.verdict is Verdict.ACCOUNT)
                if not run.pause_reason:
                    run.pause_reason = (
                        f"{first.error_code} from {ps.name} account {acct.name}: {first.error}"
                    )
                return  # not sent: these recipients wait for the campaign to resume
            if any(o.verdict is Verdict.RETRY and o.later for o in outcomes):
                run.busy = True
                return  # not sent: the chunk comes back after retry_later_seconds
            if not any(o.verdict is Verdict.RETRY for o in outcomes):
                break
            if attempt + 1 < ps.max_attempts:
                delay = ps.backoff_seconds * (2**attempt) * random.uniform(0.5, 1.5)
                await asyncio.sleep(delay)
        for pos, outcome in zip(request.positions, outcomes, strict=True):
            run.outcomes[pos] = outcome
        self._progress(run, request)

    @staticmethod
    def _progress(run: ChunkRun, request: HttpRequest) -> None:
        if run.on_outcome is not None:
            run.on_outcome(len(request.positions) > 1)

    @staticmethod
    def parks(run: ChunkRun) -> list[Park]:
        """The recipients whose fate this run left unknown."""
        ps = run.account.provider
        return [
            window(ps, run.recipients[pos].index, run.lease.chunk,
                   since_ms=run.permits.granted[pos][1], seen_ms=run.unknown_at[pos],
                   why=Why(o.error_code or Why.TIMEOUT), listed=run.codec.polling == "list")
            for pos, o in run.outcomes.items()
            if o.verdict is Verdict.UNKNOWN
        ]  # fmt: skip

    @staticmethod
    def results(run: ChunkRun, positions: list[int] | None = None) -> list[Result]:
        """The chunk's send results (of ``positions``, or all); transient failures that
        outlasted every attempt are ``failed`` (and go to the dead-letter list)."""
        sent_at = now_ms()
        results = []
        for pos in run.outcomes if positions is None else positions:
            o = run.outcomes[pos]
            if o.verdict is Verdict.UNKNOWN:
                continue
            r = run.recipients[pos]
            status = Status.FAILED if o.verdict is Verdict.RETRY else o.status
            results.append(
                Result(
                    r.index,
                    r.number,
                    status,
                    o.message_id,
                    o.error_code,
                    o.error,
                    o.segments,
                    o.price,
                    sent_at,
                    o.batch_id,
                )
            )
        return results

    @staticmethod
    def exhausted(run: ChunkRun, results: list[Result]) -> list[Result]:
        """The results that failed only because transient errors outlasted every attempt:
        the dead-letter list, for ``retry``."""
        positions = {run.recipients[p].index for p, o in run.outcomes.items()
                     if o.verdict is Verdict.RETRY}  # fmt: skip
        return [r for r in results if r.index in positions]

    @staticmethod
    def settlement(run: ChunkRun) -> Settlement:
        complete = len(run.outcomes) == len(run.recipients)
        ps = run.account.provider
        where = f"campaign {run.lease.campaign_id} chunk {run.lease.chunk}"
        if run.gone:
            return Settlement("drop")
        if run.lost:
            return Settlement("keep")
        if run.halted:  # read again, it is held (paused) or its rest cancelled
            return Settlement("requeue")
        if run.pause_reason:  # logged once, by the worker whose record pauses the campaign
            return Settlement("hold", reason=run.pause_reason)
        if complete:
            return Settlement("ack")
        if run.busy:
            log.warning("%s: %s is busy; again in %.0f s", where, ps.name, ps.retry_later_seconds)
            return Settlement("delay", delay_s=ps.retry_later_seconds)
        if run.defer_ms:
            return Settlement("delay", delay_s=run.defer_ms / 1000)
        return Settlement("requeue")
