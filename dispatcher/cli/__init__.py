"""``python -m dispatcher …``: argument parsing and output only; the work lives elsewhere."""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import orjson

from dispatcher.account_api import QueryError, balance, query
from dispatcher.client import CampaignNotFound, Client, NothingToSend
from dispatcher.config import ConfigError, Settings, load_settings, with_overrides
from dispatcher.embedded import EmbeddedRedisError
from dispatcher.estimate import estimate
from dispatcher.model import ROW_FIELDS, Campaign, CampaignError, CampaignStatus
from dispatcher.providers import CODECS
from dispatcher.recipients_file import read_recipients
from dispatcher.runtime import connect, redis_url, run, setup_logging


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dispatcher", description=__doc__)
    p.add_argument("--config", help="settings file (default: $DISPATCHER_CONFIG or config/)")
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command", required=True)

    from dispatcher.supervisor import RESTART_RULE

    w = sub.add_parser(
        "worker",
        help="send queued campaigns",
        description=(
            "Send queued campaigns. SIGTERM, SIGINT and SIGHUP all drain: nothing new is "
            f"read, what is in flight finishes, and the worker exits 0. {RESTART_RULE}"
        ),
    )
    w.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    w.add_argument(
        "--concurrency", type=int, help="HTTP requests in flight per account and process"
    )
    w.add_argument("--chunks", type=int, help="chunks one process works on at once")
    w.add_argument("--lease-seconds", type=float, help="idle time before a chunk is taken over")
    w.add_argument(
        "--drain-timeout", type=float, help="SIGTERM/SIGINT/SIGHUP: seconds to finish in-flight"
    )
    w.add_argument("--provider", action="append", help="only these providers (repeatable)")
    w.add_argument("--no-poll", action="store_true", help="do not poll list APIs here")

    e = sub.add_parser("enqueue", help="enqueue a campaign; prints its id")
    _campaign_arguments(e)
    e.add_argument("--idempotency-key")
    e.add_argument(
        "--check-balance", action="store_true", help="refuse it if it costs more than the balance"
    )
    e.add_argument("--allow-empty", action="store_true", help="enqueue with no valid recipient")

    est = sub.add_parser("estimate", help="recipients, segments and cost, before sending")
    _campaign_arguments(est)
    est.add_argument("--balance", action="store_true", help="compare the cost with the balance")

    q = sub.add_parser("provider", help="account queries, e.g. 'provider smsclouds routes'")
    q.add_argument("provider_name")
    q.add_argument(
        "query", help="routes, countries, user (Smsclouds); balance (Cloud Aten, YCloud)"
    )
    q.add_argument("--account", default="default")

    s = sub.add_parser("status", help="a campaign's progress")
    s.add_argument("campaign_id")
    s.add_argument("--json", action="store_true")
    s.add_argument("--watch", action="store_true", help="live progress bar until done")

    r = sub.add_parser("results", help="every recipient's result")
    r.add_argument("campaign_id")
    r.add_argument("--csv", action="store_true", help="CSV instead of JSON lines")
    r.add_argument("--output", "-o", help="write to this file instead of stdout")

    rs = sub.add_parser("resume", help="resume a paused campaign")
    rs.add_argument("campaign_id")
    pa = sub.add_parser("pause", help="send nothing more until resumed")
    pa.add_argument("campaign_id")
    ca = sub.add_parser("cancel", help="send nothing more; the rest becomes cancelled")
    ca.add_argument("campaign_id")
    rt = sub.add_parser("retry", help="send again what failed after every attempt")
    rt.add_argument("campaign_id")

    h = sub.add_parser("webhooks", help="receive delivery reports and inbound messages")
    h.add_argument("--host", help="address to bind (default: webhooks.host)")
    h.add_argument("--port", type=int, help="port (default: webhooks.port; 0 picks one)")

    i = sub.add_parser("inbound", help="list inbound SMS and MO messages")
    i.add_argument("--count", type=int, default=100, help="the latest N (default 100)")
    i.add_argument("--json", action="store_true")

    m = sub.add_parser("mock", help="the mock provider server")
    from dispatcher.mock.server import add_arguments

    add_arguments(m)

    d = sub.add_parser("run", help="the demo: Redis, mock, worker and a 10,000-recipient campaign")
    d.add_argument("--recipients", type=int, default=10_000)
    d.add_argument("--processes", type=int, default=1)
    return p


def _campaign_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("campaign_file", nargs="?", help="a JSON campaign file")
    p.add_argument("--provider")
    p.add_argument("--text")
    p.add_argument("--recipients", help="CSV file, or one number a line")
    p.add_argument("--account", default="default")
    p.add_argument("--signature")
    p.add_argument("--name")
    p.add_argument("--region", help="default region for numbers without +country code")
    p.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="provider option"
    )
    p.add_argument("--kind", default="sms", help="sms (default) or voice")
    p.add_argument("--lane", default="transactional", help="otp, transactional or bulk")
    p.add_argument(
        "--weight", type=int, default=1, help="share of the account's rate against its other "
        "running campaigns (1-100, default 1)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(raw)
    setup_logging(args.log_level)
    try:
        return _dispatch(args, raw)
    except (CampaignError, ConfigError, EmbeddedRedisError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except CampaignNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _dispatch(args: argparse.Namespace, raw: list[str]) -> int:
    cmd = args.command
    if cmd == "mock":
        from dispatcher.mock.server import run as run_mock

        return run_mock(args)
    if cmd == "run":
        from dispatcher.demo import demo

        return demo(args.recipients, args.processes)
    settings = _settings(args)
    if cmd == "worker":
        return _worker(args, settings, raw)
    if cmd == "estimate":
        return _estimate(args, settings)
    if cmd == "webhooks":
        from dispatcher.webhooks.server import serve

        hooks = settings.webhooks
        host = args.host or hooks.host
        port = hooks.port if args.port is None else args.port
        hooks.secret()  # refuse to start without one
        with redis_url() as url:
            run(serve(settings, url, host, port))
        return 0
    if cmd == "provider":
        answer = run(query(settings, args.provider_name, args.account, args.query))
        print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
        return 0
    with redis_url() as url:
        return run(_client_command(args, settings, url))


def _worker(args: argparse.Namespace, settings: Settings, raw: list[str]) -> int:
    from dispatcher.supervisor import run_many, run_single

    if args.processes < 1:
        raise CampaignError("--processes", "must be at least 1")
    if args.processes > 1:
        return run_many(_strip_processes(raw), args.processes)
    settings = with_overrides(
        settings,
        chunks_in_flight=args.chunks,
        lease_seconds=args.lease_seconds,
        drain_timeout_seconds=args.drain_timeout,
    )
    if args.concurrency:
        providers = settings.providers.items()
        settings = replace(
            settings, providers={n: replace(p, concurrency=args.concurrency) for n, p in providers}
        )
    return run_single(settings, args.provider, poll=not args.no_poll)


def _strip_processes(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--processes":
            skip = True
            continue
        if a.startswith("--processes="):
            continue
        out.append(a)
    return out


def _campaign(args: argparse.Namespace) -> Campaign:
    if args.campaign_file:
        if args.provider or args.text or args.recipients:
            raise CampaignError("campaign_file", "give a file or --provider/--text/--recipients")
        try:
            data = orjson.loads(Path(args.campaign_file).read_bytes())
        except OSError as exc:
            raise CampaignError("campaign_file", f"cannot read: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise CampaignError("campaign_file", f"not valid JSON: {exc}") from None
        return Campaign.from_dict(data)
    for name in ("provider", "text", "recipients"):
        if getattr(args, name) is None:
            raise CampaignError(name, f"--{name} is required without a campaign file")
    return Campaign(
        provider=args.provider,
        text=args.text,
        recipients=list(read_recipients(args.recipients)),
        account=args.account,
        signature=args.signature,
        name=args.name,
        idempotency_key=getattr(args, "idempotency_key", None),
        default_region=args.region,
        options=_options(args.provider, args.option),
        kind=args.kind,
        lane=args.lane,
        check_balance=getattr(args, "check_balance", False),
        weight=args.weight,
    )


def _options(provider: str, given: list[str]) -> dict[str, Any]:
    """``--option key=value``, typed as the provider's codec expects."""
    codec = CODECS.get(provider)
    out: dict[str, Any] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CampaignError("--option", f"{item!r}: expected KEY=VALUE")
        kind = codec.options.get(key) if codec else None
        if kind is int:
            if not value.lstrip("-").isdigit():
                raise CampaignError(f"options.{key}", "must be int")
            out[key] = int(value)
        else:
            out[key] = value
    return out


def _estimate(args: argparse.Namespace, settings: Settings) -> int:
    campaign = _campaign(args)
    est = estimate(campaign, settings)
    left = run(balance(settings, campaign.provider, campaign.account)) if args.balance else None
    short = left is not None and est.cost is not None and est.cost > left
    if args.json:
        print(orjson.dumps({**est.as_dict(), "balance": left, "short": short}).decode())
        return 0
    print(f"{est.provider}: {est.recipients} recipient(s) to send", end="")
    print(f" ({est.invalid} invalid, {est.duplicates} duplicate(s) left out)")
    parts = ", ".join(f"{n} × {s} segment(s)" for s, n in sorted(est.by_segments.items()))
    print(f"segments: {est.segments}" + (f" ({parts})" if parts else ""))
    if est.cost is None:
        print(f"cost: unknown (set providers.{est.provider}.price_per_segment)")
    else:
        print(f"cost: {est.cost:.4f} at {est.price_per_segment} a segment")
    if left is not None:
        print(f"balance: {left:.4f}")
        if short:
            print("warning: the balance does not cover this campaign", file=sys.stderr)
    return 0


async def _client_command(args: argparse.Namespace, settings: Settings, url: str) -> int:
    client = Client(settings=settings, redis=connect(url))
    try:
        if args.command == "enqueue":
            try:
                answer = await client.enqueue(_campaign(args), allow_empty=args.allow_empty)
            except NothingToSend as exc:
                raise CampaignError(
                    exc.field, f"{exc.message}; use --allow-empty to enqueue it"
                ) from None
            if args.json:
                print(orjson.dumps(asdict(answer)).decode())
            else:
                print(answer.id)
                note = " (existing campaign for this idempotency key)" if answer.existing else ""
                print(
                    f"enqueued {answer.valid} recipient(s) in {answer.chunks} chunk(s); "
                    f"{answer.invalid} invalid, {answer.duplicates} duplicate(s){note}",
                    file=sys.stderr,
                )
            return 0
        if args.command == "status":
            if args.watch:
                from dispatcher.progress import watch

                st = await watch(client, args.campaign_id)
            else:
                st = await client.status(args.campaign_id)
            _print_status(st, args.json)
            return 0
        if args.command == "results":
            return await _results(client, args)
        if args.command == "inbound":
            for entry in await client.inbound(args.count):
                if args.json:
                    print(orjson.dumps(entry).decode())
                else:
                    extra = f" (keyword {entry['keyword']})" if entry.get("keyword") else ""
                    print(f"{entry['provider']:<10} {entry['mobile']:<16} {entry['text']}{extra}")
            return 0
        if args.command == "pause":
            paused = await client.pause(args.campaign_id)
            print("paused" if paused else "already paused or cancelled")
            return 0 if paused else 1
        if args.command == "cancel":
            moved = await client.cancel(args.campaign_id)
            print("cancelled" if moved >= 0 else "already cancelled")
            for batch, said in (await client.cancel_at_provider(args.campaign_id)).items():
                print(f"provider campaign {batch}: {said}")
            return 0 if moved >= 0 else 1
        if args.command == "retry":
            dead = await client.dead(args.campaign_id)
            n = await client.retry(args.campaign_id)
            print(f"{n} recipient(s) queued again")
            for reason in sorted(set(dead.values()))[:10]:
                print(f"  had failed with: {reason}", file=sys.stderr)
            return 0
        if args.command == "resume":
            n = await client.resume(args.campaign_id)
            if n < 0:
                print("campaign is not paused", file=sys.stderr)
                return 1
            print(f"resumed: {n} chunk(s) queued again")
            return 0
        raise AssertionError(args.command)
    finally:
        await client.redis.aclose()


def _print_status(st: CampaignStatus, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(st.as_dict()).decode())
        return
    print(f"campaign {st.id}  {st.provider}/{st.account}  state: {st.state}")
    counts = "  ".join(f"{k} {v}" for k, v in sorted(st.counts.items()))
    print(f"sent:  total {st.total}  {counts}  pending {st.pending}")
    finals = "  ".join(f"{k} {v}" for k, v in sorted(st.finals.items()))
    print(f"final: {finals or 'none yet'}  open {st.open}")
    if st.share is not None:
        print(f"share of {st.provider}/{st.account}'s rate: {st.share:.0%}")
    if st.parked:
        why = ", ".join(f"{k} {v}" for k, v in sorted(st.parked.items()))
        print(
            f"unknown fate: {sum(st.parked.values())} parked ({why}), waiting for "
            f"{st.provider} to say whether it has them"
        )
    if st.reason:
        print(f"reason: {st.reason}")


async def _results(client: Client, args: argparse.Namespace) -> int:
    # A command-line tool writing its own output file: nothing else shares this loop.
    out: Any = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: ASYNC230, SIM115
    try:
        if args.csv:
            writer = csv.writer(out)
            writer.writerow(["index", *ROW_FIELDS, "raw_status", "status_at"])
            async for r in client.results(args.campaign_id):
                values = [*r.row(), r.raw_status, r.status_at]
                writer.writerow([r.index, *("" if v is None else v for v in values)])
        else:
            async for r in client.results(args.campaign_id):
                out.write(orjson.dumps(r.as_dict()).decode() + "\n")
    finally:
        if args.output:
            out.close()
    return 0
