"""Sending one chunk: build its requests with the codec, send them through the account's
transport and gate (concurrency, global rate, priority), retry transient failures. What the
run comes to (results, parks, settlement) is chunkrun.py; the worker loop around it
(leases, recording, shutdown) is worker.py.

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
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis

from dispatcher import logs
from dispatcher.chunkrun import Account, ChunkRun
from dispatcher.config import Settings
from dispatcher.fencing import Claim, Fence
from dispatcher.keys import Keys
from dispatcher.meta import CampaignMeta
from dispatcher.metrics import account_stats
from dispatcher.model import Status
from dispatcher.providers import account_codec
from dispatcher.providers.base import (
    BuildContext,
    HttpRequest,
    Outcome,
    Request,
    SendJob,
    Verdict,
    refused,
    transient,
)
from dispatcher.providers.capabilities import Scrubbing, capability
from dispatcher.ratelimit import AccountGate, GlobalRate, Throttle, local_limiter
from dispatcher.sessions import open_transport, receipt_sink
from dispatcher.tracking import Tracker
from dispatcher.transport import TransportError
from dispatcher.unknown import Why

log = logging.getLogger("dispatcher.worker")
SERIAL_MAX = 65535
AHEAD_S = 0.1  # authorise the requests due to leave within this long in one call
THROTTLED_TRIES = 50  # "too fast" answers to one request before its chunk steps aside
THROTTLED_DEFER_S = 5.0
#: New slots a late request takes before it leaves anyway: lateness this persistent is
#: beyond the cap of the jitter allowed for, and waiting on would only stall the account.
RETAKES = 8


class _Pullers:
    """The tasks sending one chunk's requests: at most one per request, and no more than
    the account's concurrency."""

    def __init__(self, group: asyncio.TaskGroup, requests: int, concurrency: int) -> None:
        self.group = group
        self.most = min(requests, concurrency)
        self.count = 0

    def room(self) -> bool:
        return self.count < self.most

    def add(self, coro: Coroutine[Any, Any, None]) -> None:
        self.count += 1
        self.group.create_task(coro)


class Sender:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys.of(settings, redis)
        self.throttle = Throttle(redis)
        self.fence = Fence(redis, self.keys)
        self.tracker = Tracker(redis, self.keys)  # receipts that come back on a session
        self.halting = False  # set near the drain deadline: no new HTTP requests
        self.deadlines: set[asyncio.Timeout] = set()
        #: Told of each answered request (the worker's progress flush). One hook for every
        #: run, not a closure per run: a run that held one naming itself would be a cycle,
        #: kept with all its recipients until the collector's next full pass.
        self.on_progress: Callable[[ChunkRun], None] | None = None
        self._accounts: dict[tuple[str, str], Account] = {}

    def account(self, provider: str, account: str) -> Account:
        """The account's shared state, made on first use (ConfigError if misconfigured)."""
        key = (provider, account)
        acct = self._accounts.get(key)
        if acct is None:
            ps = self.settings.provider(provider)
            codec = account_codec(self.settings, provider, account)
            api_key = ps.account(account).key(provider)
            logs.protect(api_key)  # an error that quotes it logs no key
            transport = open_transport(
                self.settings,
                provider,
                account,
                pool_size=ps.concurrency,
                on_deliver=receipt_sink(self.tracker, provider, codec),
            )
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
        transports = [a.transport for a in self._accounts.values()]
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)

    async def send_all(
        self, run: ChunkRun, meta: CampaignMeta, ready: Callable[[], None] = lambda: None
    ) -> None:
        """Send the chunk. ``ready`` is called as its first request leaves (or before
        look-ups that may take long, or at the end if nothing left), so that the worker
        gets the next chunk ready while the provider works on this one."""
        if not run.recipients:
            return
        acct = run.account
        job = SendJob(
            campaign_id=run.lease.campaign_id,
            chunk=run.lease.chunk,
            text=meta.text,
            signature=meta.signature,
            callback_url=self.settings.callback_url(acct.provider.name),
            options=meta.options,
        )
        ctx = BuildContext(acct.api_key, lambda: next(acct.serials), time.time())
        scrub = capability(run.codec, Scrubbing)
        if scrub is not None and scrub.wants_scrub(job.options):
            ready()
            await self._scrub(run, scrub)
        # Build for the recipients still to send; positions are mapped back to the chunk's.
        if run.outcomes:  # some were settled before (look-ups)
            todo: Sequence[int] = [p for p in range(len(run.recipients)) if p not in run.outcomes]
            built = run.codec.build(job, [run.recipients[p] for p in todo], ctx)
        else:  # all of them, as usual: positions agree
            todo = range(len(run.recipients))
            built = run.codec.build(job, run.recipients, ctx)
        run.outcomes.update({todo[p]: o for p, o in built.refused.items()})
        if len(todo) == len(run.recipients):
            run.requests = list(built.requests)
        else:
            run.requests = [
                replace(r, positions=tuple(todo[p] for p in r.positions)) for r in built.requests
            ]
        run._auth_from = 0
        run.turn = ready
        scope = asyncio.timeout(None)
        self.deadlines.add(scope)
        # One task sends the chunk's requests one after another, and another joins it
        # while the account has free concurrency: a task (and a gate waiter) per request
        # cost more than the request's own bookkeeping, and tasks beyond what the account
        # can have in flight would only wait.
        pending = iter(run.requests)
        try:
            async with scope, asyncio.TaskGroup() as group:
                pool = _Pullers(group, len(run.requests), acct.provider.concurrency)
                pool.add(self._send_each(run, pending, pool))
        except TimeoutError:
            pass  # shutdown deadline: what answered is in run.outcomes
        finally:
            self.deadlines.discard(scope)
            ready()

    async def _scrub(self, run: ChunkRun, codec: Scrubbing) -> None:
        """Look-ups before sending (HLR): numbers reported invalid are recorded as rejected
        and not sent. A look-up that fails keeps its number."""
        acct = run.account

        async def look_up(pos: int, number: str) -> None:
            path = codec.scrub_path(number)
            if path is None:
                return
            await acct.gate.enter(run.urgent)
            try:
                status, body = await acct.transport.send(HttpRequest("GET", path, None, (pos,)))
            except TransportError:
                return
            finally:
                acct.gate.leave()
            if codec.scrub_invalid(status, body):
                run.outcomes[pos] = refused("HLR_INVALID", "the HLR look-up says no such number")

        async with asyncio.TaskGroup() as group:
            for pos, rcpt in enumerate(run.recipients):
                group.create_task(look_up(pos, rcpt.number))

    def _should_send(self, run: ChunkRun) -> bool:
        return not (self.halting or run.stopped or run.pause_reason or run.busy)

    def _ahead(self, run: ChunkRun, request: Request) -> dict[int, int]:
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

    async def _authorised(self, run: ChunkRun, request: Request) -> bool:
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

    def _unknown(self, run: ChunkRun, request: Request, why: Why, error: str) -> None:
        """The request may have reached the provider and we cannot tell: its recipients'
        fate is unknown."""
        now = time.monotonic()
        outcome = Outcome(Verdict.UNKNOWN, Status.PENDING, error_code=why.value, error=error)
        for pos in request.positions:
            asked, at = run.permits.granted[pos]
            run.outcomes[pos] = outcome
            run.unknown_at[pos] = at + int((now - asked) * 1000)

    async def _throttled(self, run: ChunkRun, request: Request) -> bool:
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

    async def _send_each(self, run: ChunkRun, pending: Iterator[Request], pool: _Pullers) -> None:
        for request in pending:
            if run.account.gate.slots.free > 0 and pool.room():
                pool.add(self._send_each(run, pending, pool))
            await self._send(run, request)

    async def _send(self, run: ChunkRun, request: Request) -> None:
        acct = run.account
        ps = acct.provider
        outcomes: list[Outcome] = []
        stats = acct.stats
        attempt = throttled = 0
        while attempt < ps.max_attempts:
            if not self._should_send(run):
                return
            asked = time.perf_counter()
            # The chunk's first request hands the worker's turn on if it has to wait for
            # the account (another chunk of it is sending): not ready, just in line.
            slot = await acct.gate.enter(run.urgent, run.turn)
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
                retook = await self._on_time(acct.gate.rate, slot, run.turn)
                if retook and not await self._authorised(run, request):
                    return  # waiting for a new slot outlived the authorisation, and not ours
                if run.turn is not None:  # the chunk's first request: the next may get ready
                    run.turn()
                    run.turn = None
                sent = time.monotonic()
                try:
                    status, body = await acct.transport.send(request)
                except asyncio.CancelledError:
                    self._unknown(run, request, Why.SHUTDOWN, "cut off in flight at shutdown")
                    raise
                except TransportError as exc:
                    stats.failed(exc.code, exc.maybe_sent, time.monotonic() - sent)
                    if exc.maybe_sent:
                        why = Why.TIMEOUT if exc.code == "TIMEOUT" else Why.CONNECTION
                        self._unknown(run, request, why, str(exc))
                        self._progress(run)
                        return
                    outcomes = [transient(exc.code, str(exc))] * len(request.positions)
                else:
                    answered = time.monotonic()
                    acct.gate.rate.jitter.answered(answered - sent, answered)
                    stats.answered(acct.transport.outcome(status), answered - sent)
                    outcomes = run.codec.parse(request, status, body)
            finally:
                acct.gate.leave()
            verdicts = {o.verdict for o in outcomes}  # one pass: a batch has thousands
            if Verdict.ACCOUNT in verdicts:
                first = next(o for o in outcomes if o.verdict is Verdict.ACCOUNT)
                if not run.pause_reason:
                    run.pause_reason = (
                        f"{first.error_code} from {ps.name} account {acct.name}: {first.error}"
                    )
                return  # not sent: these recipients wait for the campaign to resume
            retried: list[Outcome] = []
            if Verdict.RETRY in verdicts:
                retried = [o for o in outcomes if o.verdict is Verdict.RETRY]
            if any(o.later for o in retried):
                run.busy = True
                return  # not sent: the chunk comes back after retry_later_seconds
            if any(o.slow for o in retried):  # only a RETRY is ever "too fast"
                # "Too fast": not taken. The account slows down, and the request goes
                # again without spending an attempt; if it keeps being refused, the chunk
                # comes back a little later instead.
                acct.gate.slow_down()
                throttled += 1
                if throttled >= THROTTLED_TRIES:
                    run.defer_ms = max(run.defer_ms, THROTTLED_DEFER_S * 1000)
                    return
                continue
            acct.gate.steady()
            if not retried:
                break
            attempt += 1
            if attempt < ps.max_attempts:
                delay = ps.backoff_seconds * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
                await asyncio.sleep(delay)
        run.outcomes.update(zip(request.positions, outcomes, strict=True))
        self._progress(run)

    @staticmethod
    async def _on_time(
        rate: GlobalRate, slot: tuple[float, float], waits: Callable[[], None] | None
    ) -> bool:
        """Take a new slot while this one is too late to leave on (ratelimit.py): a request
        that left later than its slot allowed for could land too close to another. Whether
        it took one: the wait may have outlived the request's authorisation."""
        took = False
        for _ in range(RETAKES):
            if not rate.too_late(slot, time.monotonic()):
                break
            slot, took = await rate.take(waits), True
        return took

    def _progress(self, run: ChunkRun) -> None:
        if self.on_progress is not None:
            self.on_progress(run)
