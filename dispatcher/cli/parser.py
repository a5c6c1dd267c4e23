"""The command line's grammar: every command, option and help text."""

from __future__ import annotations

import argparse
import os

from dispatcher import __version__
from dispatcher.keys import LANES
from dispatcher.logs import log_format
from dispatcher.providers import KINDS

DESCRIPTION = """\
Bulk SMS, voice and email campaigns over Redis: enqueue a campaign, let workers send it
through the providers under their rate limits, follow it, read every recipient's result.

Redis is $REDIS_URL, or else a private embedded server kept in one per-user data folder
($DISPATCHER_DATA_DIR, else $XDG_DATA_HOME/dispatcher or ~/.local/share/dispatcher), the same
wherever a command runs. Settings come from --config, $DISPATCHER_CONFIG or
./config/dispatcher.toml ('dispatcher config --template' prints one to start from). -v says
which Redis and which settings file a command uses."""

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
UNTIL = ("sent", "done")


def kinds_help() -> str:
    """``sms (every provider, default), voice (cloudaten), …`` from the codecs' registry."""
    providers: dict[str, list[str]] = {}
    for provider, kind in KINDS:
        providers.setdefault(kind, []).append(provider)
    every = {p for p, _ in KINDS}
    parts = []
    for kind in ["sms", *sorted(k for k in providers if k != "sms")]:
        names = providers.get(kind, [])
        where = "every provider" if set(names) == every else ", ".join(sorted(names))
        parts.append(f"{kind} ({where}{', default' if kind == 'sms' else ''})")
    return "campaign kind: " + "; ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    # -v is accepted before the command and after it: a parent of every sub-command, whose
    # SUPPRESS default leaves the global one alone when it is not repeated there.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
        help="say on stderr which Redis and which settings file are used",
    )  # fmt: skip
    p = argparse.ArgumentParser(
        prog="dispatcher",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", help="settings file (default: $DISPATCHER_CONFIG or config/)")
    p.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO; WARNING for the commands "
        "that act on campaigns, whose answer is their output)",
    )  # fmt: skip
    p.add_argument(
        "--log-format", type=log_format, metavar="FORMAT",
        default=os.environ.get("DISPATCHER_LOG_FORMAT") or "text",
        help="text (default) or json: one JSON object a line for log shippers "
        "($DISPATCHER_LOG_FORMAT)",
    )  # fmt: skip
    p.add_argument(
        "-v", "--verbose", action="store_true",
        help="say on stderr which Redis and which settings file are used",
    )  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kw: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[verbose], **kw)  # type: ignore[arg-type]

    from dispatcher.supervisor import RESTART_RULE

    w = command(
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
    w.add_argument(
        "--metrics-port", type=int, metavar="PORT",
        help="serve /metrics, /healthz and /readyz on PORT (process i of --processes N: "
        "PORT+i-1; 0: any free port; default: [worker] metrics_port, else none)",
    )  # fmt: skip
    w.add_argument(
        "--metrics-host", metavar="HOST", help="address for --metrics-port (default 127.0.0.1)"
    )
    w.add_argument(
        "--check", action="store_true",
        help="for container probes: exit 0 if Redis answers and the workers' consumer group "
        "exists on every stream of these providers, else 1 with one line on stderr; starts "
        "nothing",
    )  # fmt: skip

    e = command("enqueue", help="enqueue a campaign; prints its id")
    campaign_arguments(e)
    e.add_argument("--idempotency-key")
    e.add_argument(
        "--check-balance", action="store_true", help="refuse it if it costs more than the balance"
    )
    e.add_argument("--allow-empty", action="store_true", help="enqueue with no valid recipient")
    e.add_argument(
        "--retention-days", type=int, metavar="N",
        help="days its records stay in Redis once it is done, then archived to a file "
        "(0-3660; 0: at once; default: the retention_days setting, 30)",
    )  # fmt: skip

    est = command("estimate", help="recipients, segments and cost, before sending")
    campaign_arguments(est)
    est.add_argument("--balance", action="store_true", help="compare the cost with the balance")

    q = command("provider", help="account queries, e.g. 'provider smsclouds routes'")
    q.add_argument("provider_name")
    q.add_argument(
        "query", help="routes, countries, user (Smsclouds); balance (Cloud Aten, YCloud)"
    )
    q.add_argument("--account", default="default")

    cs = command("campaigns", help="list campaigns, newest first")
    cs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    cs.add_argument("--json", action="store_true", help="one JSON object a line")

    s = command("status", help="a campaign's progress")
    s.add_argument("campaign_id")
    s.add_argument("--json", action="store_true")
    s.add_argument("--watch", action="store_true", help="live progress until --until")
    s.add_argument(
        "--until", choices=UNTIL, default="done",
        help="with --watch: stop once every recipient has a send result (sent) or a final "
        "status, delivery reports included (done, the default); a pause stops it too",
    )  # fmt: skip

    r = command("results", help="every recipient's result")
    r.add_argument("campaign_id")
    r.add_argument("--csv", action="store_true", help="CSV (times in ISO 8601 UTC)")
    r.add_argument("--output", "-o", help="write to this file instead of stdout")

    for name, text in (
        ("resume", "resume a paused campaign"),
        ("pause", "send nothing more until resumed"),
        ("cancel", "send nothing more; the rest becomes cancelled"),
        ("retry", "send again what failed after every attempt"),
    ):
        command(name, help=text).add_argument("campaign_id")

    a = command(
        "archive",
        help="archive campaigns past their retention now, or the ones named",
        description=(
            "Move campaigns from Redis to their archive file (archive_dir), as workers do "
            "once a campaign has been done for its retention_days. Without ids: every "
            "campaign due now. With ids: those, whatever their retention, if they are done "
            "(or cancelled with every recipient recorded). status and results read an "
            "archived campaign from its file."
        ),
    )
    a.add_argument("campaign_ids", nargs="*", metavar="CAMPAIGN_ID")
    a.add_argument(
        "--force", action="store_true",
        help="archive a named campaign that is not finished: what it has not sent is never "
        "sent, and later reports are dropped",
    )  # fmt: skip
    pg = command(
        "purge",
        help="delete campaigns for good: keys, index entries and archive file",
        description=(
            "Delete campaigns for good (a data-protection request): their Redis keys, their "
            "entries in the shared indexes and their archive file. Not touched: replies in "
            "the inbound stream (which apps consume) and log lines naming the id."
        ),
    )
    pg.add_argument("campaign_ids", nargs="+", metavar="CAMPAIGN_ID")
    pg.add_argument(
        "--force", action="store_true", help="purge a campaign that is not finished (running)"
    )

    api = command("api", help="serve the HTTP API and the web console")
    api.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8400, help="port (default 8400; 0 picks one)")
    h = command("webhooks", help="receive delivery reports and inbound messages")
    h.add_argument("--host", help="address to bind (default: webhooks.host)")
    h.add_argument("--port", type=int, help="port (default: webhooks.port; 0 picks one)")

    i = command("inbound", help="list inbound SMS and MO messages")
    i.add_argument("--count", type=int, default=100, help="the latest N (default 100)")
    i.add_argument("--json", action="store_true")

    c = command("config", help="where settings and Redis come from; the settings template")
    c.add_argument("--template", action="store_true", help="print the commented settings template")

    m = command("mock", help="the mock provider server")
    from dispatcher.mock.server import add_arguments

    add_arguments(m)

    d = command("run", help="the demo: Redis, mock, worker and a 10,000-recipient campaign")
    d.add_argument("--recipients", type=int, default=10_000)
    d.add_argument("--processes", type=int, default=1)
    return p


def campaign_arguments(p: argparse.ArgumentParser) -> None:
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
    kinds = sorted({kind for _, kind in KINDS})
    p.add_argument("--kind", default="sms", choices=kinds, help=kinds_help())
    p.add_argument("--lane", default="transactional", help=", ".join(LANES))
    p.add_argument(
        "--weight", type=int, default=1, help="share of the account's rate against its other "
        "running campaigns (1-100, default 1)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the whole answer as JSON")
