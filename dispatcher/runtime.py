"""Process plumbing shared by the commands: logging, uvloop, and where Redis is."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import uvloop
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.embedded import CLIENT_NAME, data_dir_from_env, shared_server
from dispatcher.errors import DispatcherError

T = TypeVar("T")

#: Schemes that name a Redis Cluster: redis-py's own scheme with ``+cluster`` (which
#: redis-py does not know, so :func:`plain_url` strips it before a URL reaches it).
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
#: Schemes a Redis URL may have: redis-py's, and the cluster ones.
SCHEMES = ("redis", "rediss", "unix", *CLUSTER_SCHEMES)
#: How long a command-line command waits for Redis to answer before it gives up.
CLI_CONNECT_TIMEOUT_S = 3.0

_early: list[int] = []
#: Set by ``-v``: commands say on stderr which Redis and which config file they use.
verbose = False


class RedisUrlError(DispatcherError, ValueError):
    """``REDIS_URL`` is not a URL redis-py can use; the message names the variable."""


class RedisUnreachable(DispatcherError, RuntimeError):
    """Redis did not answer; the message names it without its password."""

    def __init__(self, url: str, reason: str = "") -> None:
        why = f" ({reason})" if reason else ""
        super().__init__(f"cannot reach Redis at {redact_url(url)}{why}; set REDIS_URL")


def catch_early_signals() -> None:
    """Remember SIGTERM/SIGINT/SIGHUP until the real handlers are installed."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: _early.append(signum))


def early_signals() -> list[int]:
    """The signals caught before the real handlers were installed."""
    return list(_early)


async def until_stopped() -> None:
    """Wait for SIGTERM or SIGINT: how a server process (webhooks, API) knows to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def say(line: str) -> None:
    """One line on stderr when ``-v`` was given."""
    if verbose:
        print(line, file=sys.stderr, flush=True)


def stop_if_cancelled() -> None:
    """Raise CancelledError if the current task was asked to stop.

    redis-py can swallow a cancellation that lands while it opens or closes a connection
    (its ``asyncio.timeout`` blocks), and Ctrl-C reaches a command as the cancellation of
    its task: loops that could run for ever (``status --watch``, ``results``) call this
    after each Redis call, so Ctrl-C always ends them.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def settle_heap() -> None:
    """Once started, move what start-up allocated (modules, settings, codecs) out of the
    collector's sight: every collection of the older generations walked it again, some
    5-10 % of a batch provider worker's CPU (py-spy). Only that: a young threshold of
    10,000 instead of 700 saved a little more, but let the worker's RSS grow by some
    15 MB a 100,000-recipient campaign (the cycles asyncio leaves waited ever longer for a
    full collection). Holding the collector off while a chunk was loaded, built and parsed
    did the same in another way: 0.4 µs a CloudSMS recipient less, 10 MB more at the peak
    of bench_memory's 1,000,000, and its RSS no longer flat within 10 %. (Both were
    measured while every finished chunk's run was held in a reference cycle until a full
    collection, since fixed; neither has been measured again.)"""
    gc.collect()
    gc.freeze()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop."""
    return uvloop.run(coro)


def redact_url(url: str) -> str:
    """``url`` fit to print: no password (in the user part or the query), no query at all."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if ":" in host:
        host = f"[{host}]"
    user = parts.username if parts.username and parts.username != "default" else ""
    netloc = (f"{user}@" if user else "") + host + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def checked_url(url: str, name: str = "REDIS_URL") -> str:
    """``url`` if redis-py can use it (a cluster one once :func:`plain_url` has stripped
    ``+cluster``), else a :class:`RedisUrlError` naming ``name``."""
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise RedisUrlError(
            f"{name} must start with redis://, rediss:// or unix:// "
            "(for example redis://localhost:6379/0)"
        )
    return url


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """``$REDIS_URL`` if set; otherwise the embedded server, for as long as the block runs.

    The embedded server lives in the one per-user data folder (``embedded.data_dir_from_env``),
    so every command finds the same one wherever it runs.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        checked_url(url)
        say(f"redis: {redact_url(url)} (REDIS_URL)")
        yield url
        return
    directory = data_dir_from_env()
    with shared_server(directory) as embedded:
        say(f"redis: {embedded} (embedded valkey-server, data in {directory})")
        yield embedded


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``)."""
    scheme, sep, _rest = url.partition("://")
    return bool(sep) and scheme.lower() in CLUSTER_SCHEMES


def plain_url(url: str) -> str:
    """``url`` with ``+cluster`` taken out of its scheme: the form redis-py parses."""
    if not is_cluster_url(url):
        return url
    scheme, _sep, rest = url.partition("://")
    return f"{scheme[: -len('+cluster')]}://{rest}"


def connect(url: str) -> Redis:
    """A client that rides out short Redis restarts instead of failing the first command.

    A cluster URL gives a ``RedisCluster``, typed as ``Redis``: it offers the same command
    API the code uses, so callers need not know which one they hold.
    """
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8)
    options: dict[str, Any] = {
        "client_name": CLIENT_NAME,
        "health_check_interval": 30,
        "retry": retry,
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        "socket_keepalive": True,
    }
    if is_cluster_url(url):
        return cast(Redis, RedisCluster.from_url(plain_url(url), **options))
    return Redis.from_url(url, **options)


def probe_client(url: str, within: float = CLI_CONNECT_TIMEOUT_S) -> Redis:
    """A client that gives up after ``within`` seconds and never retries: for a check that
    must answer at once (a command, a container probe). A cluster URL gives a
    ``RedisCluster`` typed as ``Redis`` (the same command API, see :func:`connect`)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": within,
        "socket_timeout": within,
        "retry": Retry(NoBackoff(), 0),
    }
    if is_cluster_url(url):
        return cast(Redis, RedisCluster.from_url(plain_url(url), **options))
    return Redis.from_url(url, **options)


async def ensure_reachable(url: str, within: float = CLI_CONNECT_TIMEOUT_S) -> None:
    """One PING, no retries, within ``within`` seconds: :class:`RedisUnreachable` if it fails, so a
    command-line command says so at once rather than after the retries of :func:`connect`."""
    probe = probe_client(url, within)
    try:
        await probe.ping()
    except (RedisError, RedisClusterException, OSError) as exc:  # a cluster says it its way
        raise RedisUnreachable(url, reason_of(exc)) from None
    finally:
        await probe.aclose()


def reason_of(exc: BaseException) -> str:
    """A short reason for a connection failure, without any address or secret in it."""
    text = str(exc).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("connect call failed", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("authentication", "authentication failed"),
        ("username-password", "authentication failed"),
        ("noauth", "authentication required"),
        ("ssl", "TLS error"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__
