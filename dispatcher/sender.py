"""Sending one chunk: build its requests with the codec, send them through the account's
gate (concurrency, global rate, priority), retry transient failures, and say how the chunk
is to be settled. The worker loop around it (leases, recording, shutdown) is in worker.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from aiolimiter import AsyncLimiter
from redis.asyncio import Redis

from dispatcher.account_api import account_transport
from dispatcher.config import ProviderSettings, Settings
from dispatcher.keys import Keys
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
from dispatcher.ratelimit import AccountGate, GlobalRate, Throttle
from dispatcher.store import now_ms
from dispatcher.transport import Transport, TransportError, close_all

log = logging.getLogger("dispatcher.worker")
SERIAL_MAX = 65535
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
    serials: Iterator[int]  # packet serial numbers, 1…65535 and round again (CloudSMS)


@dataclass
class ChunkRun:
    """The state of one chunk being sent."""

    lease: Lease
    account: Account
    recipients: list[ChunkRecipient]
    codec: Codec  # the campaign kind's codec (the account's SMS codec for SMS)
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    pause_reason: str = ""
    busy: bool = False  # the provider asked us to come back later: stop sending
    defer_ms: float = 0.0  # some recipients must wait this long (per-number throttle)
    lost: bool = False

    @property
    def urgent(self) -> bool:
        return self.lease.lane == URGENT_LANE


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
            transport = account_transport(self.settings, provider, account, ps.concurrency)
            rate = GlobalRate(
                self.redis,
                self.keys.rate(provider, account),
                ps.rate_per_second,
                ps.burst,
                ps.rate_headroom,
            )
            gate = AccountGate(ps.concurrency, AsyncLimiter(ps.rate_per_second, 1.0), rate)
            acct = Account(
                account,
                ps,
                codec,
                transport,
                gate,
                api_key,
                itertools.cycle(range(1, SERIAL_MAX + 1)),
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
        built.requests = [
            HttpRequest(r.method, r.path, r.body, tuple(todo[p] for p in r.positions))
            for r in built.requests
        ]
        scope = asyncio.timeout(None)
        self.deadlines.add(scope)
        try:
            async with scope, asyncio.TaskGroup() as group:
                for request in built.requests:
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
        return not (self.halting or run.lost or run.pause_reason or run.busy)

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
        for attempt in range(ps.max_attempts):
            if not self._should_send(run):
                return
            await acct.gate.enter(run.urgent)
            try:
                if not self._should_send(run) or await self._throttled(run, request):
                    return  # not sent: it goes back to the queue
                try:
                    status, body = await acct.transport.send(request)
                except TransportError as exc:
                    outcomes = [transient(exc.code, str(exc))] * len(request.positions)
                else:
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

    @staticmethod
    def results(run: ChunkRun) -> list[Result]:
        """The chunk's send results; transient failures that outlasted every attempt are
        ``failed`` (and go to the dead-letter list)."""
        sent_at = now_ms()
        results = []
        for pos, o in run.outcomes.items():
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
        if run.lost:
            return Settlement("keep")
        if run.pause_reason:
            log.error("campaign %s paused: %s", run.lease.campaign_id, run.pause_reason)
            return Settlement("hold", reason=run.pause_reason)
        if complete:
            return Settlement("ack")
        if run.busy:
            log.warning("%s: %s is busy; again in %.0f s", where, ps.name, ps.retry_later_seconds)
            return Settlement("delay", delay_s=ps.retry_later_seconds)
        if run.defer_ms:
            return Settlement("delay", delay_s=run.defer_ms / 1000)
        return Settlement("requeue")
