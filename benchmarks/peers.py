"""The send benchmark's peers: what an expert would build with arq and with SAQ instead.

Each peer is a worker process of its library (uvloop, one shared aiohttp session, 8 jobs in
flight, 8 requests in flight per job: 64 at once, like our concurrency 64) that takes jobs
of 100 recipients, builds their requests with our codec and keeps the 100 verdicts as the
job's result in Redis. The driver here enqueues the jobs, waits for every result, checks
every verdict, and times it all: enqueue, send and results, end to end. It also reads the
worker's CPU time from /proc, so the peers compare with us on cost as well as speed.

    python -m benchmarks.peers [--recipients 100000] [--peer arq] [--peer saq]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson
import uvloop
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from dispatcher.providers import CODECS
from dispatcher.providers.base import BuildContext, ChunkRecipient, Codec, SendJob, Verdict

PEERS = ("arq", "saq")
BATCH = 100  # recipients per job
JOBS_IN_FLIGHT = 8  # per worker process: arq max_jobs, SAQ concurrency
ENQUEUES_IN_FLIGHT = 20  # SAQ's own cap on a queue's concurrent operations; arq gets the same
POLL_S = 0.05  # the driver's wait for results
TIME_LIMIT_S = 600.0  # a run gives up after this long
READY_TIMEOUT_S = 60.0
#: stop_peer: SIGTERMs before a SIGKILL, and how long each waits (seconds).
TERM_TRIES = 3
TERM_WAIT_S = 10.0
FUNCTION = "send_batch"
DB = {"arq": 1, "saq": 2}  # our dispatcher's keys ("bench:") live in db 0
QUEUE = {"arq": "peer-arq", "saq": "peer-saq"}
OWN_KEYS = {"arq": ("arq:*", "peer-arq*"), "saq": ("saq:*",)}  # jobs, results, queues
ROOT = Path(__file__).resolve().parents[1]
ENV_REDIS, ENV_MOCK, ENV_PROVIDER = "PEER_REDIS_URL", "PEER_MOCK_URL", "PEER_PROVIDER"
ENV_ACCOUNT, ENV_CONCURRENCY = "PEER_ACCOUNT", "PEER_CONCURRENCY"

A = TypeVar("A")
T = TypeVar("T")
Row = list[Any]  # [recipient index, verdict, status, message id]: what a job returns per recipient


def ready_key(peer: str) -> str:
    return f"peer:{peer}:ready"


def peer_url(redis_url: str, peer: str) -> str:
    """The peer's own database on the same server, so its keys never meet ours."""
    return urlunsplit(urlsplit(redis_url)._replace(path=f"/{DB[peer]}"))


@dataclass
class Sender:
    """What a peer's worker process holds for all its jobs: the codec, the account and one
    session, made in the startup hook and closed in the shutdown hook."""

    provider: str
    codec: Codec
    api_key: str
    options: dict[str, Any]
    base: str
    per_job: int
    session: aiohttp.ClientSession
    serials: Iterator[int]

    @classmethod
    def from_env(cls) -> Sender:
        provider = os.environ[ENV_PROVIDER]
        codec = CODECS[provider]
        options = orjson.loads(os.environ[ENV_ACCOUNT])
        api_key = options.pop("api_key")
        concurrency = int(os.environ[ENV_CONCURRENCY])
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency), headers=codec.headers(api_key)
        )
        return cls(
            provider, codec, api_key, options, f"{os.environ[ENV_MOCK]}/{provider}",
            max(1, concurrency // JOBS_IN_FLIGHT), session, itertools.cycle(range(1, 65536)),
        )  # fmt: skip

    async def send(
        self, provider: str, campaign_id: str, first: int, numbers: Sequence[str], text: str
    ) -> list[Row]:
        """One job: build the requests of its recipients, send them ``per_job`` at a time."""
        if provider != self.provider:
            raise ValueError(f"this worker sends for {self.provider}, not {provider}")
        members = [ChunkRecipient(first + i, number) for i, number in enumerate(numbers)]
        job = SendJob(campaign_id, first // BATCH, text, options=self.options)
        ctx = BuildContext(self.api_key, lambda: next(self.serials), time.time())
        built = self.codec.build(job, members, ctx)
        rows: dict[int, Row] = {}
        for pos, outcome in built.refused.items():
            rows[pos] = [members[pos].index, outcome.verdict.value, outcome.status.value, None]
        pending = iter(built.requests)

        async def sender() -> None:
            for request in pending:
                url = self.base + request.path
                async with self.session.request(request.method, url, data=request.body) as r:
                    outcomes = self.codec.parse(request, r.status, await r.read())
                for pos, o in zip(request.positions, outcomes, strict=True):
                    rows[pos] = [members[pos].index, o.verdict.value, o.status.value, o.message_id]

        await asyncio.gather(*(sender() for _ in range(min(self.per_job, len(built.requests)))))
        return [rows[pos] for pos in range(len(members))]


async def open_sender(redis: Redis, peer: str) -> Sender:
    """The startup hook's work: the session, then the key that tells the driver we're up."""
    sender = Sender.from_env()
    await redis.set(ready_key(peer), os.getpid())
    return sender


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_mb(pid: int, field: str) -> float:
    """``field`` (VmRSS, VmHWM) of /proc/<pid>/status in MB; no psutil needed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} for pid {pid}")


#: The last lines each worker wrote to stderr (pid → lines, drainer), for error messages.
_tails: dict[int, tuple[collections.deque[str], threading.Thread]] = {}


def _drain(stream: IO[str], tail: collections.deque[str]) -> None:
    for line in stream:
        tail.append(line)


def worker_log(proc: subprocess.Popen[str]) -> str:
    """The last lines the peer's worker wrote to stderr."""
    tail, drainer = _tails[proc.pid]
    if proc.poll() is not None:
        drainer.join(5)  # its last lines, up to the pipe's end
    return "".join(tail)


def start_peer(
    peer: str, redis_url: str, mock_url: str, provider: str = "cloudaten", concurrency: int = 64
) -> subprocess.Popen[str]:
    """Start the peer's worker process and return once its startup hook has run."""
    from benchmarks.bench_send import ACCOUNTS  # here: bench_send imports this module

    url = peer_url(redis_url, peer)
    with SyncRedis.from_url(url) as r:
        r.delete(ready_key(peer))
    env = {**os.environ, ENV_REDIS: url, ENV_MOCK: mock_url, ENV_PROVIDER: provider,
           ENV_ACCOUNT: orjson.dumps(ACCOUNTS[provider]).decode(),
           ENV_CONCURRENCY: str(concurrency)}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", f"benchmarks.peer_{peer}"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    tail: collections.deque[str] = collections.deque(maxlen=40)
    drainer = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
    drainer.start()  # also keeps a full pipe from ever blocking the worker
    _tails[proc.pid] = tail, drainer
    deadline = time.monotonic() + READY_TIMEOUT_S
    with SyncRedis.from_url(url) as r:
        while not r.exists(ready_key(peer)):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_peer(proc)
                raise RuntimeError(f"{peer} worker did not start:\n{worker_log(proc)}")
            time.sleep(0.02)  # polling a child we just spawned: no event to wait on
    return proc


def stop_peer(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (both libraries stop cleanly on it), again if it lingers, then SIGKILL.

    arq's SIGTERM handler cancels its main task once; about one time in ten here that
    cancellation is lost in the Redis call it interrupts, and the worker polls on for good.
    A second SIGTERM cancels it again, and it stops cleanly."""
    for _ in range(TERM_TRIES):
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(TERM_WAIT_S)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    proc.wait()


async def _bounded(fn: Callable[[A], Awaitable[T]], items: Iterable[A], limit: int) -> list[T]:
    """``fn`` over the items, at most ``limit`` at a time; the results in the items' order."""
    gate = asyncio.Semaphore(limit)

    async def one(item: A) -> T:
        async with gate:
            return await fn(item)

    return await asyncio.gather(*(one(item) for item in items))


@dataclass
class Timed:
    enqueue_s: float
    total_s: float
    cpu_s: float
    rows: list[Row]


async def _drive_arq(url: str, pid: int, batches: list[dict[str, Any]]) -> Timed:
    from arq.connections import RedisSettings, create_pool
    from arq.jobs import Job, JobStatus

    redis = await create_pool(RedisSettings.from_dsn(url), default_queue_name=QUEUE["arq"])
    try:

        async def enqueue(b: dict[str, Any]) -> Job:
            job = await redis.enqueue_job(FUNCTION, **b)
            assert job is not None  # None: a job with this id exists (ids are uuid4 here)
            return job

        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        jobs = await _bounded(enqueue, batches, ENQUEUES_IN_FLIGHT)
        t1 = time.monotonic()
        rows: list[Row] = []
        for job in jobs:  # in enqueue order, the order the worker takes them
            # Not job.result() alone: in arq 0.25 its two reads are not one transaction, so a
            # job finishing between them reads as lost (ResultNotFound); 0.26 fixed that.
            # status() reads in one MULTI: "complete" means the result is there.
            while (status := await job.status()) is not JobStatus.complete:
                if status is JobStatus.not_found or time.monotonic() > t0 + TIME_LIMIT_S:
                    raise RuntimeError(f"job {job.job_id} {status.value}")
                await asyncio.sleep(POLL_S)
            rows += await job.result()
        t2 = time.monotonic()
        return Timed(t1 - t0, t2 - t0, cpu_seconds(pid) - cpu0, rows)
    finally:
        await redis.aclose()


async def _drive_saq(url: str, pid: int, batches: list[dict[str, Any]]) -> Timed:
    from saq.job import TERMINAL_STATUSES, Job, Status
    from saq.queue import Queue

    from benchmarks.peer_saq import JOB_OPTIONS

    queue = Queue.from_url(url, name=QUEUE["saq"])
    await queue.connect()
    try:

        async def enqueue(b: dict[str, Any]) -> Job:
            job = await queue.enqueue(FUNCTION, **JOB_OPTIONS, **b)
            assert job is not None  # None: a job with this key exists (keys are uuid1 here)
            return job

        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        jobs = await _bounded(enqueue, batches, ENQUEUES_IN_FLIGHT)
        t1 = time.monotonic()
        for job in jobs:  # in enqueue order, the order the worker takes them, as for arq
            await job.refresh()  # one read of the stored job, its result with it
            while job.status not in TERMINAL_STATUSES:
                if time.monotonic() > t0 + TIME_LIMIT_S:
                    raise RuntimeError(f"job {job.key} {job.status.value}")
                await asyncio.sleep(POLL_S)
                await job.refresh()
            if job.status is not Status.COMPLETE:
                raise RuntimeError(f"job {job.key} {job.status.value}: {job.error}")
        t2 = time.monotonic()
        rows = [row for job in jobs for row in job.result]
        return Timed(t1 - t0, t2 - t0, cpu_seconds(pid) - cpu0, rows)
    finally:
        await queue.disconnect()


async def _clear(url: str, peer: str) -> None:
    """Delete the peer's own keys (jobs and results of earlier runs), nothing else."""
    async with Redis.from_url(url) as r:
        for pattern in OWN_KEYS[peer]:
            keys = [key async for key in r.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(keys), 1000):
                await r.unlink(*keys[start : start + 1000])


async def _mock(mock_url: str, method: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, mock_url + path) as resp:
        return orjson.loads(await resp.read())


def run_peer(  # noqa: PLR0917 - positional, as bench_send calls it
    peer: str, proc: subprocess.Popen[str], redis_url: str, mock_url: str, provider: str,
    n: int, first_number: int,
) -> dict[str, Any]:  # fmt: skip
    """Send to ``n`` numbers through the peer; its speed, enqueue time and CPU cost."""
    from benchmarks.bench_send import TEXT

    url = peer_url(redis_url, peer)
    numbers = [f"+{first_number + i}" for i in range(n)]
    batches = [
        {"provider": provider, "campaign_id": f"peer-{peer}", "first": start,
         "numbers": numbers[start : start + BATCH], "text": TEXT}
        for start in range(0, n, BATCH)
    ]  # fmt: skip
    uvloop.run(_clear(url, peer))
    uvloop.run(_mock(mock_url, "POST", "/_mock/reset"))
    drive = _drive_arq if peer == "arq" else _drive_saq
    try:
        timed = uvloop.run(drive(url, proc.pid, batches))
    except Exception as exc:
        raise RuntimeError(f"{peer} run failed: {exc!r}\n{worker_log(proc)}") from exc
    indexes = sorted(row[0] for row in timed.rows)
    bad = [row for row in timed.rows if Verdict(row[1]) is not Verdict.OK]
    if indexes != list(range(n)) or bad:
        raise RuntimeError(f"{peer}: {len(indexes)} results for {n}, not ok: {bad[:3]}")
    stats = uvloop.run(_mock(mock_url, "GET", "/_mock/stats"))["providers"][provider]
    return {
        "rps": round(n / timed.total_s, 1),
        "enqueue_seconds": round(timed.enqueue_s, 3),
        "cpu_us_per_recipient": round(timed.cpu_s * 1e6 / n, 1),
        "jobs": len(batches),
        "seconds": round(timed.total_s, 3),
        "mock_accepted": stats["accepted"],
        "mock_repeated": stats["mobiles_repeated"],
    }


def main() -> int:
    from benchmarks.bench_send import FIRST_NUMBER
    from dispatcher.demo import start_mock, stop
    from dispatcher.embedded import RedisProcess, free_port

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--provider", default="cloudaten")
    p.add_argument("--peer", action="append", choices=PEERS)
    args = p.parse_args()
    n = args.recipients
    with tempfile.TemporaryDirectory(prefix="dispatcher-peers-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis", free_port())
        redis.start()
        mock, mock_url = start_mock([])
        try:
            for peer in args.peer or PEERS:
                started = time.monotonic()
                proc = start_peer(peer, redis.url, mock_url, args.provider, args.concurrency)
                try:
                    r = run_peer(peer, proc, redis.url, mock_url, args.provider, n,
                                 FIRST_NUMBER[args.provider])  # fmt: skip
                finally:
                    stop_peer(proc)
                print(
                    f"{peer}: {r['rps']:,.0f} recipients/s, {r['cpu_us_per_recipient']} µs CPU"
                    f"/recipient, enqueue {r['enqueue_seconds']} s, {r['jobs']} jobs, accepted"
                    f" {r['mock_accepted']}, repeated {r['mock_repeated']}"
                    f" ({time.monotonic() - started:.1f} s with the worker's start)",
                    flush=True,
                )
        finally:
            stop(mock)
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
