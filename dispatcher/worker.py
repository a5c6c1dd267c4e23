"""The worker loop: lease a chunk → send its requests under the rate limit → record → ack.

One process runs up to ``chunks_in_flight`` chunks at once (plus a few for the otp lane);
each chunk's requests share the account's transport, concurrency limit and rate
(sender.py). A chunk is claimed with an owner token before anything is sent (fencing.py),
writes its answered results as it goes, and settles with one script (recording.py):
results recorded, recipients of unknown fate parked (unknown.py), entry acknowledged.
Background duties run beside the main loop: refreshing our leases, taking over chunks
whose worker died or stalled (parking what it may have sent, never waiting for the provider
in a chunk slot), moving delayed chunks back to work, settling unknown fates that expired,
polling (which also settles unknown fates from the provider's records), and archiving
campaigns past their retention (retention.py). Shutdown is
cooperative:

* ``stop()`` (SIGTERM/SIGINT): read nothing new, let chunks in flight finish.
* near the drain deadline: send no new request; requests in flight may still answer.
* at the deadline: abandon the rest. Every chunk records what it has and re-queues what it
  did not send, so nothing it took is left unrecorded or unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext

from redis.asyncio import Redis

from dispatcher import logs, metrics
from dispatcher.admission import Admission
from dispatcher.aio import checkpoint
from dispatcher.chunkrun import URGENT_LANE, ChunkRun, Turn
from dispatcher.config import ConfigError, Settings
from dispatcher.fencing import Claim, Permits, TakenOver
from dispatcher.keys import LANES, Keys
from dispatcher.meta import CampaignMeta
from dispatcher.model import CampaignState, Result, Status
from dispatcher.poller import Poller
from dispatcher.providers import account_codec
from dispatcher.providers.base import Codec
from dispatcher.providers.capabilities import ListPolling, capability
from dispatcher.queue import REDIS_ERRORS, Lease, Queue, Settle, Track
from dispatcher.recording import MAX_BACKOFF_S, MIN_BACKOFF_S, Recording, account_pause
from dispatcher.retention import Retention
from dispatcher.sender import Sender
from dispatcher.store import now_ms
from dispatcher.unknown import Settler, UnknownStore, expiry_floor

log = logging.getLogger("dispatcher.worker")
PROMOTE_EVERY_S = 0.5
URGENT_SLOTS = 2  # chunk slots kept for the otp lane beyond chunks_in_flight
URGENT_POLL_MS = 100  # how often a busy worker looks at the otp lane
#: The longest one chunk keeps the worker's turn at getting ready (chunkrun.Turn).
TURN_MOST_S = 0.1


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


class Worker:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        providers: list[str] | None = None,
        consumer: str | None = None,
        poll: bool = True,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys.of(settings, redis)
        names = providers or sorted(settings.providers)
        streams = [part.queue(p, lane) for part in self.keys.parts for lane in LANES for p in names]
        self.queue = Queue(redis, self.keys, consumer or consumer_name(), streams)
        self.admission = Admission(redis, settings, names)
        self.sender = Sender(redis, settings)
        self.poller = Poller(redis, settings) if poll else None
        self.unknown = UnknownStore(redis, self.keys)
        self.settler = Settler(redis, settings, self.unknown)
        self.recording = Recording(self.queue, self.keys, self.unknown)
        self.sender.on_progress = self.recording.maybe_flush
        self.retention = Retention(redis, settings)
        self._runs: dict[str, ChunkRun] = {}  # entry id → run
        self._turn = Turn(TURN_MOST_S)  # at getting a chunk ready
        self._tasks: set[asyncio.Task[None]] = set()
        self._urgent: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._backoff = MIN_BACKOFF_S
        self.chunks_done = 0

    @property
    def chunks_in_flight(self) -> int:
        """Chunks being worked on now (for /metrics)."""
        return len(self._tasks)

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
            asyncio.create_task(self._promote_delayed(), name="delayed"),
            asyncio.create_task(self.settler.run(REDIS_ERRORS), name="settler"),
        ]
        if self.poller is not None:
            duties.append(asyncio.create_task(self.poller.run(), name="poller"))
        every = self.settings.worker.retention_sweep_seconds
        if every > 0:  # archive campaigns past their retention (retention.py)
            duties.append(asyncio.create_task(self.retention.run(every), name="retention"))
        try:
            await self._main_loop()
        finally:
            for duty in duties:
                duty.cancel()
            await self._drain()
            # A duty cancelled inside a Redis call checks in at its next checkpoint().
            await asyncio.wait(duties, timeout=10)
            await self.sender.close()
            if self.poller is not None:
                await self.poller.close()

    async def _main_loop(self) -> None:
        """Fill free slots: first with chunks whose worker died or stalled (taken over once
        idle for a lease: they are the oldest work), then with new ones. When every slot is
        taken, a look-out keeps reading the otp lane (which has a few slots of its own)
        while the loop waits for a slot, so an OTP never waits for a bulk chunk to finish."""
        w = self.settings.worker
        lookout: asyncio.Task[list[Lease]] | None = None
        next_claim = 0.0
        while not self._stopping.is_set():
            free = w.chunks_in_flight - (len(self._tasks) - len(self._urgent))
            urgent_free = URGENT_SLOTS - len(self._urgent)
            try:
                if lookout is not None and lookout.done():
                    leases, lookout = lookout.result(), None
                elif free > 0 and time.monotonic() >= next_claim:
                    next_claim = time.monotonic() + w.lease_seconds / 4
                    leases = await self.queue.claim(free, int(w.lease_seconds * 1000))
                    checkpoint()
                elif free > 0:
                    leases = await self._take(free, w.block_ms)
                else:
                    if lookout is None and urgent_free > 0:
                        lookout = asyncio.create_task(
                            self._take(urgent_free, URGENT_POLL_MS, (URGENT_LANE,))
                        )
                    stop = asyncio.create_task(self._stopping.wait())
                    waits = {*self._tasks, stop, *([lookout] if lookout else [])}
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                    stop.cancel()
                    continue
            except REDIS_ERRORS as exc:
                # Redis restarting or unreachable: wait and reconnect, never give up.
                log.warning("redis read failed (%s); retrying in %.1f s", exc, self._backoff)
                lookout = None
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
                if "NOGROUP" in str(exc):
                    await self._setup_quietly()
                continue
            self._backoff = MIN_BACKOFF_S
            for lease in leases:
                self._start(lease)
        if lookout is not None:  # let it finish: what it read must be worked or drained
            with contextlib.suppress(*REDIS_ERRORS):
                for lease in await lookout:
                    self._start(lease)

    async def _take(self, count: int, block_ms: int, lanes: Sequence[str] = LANES) -> list[Lease]:
        """Admit up to ``count`` chunks (fairly, for accounts that can send soon), then read
        up to ``count`` admitted ones, the most urgent lane first."""
        await self.admission.admit(count, lanes)
        return await self.queue.read(count, block_ms, lanes)

    async def _setup_quietly(self) -> None:
        """The stream or group vanished (a Redis without persistence restarted): recreate."""
        with contextlib.suppress(*REDIS_ERRORS):
            await self.queue.setup()

    async def _drain(self) -> None:
        w = self.settings.worker
        if not self._tasks:
            return
        deadline = time.monotonic() + w.drain_timeout_seconds
        # Leave the last part of the drain time for requests already in flight to answer.
        soft = deadline - min(w.drain_timeout_seconds / 2, 5.0)
        await asyncio.wait(set(self._tasks), timeout=max(0.0, soft - time.monotonic()))
        self.sender.halting = True
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, deadline - time.monotonic()))
        loop = asyncio.get_running_loop()
        for scope in list(self.sender.deadlines):
            scope.reschedule(loop.time())  # abandon what is still in flight
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)

    def _start(self, lease: Lease) -> None:
        task = asyncio.create_task(self._process(lease), name=f"chunk-{lease.entry_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if lease.lane == URGENT_LANE:
            self._urgent.add(task)
            task.add_done_callback(self._urgent.discard)

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
            except REDIS_ERRORS as exc:
                log.warning("could not refresh leases: %s", exc)
                continue
            checkpoint()
            for run in runs:
                # A run that finished meanwhile has acked its entry: that is not a loss.
                mine = self._runs.get(run.lease.entry_id) is run
                if run.lease.entry_id in lost and mine and not run.lost:
                    log.warning(
                        "campaign %s chunk %d: lease lost to another worker; stopping it",
                        run.lease.campaign_id,
                        run.lease.chunk,
                    )
                    run.lost = True

    async def _promote_delayed(self) -> None:
        """Queue again the chunks whose "come back later" time has come."""
        while True:
            try:
                await self.queue.promote()
            except REDIS_ERRORS as exc:
                log.warning("could not move delayed chunks: %s", exc)
            checkpoint()
            await asyncio.sleep(PROMOTE_EVERY_S)

    # -- one chunk ---------------------------------------------------------------------

    async def _own(self, lease: Lease, meta: CampaignMeta, token: str) -> TakenOver:
        """Claim the entry for ``token``: a fresh one if nobody had it, or one taken over,
        parking what its previous owner may have sent (fencing.py)."""
        provider, kind, account = meta.provider, meta.kind, meta.account
        if not lease.taken_over:
            got, first = await self.sender.fence.claim_first(
                lease.campaign_id, lease.entry_id, token
            )
            if first:
                logs.event("started", lease.campaign_id,
                           f"chunk {lease.chunk} taken by worker {self.queue.consumer}",
                           provider=provider, account=account, kind=kind,
                           lane=lease.lane)  # fmt: skip
            return TakenOver(got)
        ps = self.settings.provider(provider)
        took = await self.sender.fence.take_over(
            lease.campaign_id,
            lease.chunk,
            lease.entry_id,
            token,
            self.keys.part(lease.campaign_id).unknown(self.keys.listed(provider, kind), account),
            skew_s=ps.clock_skew_seconds,
            late_s=ps.timeout_seconds,
            wait_s=ps.unknown_wait_seconds,
            floor_s=expiry_floor(ps, capability(self._codec(meta), ListPolling) is not None),
        )
        claim, parked = took.claim, took.parked
        if parked:
            metrics.PARKED.labels(provider, "takeover").inc(parked)
        if claim is Claim.OK:  # else: gone, or settled long ago: nothing was taken over
            metrics.TAKEOVERS.labels(provider).inc()
            logs.event(
                "takeover", lease.campaign_id,
                f"chunk {lease.chunk} taken over from a worker that stopped; {parked} "
                "recipient(s) it may have sent are parked (unknown fate)",
                level=logging.WARNING, provider=provider, account=account, chunk=lease.chunk,
                parked=parked,
            )  # fmt: skip
        return took

    async def _process(self, lease: Lease) -> None:
        # An OTP never waits for the turn (chunkrun.Turn).
        turn = self._turn.take() if lease.lane != URGENT_LANE else nullcontext(_nothing)
        async with turn as ready:
            await self._work(lease, ready)

    async def _work(self, lease: Lease, ready: Callable[[], None]) -> None:
        where = f"campaign {lease.campaign_id} chunk {lease.chunk}"
        try:
            data = await self.queue.load(lease)
            if data is None:
                log.warning("%s: the campaign is gone; dropping the entry", where)
                await self.queue.drop(lease)
                return
            meta = data.meta
            token = f"{self.queue.consumer}:{os.urandom(4).hex()}"
            took = await self._own(lease, meta, token)
            if took.claim is not Claim.OK:
                if took.claim is Claim.GONE or lease.taken_over:  # gone, or settled long ago
                    await self.queue.drop(lease)
                return  # another worker owns it
            if lease.taken_over:
                await self.unknown.settle_reported(
                    lease.campaign_id,
                    meta.provider,
                    {r.index: r.number for r in data.recipients},
                )
            # What a previous owner may have sent is the unknown-fate machinery's now,
            # wherever it has moved it since (held, queued again): never this entry's.
            handed = took.handed
            recipients = data.recipients
            if handed:
                recipients = [r for r in recipients if r.index not in handed]
            if lease.redelivered:
                recipients = await self.queue.unsettled(lease.campaign_id, recipients)
            track = Track(meta.account)
            if meta.state is CampaignState.PAUSED:
                await self.recording.record(
                    lease, [], Settle.HOLD, token=token, track=track, handed=handed
                )
                return
            if meta.state is CampaignState.CANCELLED:
                now = now_ms()
                cancelled = [
                    Result(r.index, r.number, Status.CANCELLED, error="cancelled", sent_at=now)
                    for r in recipients
                ]
                await self.recording.record(lease, cancelled, Settle.ACK, token=token, track=track)
                return
            try:
                account = self.sender.account(meta.provider, meta.account)
            except ConfigError as exc:
                # A missing key or account is mended by an operator, not by retrying.
                rec = await self.recording.record(
                    lease, [], Settle.HOLD, token=token, reason=str(exc), track=track,
                    handed=handed,
                )  # fmt: skip
                account_pause(lease, rec, str(exc), meta.provider, meta.account)
                return
            codec = self._codec(meta)
            run = ChunkRun(lease, account, recipients, codec, permits=Permits(token), handed=handed)
            self._runs[lease.entry_id] = run  # its lease is kept alive from here on
            try:
                if run.recipients:
                    await self.sender.send_all(run, meta, ready)
            finally:
                self._runs.pop(lease.entry_id, None)
            await self.recording.settle(run)
            self.chunks_done += 1
            await self._admit_next(lease, meta.provider)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left pending on purpose: the lease expires and another attempt takes it.
            log.exception("%s: failed; it will be retried after its lease expires", where)

    async def _admit_next(self, lease: Lease, provider: str) -> None:
        """A settled chunk frees its account's admission (admission.py): admit the next at
        once, instead of when a worker's blocking read next times out, so that the
        account's rate never idles between chunks. A read blocked on the stream wakes."""
        with contextlib.suppress(*REDIS_ERRORS):
            await self.admission.admit(1, (lease.lane,), (provider,))

    def _codec(self, meta: CampaignMeta) -> Codec:
        return account_codec(self.settings, meta.provider, meta.account, meta.kind)


def _nothing() -> None:
    """What hands on a turn never taken."""
