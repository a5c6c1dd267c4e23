"""HTTP to the providers: one pool of kept-alive connections per provider account
(http1.py, a lean HTTP/1.1 client: aiohttp's request path was the worker's largest cost).

The transport knows URLs, headers, timeouts and TLS; it knows no provider's field names.
"""

from __future__ import annotations

import asyncio
import ssl

from yarl import URL

from dispatcher.errors import DispatcherError
from dispatcher.http1 import ConnectFailed, Http1Pool, ResponseFailed
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
        self._targets: dict[str, str] = {}
        self._pool_size = pool_size
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context
        self._pool: Http1Pool | None = None

    def _open(self) -> Http1Pool:
        url = URL(self._base)
        if url.scheme not in ("http", "https") or not url.host:
            raise TransportError("CONNECTION", f"not an http(s) URL: {url.scheme}://…",
                                 maybe_sent=False)  # fmt: skip
        tls = None
        if url.scheme == "https":
            tls = self._ssl if self._ssl is not None else ssl.create_default_context()
        port = url.port or (443 if tls is not None else 80)
        return Http1Pool(url.host, port, tls=tls, limit=self._pool_size, headers=self._headers)

    def _target(self, path: str) -> str:
        """The request target (path and query, percent-encoded) of ``path`` under the base
        URL's path."""
        target = self._targets.get(path)
        if target is None:
            target = URL(self._base + path, encoded=False).raw_path_qs
            if "?" not in path:  # a query (list calls): not worth keeping
                self._targets[path] = target
        return target

    async def send(self, request: HttpRequest) -> tuple[int, bytes]:
        """The status and body of the answer, or TransportError if none came."""
        if self._pool is None:
            self._pool = self._open()
        try:
            return await self._pool.request(
                request.method, self._target(request.path), request.body,
                connect_timeout=self._connect_timeout, within=self._timeout,
            )  # fmt: skip
        except ConnectFailed as exc:
            # No connection was made: nothing left, so trying again is safe.
            raise TransportError("CONNECTION", str(exc), maybe_sent=False) from None
        except TimeoutError:
            raise TransportError("TIMEOUT", "no answer within the timeout") from None
        except ResponseFailed as exc:
            raise TransportError("CONNECTION", str(exc)) from None

    @staticmethod
    def outcome(status: int) -> str:
        """An HTTP status's class, for metrics: ``2xx``, ``4xx``…"""
        return f"{status // 100}xx"

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


async def close_all(transports: list[Transport]) -> None:
    await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
