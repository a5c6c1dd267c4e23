"""Process plumbing shared by the commands: logging, uvloop, and where Redis is."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import uvloop
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.embedded import CLIENT_NAME, shared_server

T = TypeVar("T")

_early: list[int] = []


def catch_early_signals() -> None:
    """Remember SIGTERM/SIGINT/SIGHUP until the real handlers are installed."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: _early.append(signum))


def early_signals() -> list[int]:
    """The signals caught before the real handlers were installed."""
    return list(_early)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine on uvloop."""
    return uvloop.run(coro)


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """``$REDIS_URL`` if set; otherwise the embedded server, for as long as the block runs."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with shared_server() as embedded:
        yield embedded


def connect(url: str) -> Redis:
    """A client that rides out short Redis restarts instead of failing the first command."""
    return Redis.from_url(
        url,
        client_name=CLIENT_NAME,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_keepalive=True,
    )
