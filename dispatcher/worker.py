"""The worker loop: lease a chunk → send its requests under the rate limit → record → ack.

One process runs up to ``chunks_in_flight`` chunks at once; each chunk's requests share the
account's connection pool, concurrency limit and token bucket. Three background duties run
beside the main loop: refreshing our leases, taking over chunks whose worker died, and
nothing else; shutdown is cooperative:

* ``stop()`` (SIGTERM/SIGINT): read nothing new, let chunks in flight finish.
* near the drain deadline: send no new request; requests in flight may still answer.
* at the deadline: abandon the rest. Every chunk records what it has and re-queues what it
  did not send, so nothing it took is left unrecorded or unacknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from aiolimiter import AsyncLimiter
from redis.asyncio import Redis

from dispatcher.aio import checkpoint
from dispatcher.config import ConfigError, ProviderSettings, Settings
from dispatcher.keys import Keys
from dispatcher.model import CampaignState, Result, Status
from dispatcher.poller import Poller
from dispatcher.providers import CODECS
from dispatcher.providers.base import (
    BuildContext,
    ChunkRecipient,
    Codec,
    HttpRequest,
    Outcome,
    SendJob,
    Verdict,
    transient,
)
from dispatcher.queue import Lease, Queue, Track
from dispatcher.store import now_ms
from dispatcher.transport import Transport, TransportError, client_tls, close_all

log = logging.getLogger("dispatcher.worker")
SERIAL_MAX = 65535
PROMOTE_EVERY_S = 0.5


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


@dataclass
class Account:
    """What every send to one provider account shares within this process."""

    name: str
    provider: ProviderSettings
    codec: Codec
    transport: Transport
    limiter: AsyncLimiter
    slots: asyncio.Semaphore
    api_key: str
    serials: Iterator[int]  # packet serial numbers, 1…65535 and round again (CloudSMS)


@dataclass
class ChunkRun:
    """The state of one chunk being sent."""

    lease: Lease
    account: Account
    recipients: list[ChunkRecipient]
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    pause_reason: str = ""
    later: bool = False  # the provider asked us to come back later
    lost: bool = False


class Worker:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        providers: list[str] | None = None,
        consumer: str | None = None,
        rate_share: int = 1,
        poll: bool = True,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys(settings.prefix)
        names = providers or sorted(settings.providers)
        self.queue = Queue(
            redis, self.keys, consumer or consumer_name(), [self.keys.queue(p) for p in names]
        )
        self.rate_share = max(1, rate_share)
        self.poller = Poller(redis, settings) if poll else None
        self._accounts: dict[tuple[str, str], Account] = {}
        self._runs: dict[str, ChunkRun] = {}  # entry id → run
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._halting = False  # no new HTTP requests
        self._deadlines: set[asyncio.Timeout] = set()
        self.chunks_done = 0

    # -- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        """Begin a graceful shutdown (safe to call from a signal handler)."""
        if not self._stopping.is_set():
            log.info("stopping: finishing %d chunk(s) in flight", len(self._tasks))
        self._stopping.set()

    async def run(self) -> None:
        """Work until ``stop()``, then drain within the configured timeout."""
        await self.queue.setup()
        duties = [
            asyncio.create_task(self._keep_leases(), name="leases"),
            asyncio.create_task(self._take_over(), name="takeover"),
            asyncio.create_task(self._promote_delayed(), name="delayed"),
        ]
        if self.poller is not None:
            duties.append(asyncio.create_task(self.poller.run(), name="poller"))
        try:
            await self._main_loop()
        finally:
            for duty in duties:
                duty.cancel()
            await self._drain()
            # A duty cancelled inside a Redis call checks in at its next checkpoint().
            await asyncio.wait(duties, timeout=10)
            await close_all([a.transport for a in self._accounts.values()])

    async def _main_loop(self) -> None:
        w = self.settings.worker
        while not self._stopping.is_set():
            free = w.chunks_in_flight - len(self._tasks)
            if free <= 0:
                stop = asyncio.create_task(self._stopping.wait())
                await asyncio.wait({*self._tasks, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                continue
            try:
                leases = await self.queue.read(free, w.block_ms)
            except (ConnectionError, OSError) as exc:
                log.warning("redis read failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for lease in leases:
                self._start(lease)

    async def _drain(self) -> None:
        w = self.settings.worker
        if not self._tasks:
            return
        deadline = time.monotonic() + w.drain_timeout_seconds
        # Leave the last part of the drain time for requests already in flight to answer.
        soft = deadline - min(w.drain_timeout_seconds / 2, 5.0)
        await asyncio.wait(set(self._tasks), timeout=max(0.0, soft - time.monotonic()))
        self._halting = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
        loop = asyncio.get_running_loop()
        for scope in list(self._deadlines):
            scope.reschedule(loop.time())  # abandon what is still in flight
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)

    def _start(self, lease: Lease) -> None:
        task = asyncio.create_task(self._process(lease), name=f"chunk-{lease.entry_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- background duties -------------------------------------------------------------

    async def _keep_leases(self) -> None:
        period = self.settings.worker.lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            runs = list(self._runs.values())
            if not runs:
                continue
            try:
                lost = await self.queue.extend([r.lease for r in runs])
            except (ConnectionError, OSError) as exc:
                log.warning("could not refresh leases: %s", exc)
                continue
            checkpoint()
            for run in runs:
                # A run that finished meanwhile has acked its entry: that is not a loss.
                if run.lease.entry_id in lost and self._runs.get(run.lease.entry_id) is run:
                    log.warning(
                        "campaign %s chunk %d: lease lost to another worker; stopping it",
                        run.lease.campaign_id,
                        run.lease.chunk,
                    )
                    run.lost = True

    async def _take_over(self) -> None:
        lease_ms = int(self.settings.worker.lease_seconds * 1000)
        while not self._stopping.is_set():
            free = self.settings.worker.chunks_in_flight - len(self._tasks)
            if free > 0:
                try:
                    for lease in await self.queue.claim(free, lease_ms):
                        log.info(
                            "taking over chunk %d of campaign %s",
                            lease.chunk,
                            lease.campaign_id,
                        )
                        self._start(lease)
                except (ConnectionError, OSError) as exc:
                    log.warning("takeover scan failed: %s", exc)
                checkpoint()
            await asyncio.sleep(max(0.05, self.settings.worker.lease_seconds / 4))

    async def _promote_delayed(self) -> None:
        """Queue again the chunks whose "come back later" time has come."""
        while True:
            try:
                await self.queue.promote()
            except (ConnectionError, OSError) as exc:
                log.warning("could not move delayed chunks: %s", exc)
            checkpoint()
            await asyncio.sleep(PROMOTE_EVERY_S)

    # -- one chunk ---------------------------------------------------------------------

    def _account(self, provider: str, account: str) -> Account:
        key = (provider, account)
        acct = self._accounts.get(key)
        if acct is None:
            ps = self.settings.provider(provider)
            codec = CODECS[provider]
            api_key = ps.account(account).key(provider)
            transport = Transport(
                ps.base_url,
                codec.headers(api_key),
                pool_size=ps.concurrency,
                timeout=ps.timeout_seconds,
                connect_timeout=ps.connect_timeout_seconds,
                ssl_context=client_tls(ps.tls_cert, ps.tls_key, ps.tls_ca),
            )
            rate = ps.rate_per_second / self.rate_share
            acct = Account(
                account,
                ps,
                codec,
                transport,
                AsyncLimiter(rate, 1.0),
                asyncio.Semaphore(ps.concurrency),
                api_key,
                itertools.cycle(range(1, SERIAL_MAX + 1)),
            )
            self._accounts[key] = acct
        return acct

    async def _process(self, lease: Lease) -> None:
        where = f"campaign {lease.campaign_id} chunk {lease.chunk}"
        try:
            data = await self.queue.load(lease)
            if data is None:
                log.warning("%s: campaign is gone; dropping the entry", where)
                await self.queue.drop(lease)
                return
            meta = data.meta
            if meta["state"] == CampaignState.PAUSED:
                await self.queue.record(lease, [], "hold")
                return
            try:
                account = self._account(meta["provider"], meta.get("account", "default"))
            except ConfigError as exc:
                # A missing key or account is mended by an operator, not by retrying.
                log.error("campaign %s paused: %s", lease.campaign_id, exc)
                await self.queue.record(lease, [], "hold", reason=str(exc))
                return
            run = ChunkRun(lease, account, data.recipients)
            self._runs[lease.entry_id] = run
            try:
                await self._send_all(run, meta)
            finally:
                self._runs.pop(lease.entry_id, None)
            await self._settle(run)
            self.chunks_done += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left pending on purpose: the lease expires and another attempt takes it.
            log.exception("%s: failed; it will be retried after its lease expires", where)

    async def _send_all(self, run: ChunkRun, meta: dict[str, str]) -> None:
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
        built = acct.codec.build(job, run.recipients, ctx)
        run.outcomes.update(built.refused)
        requests = built.requests
        scope = asyncio.timeout(None)
        self._deadlines.add(scope)
        try:
            async with scope, asyncio.TaskGroup() as group:
                for request in requests:
                    group.create_task(self._send(run, request))
        except TimeoutError:
            pass  # shutdown deadline: what answered is in run.outcomes
        finally:
            self._deadlines.discard(scope)

    def _should_send(self, run: ChunkRun) -> bool:
        return not (self._halting or run.lost or run.pause_reason or run.later)

    async def _send(self, run: ChunkRun, request: HttpRequest) -> None:
        acct = run.account
        ps = acct.provider
        outcomes: list[Outcome] = []
        for attempt in range(ps.max_attempts):
            async with acct.slots:
                if not self._should_send(run):
                    return
                await acct.limiter.acquire()
                if not self._should_send(run):
                    return
                try:
                    status, body = await acct.transport.send(request)
                except TransportError as exc:
                    outcomes = [transient(exc.code, str(exc))] * len(request.positions)
                else:
                    outcomes = acct.codec.parse(request, status, body)
            if any(o.verdict is Verdict.ACCOUNT for o in outcomes):
                first = next(o for o in outcomes if o.verdict is Verdict.ACCOUNT)
                if not run.pause_reason:
                    run.pause_reason = (
                        f"{first.error_code} from {ps.name} account {acct.name}: {first.error}"
                    )
                return  # not sent: these recipients wait for the campaign to resume
            if any(o.verdict is Verdict.RETRY and o.later for o in outcomes):
                run.later = True
                return  # not sent: the chunk comes back after retry_later_seconds
            if not any(o.verdict is Verdict.RETRY for o in outcomes):
                break
            if attempt + 1 < ps.max_attempts:
                delay = ps.backoff_seconds * (2**attempt) * random.uniform(0.5, 1.5)
                await asyncio.sleep(delay)
        for pos, outcome in zip(request.positions, outcomes, strict=True):
            run.outcomes[pos] = outcome

    async def _settle(self, run: ChunkRun) -> None:
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
        complete = len(run.outcomes) == len(run.recipients)
        if run.lost:
            mode = "keep"
        elif run.pause_reason:
            mode = "hold"
            log.error("campaign %s paused: %s", run.lease.campaign_id, run.pause_reason)
        elif complete:
            mode = "ack"
        elif run.later:
            mode = "delay"
            log.warning(
                "campaign %s chunk %d: %s is busy; trying again in %.0f s",
                run.lease.campaign_id,
                run.lease.chunk,
                run.account.provider.name,
                run.account.provider.retry_later_seconds,
            )
        else:
            mode = "requeue"
        acct = run.account
        await self.queue.record(
            run.lease,
            results,
            mode,
            reason=run.pause_reason,
            delay_s=acct.provider.retry_later_seconds,
            track=Track(
                acct.name,
                index_messages=acct.codec.polling == "list",
                list_open=acct.codec.polling == "list",
            ),
        )
