"""A lean HTTP/1.1 keep-alive client for the providers' send path (transport.py).

A worker sending one recipient per request (Cloud Aten, YCloud) spent some 40 % of its CPU
in aiohttp's request machinery (py-spy): a request object, a response object, a payload
registry lookup, a timer, a stream reader and several tasks' worth of callbacks for a few
hundred bytes each way. What a provider call needs is much less: write one prebuilt byte
string on a kept-alive connection and read one answer back. This module does exactly that
on asyncio protocols, with httptools (llhttp, the parser behind uvicorn) reading the answer.

What it keeps of aiohttp's behaviour: a pool of at most ``limit`` connections per origin,
idle ones closed after :data:`KEEPALIVE_S`; TLS through the given context (TLS 1.2 for
two-way TLS: transport.client_tls); gzip and deflate answers decompressed; ``Connection:
close`` and answers read until the connection ends. No redirects, cookies or proxies: the
providers' APIs use none.

It tells the caller the one thing its retry rules need (transport.TransportError): whether
the request may have left. :class:`ConnectFailed` means no connection was made, so nothing
was written; any other failure comes after the request was handed to the socket.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import Mapping
from typing import cast

import httptools

__all__ = ["ConnectFailed", "Http1Pool", "ResponseFailed"]

KEEPALIVE_S = 30.0  # an idle connection older than this is closed, not reused
USER_AGENT = "dispatcher"


class ConnectFailed(Exception):
    """No connection could be made: the request never left."""


class ResponseFailed(Exception):
    """The request was written, and no whole answer came back (connection lost, or an
    answer that is not HTTP)."""


class _Conn(asyncio.Protocol):
    """One connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._body: list[bytes] = []
        self._encoding = b""
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the parser knows where it ends

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ResponseFailed(f"not an HTTP answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self._headers_done and not self._framed:  # an answer read until the end
                self._complete(keep=False)
            else:
                self._fail(ResponseFailed(f"connection closed before the answer: {exc}"))

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"content-encoding":
            self._encoding = value.strip().lower()
        elif lower in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._framed = True  # a body-less answer (204, 304) ends here too
        self._complete(keep=self._parser.should_keep_alive())

    # -- one exchange ----------------------------------------------------------------------

    def _complete(self, keep: bool) -> None:
        waiter, body = self._waiter, b"".join(self._body)
        if waiter is None or waiter.done():
            return
        try:
            status = self._parser.get_status_code()
            body = _decoded(body, self._encoding)
        except (httptools.HttpParserError, zlib.error) as exc:
            waiter.set_exception(ResponseFailed(f"unreadable answer: {exc}"))
            return
        waiter.set_result((status, body, keep and not self.closed))

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def exchange(self, data: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        """Write a request; the future gives (status, body, whether to keep the connection)."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._body = []
        self._encoding = b""
        self._headers_done = self._framed = False
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[tuple[int, bytes, bool]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _decoded(body: bytes, encoding: bytes) -> bytes:
    if not encoding or encoding == b"identity":
        return body
    if encoding in (b"gzip", b"x-gzip"):
        return zlib.decompress(body, wbits=47)
    if encoding == b"deflate":  # zlib-wrapped as the RFC says, or raw as some servers send
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, wbits=-15)
    raise zlib.error(f"unsupported Content-Encoding {encoding.decode(errors='replace')}")


class Http1Pool:
    """Requests to one origin (``scheme://host:port``) on at most ``limit`` kept-alive
    connections; a request beyond them waits for one."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        limit: int,
        headers: Mapping[str, str],
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Conn] = []
        self._live: set[_Conn] = set()
        default_port = 443 if tls is not None else 80
        authority = f"[{host}]" if ":" in host else host
        if port != default_port:
            authority += f":{port}"
        fixed = {"Host": authority, "User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate",
                 "Accept": "*/*", **headers}  # fmt: skip
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")

    def request_bytes(self, method: str, target: str, body: bytes | None) -> bytes:
        """The request as written: start line, headers, body."""
        start = f"{method} {target} HTTP/1.1\r\n".encode("latin-1")
        if body is None and method in ("GET", "DELETE", "OPTIONS"):
            return start + self._head + b"\r\n"
        body = body or b""
        return b"%s%sContent-Length: %d\r\n\r\n%s" % (start, self._head, len(body), body)

    async def request(
        self,
        method: str,
        target: str,
        body: bytes | None,
        *,
        connect_timeout: float,
        within: float | None = None,
    ) -> tuple[int, bytes]:
        """(status, body). ConnectFailed: nothing left. ResponseFailed, TimeoutError or a
        cancellation: the request may have reached the server. ``within`` (seconds) bounds the
        whole call, the wait for a connection included (None: the caller bounds it)."""
        data = self.request_bytes(method, target, body)
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        if self._slots.locked() and deadline is not None:
            async with asyncio.timeout_at(deadline):  # the slow path: wait for a slot
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            if deadline is not None:
                connect_timeout = min(connect_timeout, max(deadline - loop.time(), 0.0))
            conn = await self._connection(connect_timeout)
            waiter = conn.exchange(data)
            # A timer on the answer instead of asyncio.timeout around it: one C timer,
            # where the context manager cost 4 % of a one-mobile worker (py-spy).
            timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
            try:
                status, answer, keep = await waiter
            except BaseException:
                self._drop(conn)  # a late answer would be read as the next request's
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                self._drop(conn)
            return status, answer
        finally:
            self._slots.release()

    def _drop(self, conn: _Conn) -> None:
        conn.close()
        self._live.discard(conn)

    async def _connection(self, connect_timeout: float) -> _Conn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            self._drop(conn)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout):
                _transport, conn = await loop.create_connection(
                    _Conn,
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"no connection to {self.host}:{self.port} within "
                                f"{connect_timeout:g} s") from None  # fmt: skip
        except OSError as exc:  # refused, unreachable, or a TLS handshake refused (SSLError)
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        self._live.add(conn)
        return conn

    def close(self) -> None:
        for conn in self._live:
            conn.close()
        self._live.clear()
        self._idle.clear()
