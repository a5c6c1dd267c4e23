"""``python -m dispatcher …``: parsing, errors and exit codes; the work lives elsewhere.

Exit codes: 0 done (asking for what already is so, e.g. pausing a paused campaign,
included), 1 a failure (no such campaign, Redis unreachable, a provider query refused),
2 bad input (a campaign, a setting, ``REDIS_URL``), 130 interrupted (Ctrl-C), 141 the
reader of the output went away (``… | head -1``). Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from importlib import resources

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher import logs, runtime
from dispatcher.account_api import query
from dispatcher.cli.campaign import estimate_command
from dispatcher.cli.commands import CLIENT_COMMANDS
from dispatcher.cli.context import (
    config_source,
    redis_description,
    settings_for,
    warn_about_old_data_dir,
)
from dispatcher.cli.parser import build_parser
from dispatcher.config import ConfigError, Settings, with_overrides
from dispatcher.embedded import EmbeddedRedisError
from dispatcher.errors import DispatcherError
from dispatcher.model import CampaignError
from dispatcher.runtime import RedisUnreachable, RedisUrlError, reason_of, redis_url, run

#: The settings template shipped in the package (a copy of config/dispatcher.toml).
TEMPLATE = "config_template.toml"

#: The errors that mean bad input (a campaign, a setting, ``REDIS_URL``, the data folder):
#: exit code 2. Any other DispatcherError is a failure: 1 (no such campaign, Redis
#: unreachable, a provider query refused, a worker not ready).
BAD_INPUT: tuple[type[DispatcherError], ...] = (
    CampaignError,
    ConfigError,
    EmbeddedRedisError,
    RedisUrlError,
)

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(raw)
        runtime.verbose = bool(args.verbose)
        logs.setup(args.log_level or _default_level(args.command), args.log_format)
        return _dispatch(args, raw)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _drop_stdout()
        return 141
    except DispatcherError as exc:
        return _error(exc, 2 if isinstance(exc, BAD_INPUT) else 1)


def _default_level(command: str) -> str:
    """INFO for the long-running processes (their campaign events are the log); WARNING
    for the commands that act on campaigns, so that an enqueue or a pause prints only its
    answer, as before, and not the event line its own action logs."""
    return "WARNING" if command in CLIENT_COMMANDS else "INFO"


def _error(exc: BaseException, code: int) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return code


def _drop_stdout() -> None:
    """The reader is gone: point stdout at /dev/null so that the interpreter's last flush
    does not complain about the broken pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _dispatch(args: argparse.Namespace, raw: list[str]) -> int:
    cmd = args.command
    if cmd == "mock":
        from dispatcher.mock.server import run as run_mock

        runtime.say("config: not used")
        runtime.say("redis: not used")
        return run_mock(args)
    if cmd == "run":
        from dispatcher.demo import demo

        runtime.say("config: the demo's own, in a temporary folder")
        runtime.say("redis: a temporary embedded server")
        return demo(args.recipients, args.processes)
    if cmd == "config" and args.template:
        print(resources.files("dispatcher").joinpath(TEMPLATE).read_text("utf-8"), end="")
        return 0
    settings = settings_for(args.config)
    if cmd == "config":
        return _config(args)
    if cmd in ("estimate", "provider"):
        runtime.say("redis: not used")
    if cmd == "estimate":
        return estimate_command(args, settings)
    if cmd == "provider":
        import orjson

        answer = run(query(settings, args.provider_name, args.account, args.query))
        print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
        return 0
    warn_about_old_data_dir()
    if cmd == "worker":
        return _worker(args, settings, raw)
    if cmd == "webhooks":
        from dispatcher.webhooks.server import serve

        hooks = settings.webhooks
        hooks.secret()  # refuse to start without one
        port = hooks.port if args.port is None else args.port
        with redis_url() as url, _unreachable(url):
            run(serve(settings, url, args.host or hooks.host, port))
        return 0
    if cmd == "api":
        from dispatcher.api.app import serve as serve_api
        from dispatcher.api.auth import tokens_from_env

        tokens = tokens_from_env()  # refuse to start without them
        with redis_url() as url, _unreachable(url):
            run(serve_api(settings, url, args.host, args.port, tokens))
        return 0
    from dispatcher.cli.commands import client_command

    with redis_url() as url, _unreachable(url):
        return run(client_command(args, settings, url))


@contextlib.contextmanager
def _unreachable(url: str) -> Iterator[None]:
    """Redis lost in the middle of a command: one line, not a traceback."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise RedisUnreachable(url, reason_of(exc)) from None


def _config(args: argparse.Namespace) -> int:
    path, source = config_source(args.config)
    print(f"config: {path.absolute() if path else 'none, built-in settings'} ({source})")
    print(f"redis: {redis_description()}")
    return 0


def _worker(args: argparse.Namespace, settings: Settings, raw: list[str]) -> int:
    from dispatcher.supervisor import run_many, run_single

    if args.check:
        from dispatcher.health import check

        print(check(settings, args.provider))  # NotReady: exit 1, as every failure
        return 0
    if args.processes < 1:
        raise CampaignError("--processes", "must be at least 1")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise CampaignError("--metrics-port", "must be 0 to 65535")
    if args.processes > 1:
        return run_many(_strip_processes(raw), args.processes)
    settings = with_overrides(
        settings,
        chunks_in_flight=args.chunks,
        lease_seconds=args.lease_seconds,
        drain_timeout_seconds=args.drain_timeout,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
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
