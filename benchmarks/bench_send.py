"""Dispatcher throughput against the bare-client ceiling and against arq and SAQ, per
provider, side by side in one run.

For each provider (Cloud Aten, YCloud, CloudSMS, Smsclouds, and Smsclouds over SMPP), in
``--rounds`` interleaved rounds (medians reported):

1. ceiling: a bare aiohttp client (uvloop, no queue, no Redis; the session settings our
   transport had when it was aiohttp) sends the very requests our codec builds for N
   recipients to the mock, with the same concurrency; for SMPP, a bare SMPP client
   (smpp_client.py) sends the codec's ``submit_sm`` PDUs to the mock SMSC with the same
   window. This is the issue's reference ("× bare"). Beside it, for HTTP, the same bare
   client on our own lean HTTP/1.1 pool (http1.py, what the worker now sends with): the
   ceiling of our transport, so that ``× lean`` is the cost of the queue alone;
2. dispatcher: N recipients are enqueued and one worker process sends them to the same mock;
   end to end, from the enqueue's start to the last result recorded (and send only, from
   the enqueue's commit: ``send_ratio``);
3. peers (Cloud Aten): the same N sent through arq and through SAQ as an expert would
   (peers.py: jobs of 100, 8 in flight, one session, uvloop), end to end as well.

The order of the systems moves on by one each round, and each starts once the worker is
idle (``wait_quiet``: an SMPP campaign leaves receipts to store after it is sent). Each
uses one process against the same mock process, so each ratio measures the cost of the
queue, the rate limiter and the result recording, not the machine. CPU per recipient is
the sending process's (the bare client's, a fresh process each time, including building
its requests; the worker's and the peers' workers', from /proc). Prints the figures and
ratios, writes them as JSON under benchmarks/results/ and draws
benchmarks/results/bench.png (plot.py).

    python -m benchmarks.bench_send [--recipients 100000] [--rounds 3] [--provider …]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from yarl import URL

from benchmarks import peers
from benchmarks.report import save
from benchmarks.send_report import medians, print_table
from benchmarks.smpp_client import ceiling as smpp_ceiling
from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import start_mock, stop
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.http1 import Http1Pool
from dispatcher.model import Campaign
from dispatcher.providers import CODECS
from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob, Verdict
from dispatcher.runtime import connect

TEXT = "Benchmark message from dispatcher."
TIME_LIMIT_S = 600.0  # each phase gives up after this long
QUIET_WINDOW_S = 0.5  # wait_quiet's sample
QUIET_LIMIT_S = 120.0  # and the longest it waits
FIRST_NUMBER = {
    "cloudaten": 447911000000,
    "ycloud": 447911000000,
    "cloudsms": 85261000000,
    "smsclouds": 524498000000,
    "smpp": 525512000000,
}
#: The Smsclouds account that sends over SMPP to the mock's SMSC (``smpp`` in the table).
SMPP_ACCOUNT = {"system_id": "smsclouds", "api_key": "smpppass", "sender_id": "MASMSJ"}
SMPP_WINDOW = 10
PEER_PROVIDER = "cloudaten"  # the provider the peers send to (the comparison)
ACCOUNTS: dict[str, dict[str, Any]] = {
    "cloudaten": {"api_key": "mock-cloudaten-key"},
    "ycloud": {"api_key": "mock-ycloud-key"},
    "cloudsms": {"api_key": "mock-cloudsms-auth-key", "route_id": "VerifyCode_516"},
    "smsclouds": {"api_key": "mock-smsclouds-token", "route": 77, "country": 1},
}


def numbers(provider: str, n: int) -> list[str]:
    first = FIRST_NUMBER[provider]
    return [f"+{first + i}" for i in range(n)]


def toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def write_config(path: Path, mock_url: str, concurrency: int, smpp_port: int) -> None:
    lines = ['prefix = "bench:"', "[worker]", "chunks_in_flight = 8"]
    for name, account in ACCOUNTS.items():
        lines += [
            f"[providers.{name}]",
            f'base_url = "{mock_url}/{name}"',
            "rate_per_second = 1000000",
            f"concurrency = {concurrency}",
            f"[providers.{name}.accounts.default]",
            *(f"{k} = {toml_value(v)}" for k, v in account.items()),
        ]
    lines += [
        "[providers.smsclouds.accounts.smpp]",
        'transport = "smpp"',
        'smpp_host = "127.0.0.1"',
        f"smpp_port = {smpp_port}",
        f"window = {SMPP_WINDOW}",
        *(f"{k} = {toml_value(v)}" for k, v in SMPP_ACCOUNT.items()),
    ]
    path.write_text("\n".join(lines) + "\n")


async def ceiling(
    mock_url: str, provider: str, n: int, concurrency: int, *, lean: bool = False
) -> float:
    """Recipients per second of a bare client sending what the codec builds: aiohttp, or
    with ``lean`` our own HTTP/1.1 pool (http1.py)."""
    codec = CODECS[provider]
    account = ACCOUNTS[provider]
    options = {k: v for k, v in account.items() if k != "api_key"}
    serials = itertools.cycle(range(1, 65536))
    ctx = BuildContext(account["api_key"], lambda: next(serials), time.time())
    size = codec.max_chunk or n
    requests = []
    for start in range(0, n, size):
        members = [
            ChunkRecipient(start + i, number)
            for i, number in enumerate(numbers(provider, n)[start : start + size])
        ]
        job = SendJob("bare", start // size, TEXT, options=options)
        requests += codec.build(job, members, ctx).requests
    base = f"{mock_url}/{provider}"
    pending = iter(requests)
    deadline = time.monotonic() + TIME_LIMIT_S

    async def sender(session: aiohttp.ClientSession) -> None:
        for request in pending:
            if time.monotonic() > deadline:
                return
            async with session.request(request.method, base + request.path, data=request.body) as r:
                outcomes = codec.parse(request, r.status, await r.read())
                assert all(o.verdict is Verdict.OK for o in outcomes), outcomes[0]

    headers = codec.headers(account["api_key"])
    if lean:
        return await lean_ceiling(base, requests, codec, headers, conc=concurrency, n=n)
    connector = aiohttp.TCPConnector(limit=concurrency)
    jar = aiohttp.DummyCookieJar()  # as our transport's aiohttp session had
    session = aiohttp.ClientSession(connector=connector, headers=headers, cookie_jar=jar)
    async with session:
        started = time.monotonic()
        await asyncio.gather(*(sender(session) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return n / elapsed


async def lean_ceiling(
    base: str, requests: list[Any], codec: Any, headers: dict[str, str], *, conc: int, n: int
) -> float:
    """:func:`ceiling` on our HTTP/1.1 pool: what the transport costs without the queue."""
    url = URL(base)
    assert url.host is not None and url.port is not None
    pool = Http1Pool(url.host, url.port, tls=None, limit=conc, headers=headers)
    pending = iter(requests)
    deadline = time.monotonic() + TIME_LIMIT_S

    async def sender() -> None:
        for request in pending:
            if time.monotonic() > deadline:
                return
            status, body = await pool.request(
                request.method, url.raw_path + request.path, request.body, connect_timeout=5
            )
            outcomes = codec.parse(request, status, body)
            assert all(o.verdict is Verdict.OK for o in outcomes), outcomes[0]

    started = time.monotonic()
    try:
        await asyncio.gather(*(sender() for _ in range(conc)))
    finally:
        pool.close()
    return n / (time.monotonic() - started)


async def mock_call(mock_url: str, method: str, path: str) -> Any:
    async with aiohttp.ClientSession() as s, s.request(method, mock_url + path) as resp:
        return orjson.loads(await resp.read())


async def through_dispatcher(
    redis_url: str, config: Path, provider: str, n: int, worker_pid: int
) -> dict[str, float]:
    """Enqueue N recipients and wait for every result: the enqueue's seconds, the whole
    run's (enqueue to last result) and the worker's CPU seconds meanwhile."""
    client = Client(settings=load_settings(config), redis=connect(redis_url))
    if provider == "smpp":
        campaign = Campaign("smsclouds", TEXT, numbers(provider, n), account="smpp")
    else:
        campaign = Campaign(provider, TEXT, numbers(provider, n))
    try:
        cpu0, t0 = peers.cpu_seconds(worker_pid), time.monotonic()
        answer = await client.enqueue(campaign)
        t1 = time.monotonic()
        st = await client.wait(answer.id, TIME_LIMIT_S)
        t2, cpu = time.monotonic(), peers.cpu_seconds(worker_pid) - cpu0
        if not st.sent or st.counts.get("accepted") != n:
            raise SystemExit(f"{provider}: dispatcher run incomplete: {st.as_dict()}")
        return {"enqueue_s": t1 - t0, "total_s": t2 - t0, "send_s": t2 - t1, "cpu_s": cpu}
    finally:
        await client.redis.aclose()


def start_worker(env: dict[str, str]) -> subprocess.Popen[str]:
    """Start a worker and wait for its 'ready' log line, so start-up is not measured."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispatcher", "worker"], env=env, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        sys.stderr.write(line)
        if " ready" in line:
            # Keep draining its log so a full pipe never blocks the worker.
            threading.Thread(target=_copy, args=(proc.stderr,), daemon=True).start()
            return proc
    raise SystemExit("worker did not start")


def _copy(stream: Any) -> None:
    for line in stream:
        sys.stderr.write(line)


def bare_client(
    provider: str, n: int, conc: int, mock_url: str, smpp_port: int, *, lean: bool = False
) -> tuple[float, float]:
    """(recipients per second, CPU seconds, requests built included), from a fresh process:
    this one has run rounds before, and its heap (a bigger one for the collector to walk at
    each pass) once made the bare client slower every round."""
    args = [provider, str(n), str(conc), mock_url, str(smpp_port), "lean" if lean else "aiohttp"]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_send", "--bare", *args],
        check=True, stdout=subprocess.PIPE, text=True, timeout=TIME_LIMIT_S,
    )  # fmt: skip
    got = orjson.loads(out.stdout.strip().splitlines()[-1])
    return float(got["rps"]), float(got["cpu_s"])


def bare_here(
    provider: str, n: int, conc: int, mock_url: str, smpp_port: int, *, lean: bool
) -> None:
    """The bare client's run in this process (``--bare``): its figures as one JSON line."""
    cpu0 = time.process_time()
    if provider != "smpp":
        rps = uvloop.run(ceiling(mock_url, provider, n, conc, lean=lean))
    else:
        rps = uvloop.run(
            smpp_ceiling(
                "127.0.0.1", smpp_port, SMPP_ACCOUNT["system_id"], SMPP_ACCOUNT["api_key"],
                numbers(provider, n), text=TEXT, window=SMPP_WINDOW,
                sender_id=SMPP_ACCOUNT["sender_id"],
            )
        )  # fmt: skip
    print(orjson.dumps({"rps": rps, "cpu_s": time.process_time() - cpu0}).decode())


def mock_stats(mock_url: str, provider: str) -> dict[str, int]:
    """accepted, mobiles_repeated and largest_batch, from the provider's or the SMSC's."""
    stats = uvloop.run(mock_call(mock_url, "GET", "/_mock/stats"))
    if provider != "smpp":
        got: dict[str, int] = stats["providers"][provider]
        return got
    smsc = stats["smsc"]
    return {"accepted": smsc["messages"], "mobiles_repeated": smsc["duplicates"],
            "largest_batch": 1}  # fmt: skip


@dataclass
class Run:
    """What one run of the benchmark needs: the servers, the worker and the peers' workers."""

    n: int
    conc: int
    mock_url: str
    redis_url: str
    config: Path
    smpp_port: int
    worker_pid: int
    peer_procs: dict[str, subprocess.Popen[str]]


def run_bare(run: Run, provider: str, out: dict[str, Any]) -> None:
    print(f"{provider}: bare client …", flush=True)
    bare, bare_cpu = bare_client(provider, run.n, run.conc, run.mock_url, run.smpp_port)
    out["bare_client_rps"], out["bare_cpu_us"] = bare, bare_cpu * 1e6 / run.n


def run_bare_lean(run: Run, provider: str, out: dict[str, Any]) -> None:
    print(f"{provider}: bare client on our HTTP/1.1 pool …", flush=True)
    bare, bare_cpu = bare_client(provider, run.n, run.conc, run.mock_url, run.smpp_port, lean=True)
    out["bare_lean_rps"], out["bare_lean_cpu_us"] = bare, bare_cpu * 1e6 / run.n


def run_dispatcher(run: Run, provider: str, out: dict[str, Any]) -> None:
    n = run.n
    print(f"{provider}: dispatcher …", flush=True)
    got = uvloop.run(through_dispatcher(run.redis_url, run.config, provider, n, run.worker_pid))
    # What the worker still does once every result is in (SMPP: the receipts), and its RSS.
    cpu = peers.cpu_seconds(run.worker_pid)
    wait_quiet(run.worker_pid)
    after = peers.cpu_seconds(run.worker_pid) - cpu
    stats = mock_stats(run.mock_url, provider)
    out.update({
        "dispatcher_rps": n / got["total_s"],
        "dispatcher_send_rps": n / got["send_s"],
        "dispatcher_cpu_us": got["cpu_s"] * 1e6 / n,
        "dispatcher_after_cpu_us": after * 1e6 / n,
        "worker_rss_mb": peers.proc_status_mb(run.worker_pid, "VmRSS"),
        "enqueue_seconds": got["enqueue_s"],
        "mock_accepted": stats["accepted"],
        "mock_repeated": stats["mobiles_repeated"],
        "largest_batch": stats["largest_batch"],
    })  # fmt: skip


def run_peer(run: Run, provider: str, peer: str, out: dict[str, Any]) -> None:
    n = run.n
    print(f"{provider}: {peer} …", flush=True)
    try:
        r = peers.run_peer(peer, run.peer_procs[peer], run.redis_url, run.mock_url, provider,
                           n, FIRST_NUMBER[provider])  # fmt: skip
    except RuntimeError as exc:
        # A peer's own failure (SAQ's sweeper aborts a job it races with: tobymao/saq
        # #124) is a figure of the run, not the end of it: counted, and the peer's worker
        # started afresh for the next round.
        print(f"{provider}: {peer} failed: {str(exc).splitlines()[0]}", flush=True)
        out["peers"][peer] = {"failed": str(exc).splitlines()[0]}
        peers.stop_peer(run.peer_procs[peer])
        run.peer_procs[peer] = peers.start_peer(peer, run.redis_url, run.mock_url, provider,
                                                run.conc)  # fmt: skip
        return
    if r["mock_accepted"] != n or r["mock_repeated"]:
        raise SystemExit(f"{peer}: the mock accepted {r['mock_accepted']} of {n}")
    out["peers"][peer] = {"rps": r["rps"], "cpu_us": r["cpu_us_per_recipient"],
                          "enqueue_seconds": r["enqueue_seconds"]}  # fmt: skip


def one_round(run: Run, provider: str, turn: int) -> dict[str, Any]:
    """The bare client, the dispatcher and (Cloud Aten) each peer, each on a reset mock, in
    an order that moves on by one each round: what runs first in a round should not be
    the same system every time on a machine whose speed drifts."""
    out: dict[str, Any] = {"peers": {}}
    steps: list[Callable[[], None]] = [
        lambda: run_bare(run, provider, out),
        *([partial(run_bare_lean, run, provider, out)] if provider != "smpp" else []),
        lambda: run_dispatcher(run, provider, out),
        *(partial(run_peer, run, provider, peer, out) for peer in list(run.peer_procs)),
    ]
    if turn == 0 and provider in ("cloudaten", "ycloud"):
        # The mock checks a number once and keeps the verdict (mock/onemobile.py): a pass
        # nobody measures, so that no system meets it cold and the rest warm.
        print(f"{provider}: warming the mock …", flush=True)
        bare_client(provider, run.n, run.conc, run.mock_url, run.smpp_port, lean=True)
        uvloop.run(mock_call(run.mock_url, "POST", "/_mock/reset"))
    turn %= len(steps)
    for step in steps[turn:] + steps[:turn]:
        step()
        uvloop.run(mock_call(run.mock_url, "POST", "/_mock/reset"))
        wait_quiet(run.worker_pid)
    return out


def wait_quiet(pid: int, limit_s: float = QUIET_LIMIT_S) -> float:
    """Wait until the worker is idle (under a tenth of a core over half a second), at most
    ``limit_s``; the seconds waited. Work a run leaves behind must not be billed to the
    next one: an SMPP campaign is "sent" while the worker still stores tens of seconds of
    delivery receipts, and Cloud Aten's next round used to pay for them."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        before = peers.cpu_seconds(pid)
        time.sleep(QUIET_WINDOW_S)
        if peers.cpu_seconds(pid) - before < QUIET_WINDOW_S / 10:
            break
    return time.monotonic() - start


def main() -> int:
    if sys.argv[1:2] == ["--bare"]:  # bare_client's own process
        name, count, width, url, port, client = sys.argv[2:8]
        bare_here(name, int(count), int(width), url, int(port), lean=client == "lean")
        return 0
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--recipients", type=int, default=100_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--provider", action="append", choices=sorted(FIRST_NUMBER))
    p.add_argument("--no-peers", action="store_true", help="skip arq and SAQ")
    args = p.parse_args()
    n, conc = args.recipients, args.concurrency
    providers = args.provider or list(FIRST_NUMBER)
    rounds: dict[str, list[dict[str, Any]]] = {provider: [] for provider in providers}
    with tempfile.TemporaryDirectory(prefix="dispatcher-bench-") as tmp:
        redis = RedisProcess(Path(tmp) / "redis", free_port())
        redis.start()
        smpp = ["--smpp-port", "0", "--smpp-account",
                f"{SMPP_ACCOUNT['system_id']}:{SMPP_ACCOUNT['api_key']}"]  # fmt: skip
        mock, mock_url = start_mock(smpp)
        worker: subprocess.Popen[str] | None = None
        peer_procs: dict[str, subprocess.Popen[str]] = {}
        try:
            assert mock.stdout is not None
            smpp_port = int(mock.stdout.readline().strip().rsplit(":", 1)[1])
            config = Path(tmp) / "bench.toml"
            write_config(config, mock_url, conc, smpp_port)
            env = {**os.environ, "REDIS_URL": redis.url, "DISPATCHER_CONFIG": str(config)}
            worker = start_worker(env)
            run = Run(n, conc, mock_url, redis.url, config, smpp_port, worker.pid, {})
            for round_ in range(args.rounds):
                for provider in providers:
                    run.peer_procs = {}
                    if provider == PEER_PROVIDER and not args.no_peers:
                        for peer in peers.PEERS:
                            if peer not in peer_procs:
                                peer_procs[peer] = peers.start_peer(
                                    peer, redis.url, mock_url, provider, conc
                                )
                        run.peer_procs = peer_procs
                    print(f"round {round_ + 1} of {args.rounds}", flush=True)
                    rounds[provider].append(one_round(run, provider, round_))
        finally:
            for proc in peer_procs.values():
                peers.stop_peer(proc)
            if worker is not None:
                stop(worker)
            stop(mock)
            redis.stop()
    report = {provider: medians(r) for provider, r in rounds.items()}
    print_table(n, conc, args.rounds, report)
    ok = all(r["mock_accepted"] == n and r["mock_repeated"] == 0 for r in report.values())
    summary = {
        "benchmark": "send",
        "recipients": n,
        "concurrency": conc,
        "rounds": args.rounds,
        "providers": report,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"written to {save('send', summary)}")
    try:
        from benchmarks.plot import plot
        from benchmarks.report import RESULTS

        print(f"drawn {plot(RESULTS, RESULTS / 'bench.png')}")
    except ImportError:  # matplotlib comes with the bench extra
        print("no picture: pip install -e '.[bench]' for matplotlib")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
