"""Chaos acceptance for unknown fate: killed workers, and recovery beside fresh work.

**kills** — per provider, 50,000 recipients, three worker processes, the mock with the
seeds' limit of one list call a minute (``poll_interval_seconds`` at its default 65 s) and
a webhooks process for CloudSMS reports. First a kill-free run; then the same campaign
while a random worker is SIGKILLed every 2–5 s and replaced, at least 15 times.
Smsclouds holds what it cannot know: the harness, as an operator would, resumes it. Bounds:
nothing lost anywhere; Cloud Aten and YCloud no duplicate, every recipient recorded within
2× the kill-free time plus one poll interval; CloudSMS and Smsclouds no more duplicates
than the recipients parked at the takeovers (what the killed workers were authorised to
send: their requests in flight).

**recovery** — Cloud Aten at 200/s, two workers: a campaign B alone gives its kill-free
rate; then campaign A has a worker killed mid-chunk, and while what it may have sent waits
for the list API, B and a one-recipient OTP on the default lane are enqueued. Bounds: B
keeps ≥ 0.8 of its kill-free rate, the OTP reaches the mock within 2 s.

Prints the figures, writes them to benchmarks/results/chaos-<time>.json, exits 1 if a
bound is missed.

    python -m benchmarks.chaos [--part kills|recovery|all] [--provider P …]
                               [--recipients 50000] [--kills 15]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.report import save
from benchmarks.rig import SECRET, Rig
from dispatcher.client import Client
from dispatcher.model import Campaign, CampaignStatus
from dispatcher.store import as_str

POLL_INTERVAL_S = 65.0  # the default poll_interval_seconds
LIMIT_S = 900.0  # no phase waits longer than this (a kill-free run takes ~190 s)
FIRST = {"cloudaten": 447911000000, "ycloud": 447911000000, "cloudsms": 85261000000,
         "smsclouds": 524498000000}  # fmt: skip
#: Per provider: rates that keep a 50,000-recipient campaign running long enough for 15
#: kills 2–5 s apart (about a minute or more), and chunk sizes of realistic weight.
SETTINGS: dict[str, dict[str, Any]] = {
    "cloudaten": {"rate_per_second": 300, "chunk_size": 100},
    "ycloud": {"rate_per_second": 300, "chunk_size": 100},
    # 3.5 packets of 200 a second; parked packets no report settles go again after 30 s.
    "cloudsms": {"rate_per_second": 3.5, "chunk_size": 1000, "unknown_wait_seconds": 30},
    "smsclouds": {"rate_per_second": 0.35, "chunk_size": 2000, "concurrency": 4},
}
#: How long the mock takes to answer: a 200-number CloudSMS packet or a 2,000-recipient
#: Smsclouds campaign takes a while, so a kill often finds one on its way.
LATENCY_MS = {"cloudaten": 2, "ycloud": 2, "cloudsms": 300, "smsclouds": 2000}
PARKED = re.compile(r"(\d+) recipient\(s\) it may have sent are parked")


def parked_at_takeovers(rig: Rig) -> int:
    """What killed workers were authorised to send and had not recorded, as their
    successors logged it (printed beside the count the scripts keep, ``parked_ever``)."""
    return sum(int(m) for log in rig.logs for m in PARKED.findall(log.read_text()))


async def until_sent(client: Client, cid: str, started: float) -> CampaignStatus:
    """Wait until every recipient has a result, resuming a held campaign as an operator
    who accepts that some may get it twice."""
    while True:
        left = LIMIT_S - (time.monotonic() - started)
        st = await client.wait(cid, max(1.0, left))
        if st.sent or left <= 0:
            return st
        if st.state == "paused":
            await client.resume(cid)


async def kills_run(provider: str, n: int, kills: int, chaos: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dispatcher-chaos-") as tmp:
        rig = Rig(Path(tmp), {provider: SETTINGS[provider]}, LATENCY_MS[provider])
        try:
            reports = f"{rig.hooks_url}/hooks/{SECRET}/cloudsms/dlr"
            await rig.call("POST", "/_mock/settings", {"cloudsms_callback_url": reports})
            client = rig.client()
            numbers = [f"+{FIRST[provider] + i}" for i in range(n)]
            started = time.monotonic()
            cid = (await client.enqueue(Campaign(provider, "chaos", numbers))).id
            for _ in range(3):
                rig.worker()
            rng = random.Random(f"chaos-{provider}")
            done = 0
            while chaos and done < kills:
                await asyncio.sleep(rng.uniform(2, 5))
                st = await client.status(cid)
                if st.sent:
                    break
                if st.state == "paused":
                    await client.resume(cid)
                alive = [w for w in rig.workers if w.poll() is None]
                victim = rng.choice(alive)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                done += 1
                rig.worker()
            st = await until_sent(client, cid, started)
            elapsed = time.monotonic() - started
            pending = [r.index async for r in client.results(cid) if r.status == "pending"]
            # Every park, counted by the scripts that parked (a successor killed before its
            # log line still counted it there).
            parked = int((await client.store.meta(cid)).get("parked_ever") or 0)
            stats = (await rig.call("GET", "/_mock/stats"))["providers"][provider]
            await client.redis.aclose()
            repeated = stats["uids_repeated" if provider in ("cloudaten", "ycloud")
                             else "mobiles_repeated"]  # fmt: skip
            return {
                "seconds": round(elapsed, 1),
                "kills": done,
                "recorded": st.recorded,
                "accepted_by_mock": stats["accepted"],
                "duplicates": repeated,
                "lost": len(pending),
                "parked_at_takeovers": parked,
                "parked_in_logs": parked_at_takeovers(rig),
                "list_calls": stats["list_calls"],
                "sent": st.sent,
            }
        finally:
            rig.close()


def judge_kills(
    provider: str, free: dict[str, Any], chaos: dict[str, Any], kills: int
) -> list[str]:
    bad = []
    if chaos["kills"] < kills:
        bad.append(f"only {chaos['kills']} kills before the campaign ended")
    if chaos["lost"] or not chaos["sent"]:
        bad.append(f"{chaos['lost']} recipient(s) without a result")
    if provider in ("cloudaten", "ycloud"):
        bound = 2 * free["seconds"] + POLL_INTERVAL_S
        chaos["bound_seconds"] = round(bound, 1)
        if chaos["duplicates"]:
            bad.append(f"{chaos['duplicates']} duplicate(s)")
        if chaos["seconds"] > bound:
            bad.append(f"took {chaos['seconds']} s, more than {bound:.0f} s")
    elif chaos["duplicates"] > chaos["parked_at_takeovers"]:
        bad.append(f"{chaos['duplicates']} duplicates > {chaos['parked_at_takeovers']} in flight")
    return bad


class Stuck(Exception):
    """A phase of the recovery run did not happen within LIMIT_S: report, never hang."""


async def until(what: str, deadline: float, check: Any) -> Any:
    """Poll ``check`` (an async callable) until it returns something truthy."""
    while not (got := await check()):
        if time.monotonic() > deadline:
            raise Stuck(what)
        await asyncio.sleep(0.05)
    return got


async def kill_mid_send(rig: Rig, client: Client, cid: str, victim: Any, deadline: float) -> None:
    """SIGKILL ``victim`` at a moment it is authorised to send recipients of ``cid`` it has
    not recorded yet (its owner token on an entry with flight marks), so that its successor
    has something to park."""
    keys = client.store.keys
    mark = f"-{victim.pid}-"

    async def busy() -> bool:
        flight = await client.redis.hkeys(keys.flight(cid))
        owners = await client.redis.hmget(keys.owner(cid), flight) if flight else []
        return any(o is not None and mark in as_str(o) for o in owners)

    await until("the victim to hold a chunk in flight", deadline, busy)
    victim.send_signal(signal.SIGKILL)
    victim.wait()


async def recovery(n: int = 3000, tries: int = 5) -> dict[str, Any]:
    """B's rate alone and beside A's recovery; the OTP's latency then. A kill that leaves
    nothing parked (the victim recorded all it sent before dying) is tried again with a new
    A, at most ``tries`` times."""
    settings = {"cloudaten": {"rate_per_second": 200, "chunk_size": 100}}
    with tempfile.TemporaryDirectory(prefix="dispatcher-recovery-") as tmp:
        rig = Rig(Path(tmp), settings)
        try:
            client = rig.client()
            numbers = [f"+{FIRST['cloudaten'] + i}" for i in range(n)]
            deadline = time.monotonic() + LIMIT_S

            async def rate_of(cid: str) -> float:
                times = sorted(m["timestamp"] for m in await rig.call("GET", "/_mock/messages")
                               if m["uid"].startswith(cid))  # fmt: skip
                return float((len(times) - 1) * 1000 / (times[-1] - times[0]))

            alone = (await client.enqueue(Campaign("cloudaten", "B alone", numbers))).id
            rig.worker()
            victim = rig.worker()
            if not (await client.wait(alone, LIMIT_S)).sent:
                raise Stuck("B alone to be sent")
            rate_alone = await rate_of(alone)
            for attempt in range(tries):
                a = (await client.enqueue(Campaign("cloudaten", f"A{attempt}", numbers))).id
                await kill_mid_send(rig, client, a, victim, deadline)
                victim = rig.worker()

                async def recovering(a: str = a) -> CampaignStatus | None:
                    # Taken over and the rest of A sent: what remains waits for the list
                    # API. Or A is all sent and nothing was parked: try again.
                    st = await client.status(a)
                    parked = sum(st.parked.values())
                    return st if (parked and st.pending <= parked) or st.sent else None

                st = await until("A's takeover", deadline, recovering)
                if st.parked:
                    break
            else:
                raise Stuck(f"a kill that leaves something parked, in {tries} tries")
            a_parked_before = sum(st.parked.values())
            asked = time.time()
            otp = (await client.enqueue(Campaign("cloudaten", "code 1234", numbers[:1]))).id
            b = (await client.enqueue(Campaign("cloudaten", "B beside", numbers))).id
            if not (await client.wait(otp, 60)).sent:
                raise Stuck("the OTP to be sent")
            otp_ms = next(m["timestamp"] for m in await rig.call("GET", "/_mock/messages")
                          if m["uid"].startswith(otp)) - asked * 1000  # fmt: skip
            if not (await client.wait(b, LIMIT_S)).sent:
                raise Stuck("B beside A's recovery to be sent")
            a_parked_then = sum((await client.status(a)).parked.values())
            rate_beside = await rate_of(b)
            await client.redis.aclose()
            return {
                "b_rate_alone": round(rate_alone, 1),
                "b_rate_beside_recovery": round(rate_beside, 1),
                "ratio": round(rate_beside / rate_alone, 3),
                "otp_latency_s": round(otp_ms / 1000, 3),
                "kills_until_parked": attempt + 1,
                "a_parked_when_b_started": a_parked_before,
                "a_still_parked_when_b_done": a_parked_then,
            }
        finally:
            rig.close()


async def main(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {"recipients": args.recipients, "kills": args.kills}
    failures: list[str] = []
    if args.part in ("kills", "all"):
        for provider in args.provider:
            free = await kills_run(provider, args.recipients, args.kills, chaos=False)
            chaos = await kills_run(provider, args.recipients, args.kills, chaos=True)
            bad = judge_kills(provider, free, chaos, args.kills)
            report[provider] = {"kill_free": free, "chaos": chaos, "failures": bad}
            failures += [f"{provider}: {b}" for b in bad]
            print(f"{provider:<10} kill-free {free['seconds']:>6} s | chaos {chaos['seconds']:>6} s"
                  f" (bound {chaos.get('bound_seconds', '-')}) {chaos['kills']} kills, "
                  f"duplicates {chaos['duplicates']}, parked at takeovers "
                  f"{chaos['parked_at_takeovers']} ({chaos['parked_in_logs']} in logs), "
                  f"lost {chaos['lost']}, list calls "
                  f"{chaos['list_calls']} {'OK' if not bad else 'FAILED: ' + '; '.join(bad)}",
                  flush=True)  # fmt: skip
    if args.part in ("recovery", "all"):
        try:
            rec = await recovery()
        except Stuck as e:
            failures.append(f"recovery: waited {LIMIT_S:.0f} s for {e}")
            rec = {}
        report["recovery"] = rec
        if rec:
            if rec["ratio"] < 0.8:
                failures.append(f"recovery: B kept only {rec['ratio']} of its rate")
            if rec["otp_latency_s"] > 2.0:
                failures.append(f"recovery: the OTP took {rec['otp_latency_s']} s")
            print(f"recovery: B {rec['b_rate_alone']}/s alone, {rec['b_rate_beside_recovery']}/s "
                  f"beside A's recovery ({rec['ratio']}); OTP reached the mock in "
                  f"{rec['otp_latency_s']} s; A parked: {rec['a_parked_when_b_started']} when B "
                  f"started, {rec['a_still_parked_when_b_done']} when it ended",
                  flush=True)  # fmt: skip
    print(f"written {save('chaos', {**report, 'failures': failures})}")
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--part", choices=("kills", "recovery", "all"), default="all")
    p.add_argument("--provider", action="append", choices=sorted(SETTINGS))
    p.add_argument("--recipients", type=int, default=50_000)
    p.add_argument("--kills", type=int, default=15)
    args = p.parse_args()
    args.provider = args.provider or list(SETTINGS)
    return args


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse())))
