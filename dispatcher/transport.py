"""HTTP to the providers: one keep-alive aiohttp session per provider account.

The transport knows URLs, headers, timeouts and TLS; it knows no provider's field names.
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
from yarl import URL

from dispatcher.errors import DispatcherError
from dispatcher.providers.base import HttpRequest


def client_tls(cert: str | None, key: str | None, ca: str | None) -> ssl.SSLContext | None:
    """A TLS context with our client certificate (two-way TLS) and/or a private CA; None
    when neither is configured, for the system's default verification.

    Such connections use TLS 1.2: its handshake ends only once the server has checked our
    certificate, so a refusal comes before any request leaves, as a connection error that
    is safe to retry. Under TLS 1.3 the server refuses after the handshake, when the
    request is already on its way, and the refusal looks like a lost answer (unknown fate).
    """
    if not (cert or ca):
        return None
    context = ssl.create_default_context(cafile=ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        context.load_cert_chain(cert, key)
    return context


class TransportError(DispatcherError):
    """No HTTP answer. ``maybe_sent`` is False only when the request certainly did not
    leave (no connection could be made); otherwise it may have reached the provider, and
    its fate is unknown (unknown.py)."""

    def __init__(self, code: str, message: str, *, maybe_sent: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.maybe_sent = maybe_sent


class Transport:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        pool_size: int,
        timeout: float,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = headers
        self._urls: dict[str, URL] = {}
        self._pool_size = pool_size
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._pool_size,
            limit_per_host=self._pool_size,
            keepalive_timeout=30,
            ssl=self._ssl if self._ssl is not None else True,
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            # The providers authenticate every request by its header; a jar would only
            # filter cookies for each request (a few per cent of the worker's CPU).
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=self._timeout,
            raise_for_status=False,
            auto_decompress=True,
        )

    def _url(self, path: str) -> URL:
        if "?" in path:  # a query (list calls): not worth keeping
            return URL(self._base + path, encoded=False)
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self._base + path, encoded=False)
        return url

    async def send(self, request: HttpRequest) -> tuple[int, bytes]:
        """The status and body of the answer, or TransportError if none came."""
        if self._session is None:
            self._session = self._open()
        try:
            async with self._session.request(
                request.method, self._url(request.path), data=request.body
            ) as resp:
                return resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # We were cancelled (shutdown): aiohttp may report that as a timeout, but it
                # must stay a cancellation or the caller would carry on as if nothing happened.
                raise asyncio.CancelledError from None
            if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
                # No connection was made: nothing left, so trying again is safe.
                raise TransportError(
                    "CONNECTION", f"{type(exc).__name__}: {exc}", maybe_sent=False
                ) from None
            if isinstance(exc, TimeoutError):
                raise TransportError("TIMEOUT", "no answer within the timeout") from None
            raise TransportError("CONNECTION", f"{type(exc).__name__}: {exc}") from None

    @staticmethod
    def outcome(status: int) -> str:
        """An HTTP status's class, for metrics: ``2xx``, ``4xx``…"""
        return f"{status // 100}xx"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def close_all(transports: list[Transport]) -> None:
    await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
