"""A lean HTTP/1.1 front for the mock's one-mobile send endpoints; aiohttp serves the rest.

Cloud Aten and YCloud take one mobile per request, so a benchmark of them measures the
mock's cost per request as much as the client's: aiohttp's server spent about half of the
mock's ~180 µs a request, and the mock, not the client, set the ceiling on two cores. The
front answers ``POST`` to the paths it is given itself, with the same handlers the aiohttp
app routes there, and hands a connection to aiohttp, for good, at the first request it does
not take: another path or method, a query string, a chunked or large body, HTTP/1.0,
``Expect``, or a header it would have to think about. aiohttp then parses that request from
its first byte, so what the front does not take behaves exactly as before.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, cast

from aiohttp import web
from aiohttp.helpers import parse_content_type
from multidict import CIMultiDict, CIMultiDictProxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_HEAD = 16 * 1024
#: RFC 9110 token: a header name the front reads as it is; aiohttp judges any other.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
MAX_BODY = 1024 * 1024

log = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def _content_type(raw: str | None) -> tuple[str, str | None]:
    """aiohttp's own parse of Content-Type, kept: clients send the same few values."""
    if raw is None:
        return "application/octet-stream", None
    kind, params = parse_content_type(raw)
    return kind, params.get("charset")


class FrontRequest:
    """The part of aiohttp's ``web.Request`` the send handlers read."""

    __slots__ = ("_body", "_items", "headers", "method", "path", "transport")

    def __init__(
        self,
        method: str,
        path: str,
        headers: CIMultiDictProxy[str],
        transport: asyncio.Transport,
        body: bytes,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.transport: asyncio.Transport | None = transport
        self._body = body
        self._items: dict[Any, Any] = {}

    @property
    def content_type(self) -> str:
        return _content_type(self.headers.get("Content-Type"))[0]

    @property
    def charset(self) -> str | None:
        return _content_type(self.headers.get("Content-Type"))[1]

    async def read(self) -> bytes:
        return self._body

    def __setitem__(self, key: Any, value: Any) -> None:
        self._items[key] = value

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def get(self, key: Any, default: Any = None) -> Any:
        return self._items.get(key, default)


def encode(response: web.StreamResponse, keep_alive: bool) -> bytes:
    """The response's status line, headers and body, as aiohttp would frame them."""
    body = getattr(response, "body", None)
    payload = body if isinstance(body, bytes) else b""
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "content-length"]
    lines.append(f"Content-Length: {len(payload)}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class Front(asyncio.Protocol):
    """One connection: requests it takes are answered in order; the first it does not
    take moves the connection, with every byte not yet answered, to aiohttp."""

    def __init__(
        self,
        routes: dict[str, Handler],
        fallback: Callable[[], asyncio.Protocol],
        open_fronts: set[Front],
    ) -> None:
        self._routes = routes
        self._fallback = fallback
        self._open = open_fronts
        self._buf = bytearray()
        self._busy = False
        self._handed = False
        self._task: asyncio.Task[None] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._open.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._open.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._next()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _next(self) -> None:
        """Start on the next whole request, unless one is being answered."""
        if self._busy or self._handed or not self._buf or self.transport is None:
            return
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                self._hand_off()
            return
        taken = self._parse(bytes(self._buf[:end]))
        if taken is None:
            self._hand_off()
            return
        handler, path, headers, length, keep_alive = taken
        total = end + 4 + length
        if len(self._buf) < total:
            return  # the body is still on its way
        body = bytes(self._buf[end + 4 : total])
        del self._buf[:total]
        request = FrontRequest("POST", path, headers, self.transport, body)
        self._busy = True
        self._task = asyncio.create_task(self._answer(handler, request, keep_alive))

    def _parse(self, head: bytes) -> tuple[Handler, str, CIMultiDictProxy[str], int, bool] | None:
        """The request's handler, path, headers, body length and keep-alive, or None for
        a request the front leaves to aiohttp."""
        try:
            text = head.decode("ascii")
        except UnicodeDecodeError:
            return None
        first, *lines = text.split("\r\n")
        parts = first.split(" ")
        if len(parts) != 3 or parts[0] != "POST" or parts[2] != "HTTP/1.1":
            return None
        handler = self._routes.get(parts[1])
        if handler is None:
            return None
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not TOKEN.fullmatch(name):
                return None  # folded or malformed: aiohttp decides what to answer
            headers.add(name, value.strip())
        length = headers.getall("Content-Length", [])
        if len(length) != 1 or not length[0].isdigit() or int(length[0]) > MAX_BODY:
            return None
        if "Transfer-Encoding" in headers or "Expect" in headers:
            return None
        keep_alive = headers.get("Connection", "").lower() != "close"
        return handler, parts[1], CIMultiDictProxy(headers), int(length[0]), keep_alive

    async def _answer(self, handler: Handler, request: FrontRequest, keep_alive: bool) -> None:
        try:
            response = await handler(cast(web.Request, request))
        except web.HTTPException as exc:
            response = exc
        except Exception:
            log.exception("mock front: %s failed", request.path)
            response, keep_alive = web.Response(status=500), False
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # gone, or closed on purpose by an injected fault
        transport.write(encode(response, keep_alive))
        if not keep_alive:
            transport.close()
            return
        self._busy = False
        self._next()

    def _hand_off(self) -> None:
        """aiohttp takes over the connection, from the first byte not yet answered."""
        transport = self.transport
        assert transport is not None
        self._handed = True
        self._open.discard(self)
        protocol = self._fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._buf:
            protocol.data_received(bytes(self._buf))
            self._buf.clear()


class FrontSite(web.BaseSite):
    """A TCP site whose connections meet the front first."""

    __slots__ = ("_fronts", "_host", "_port", "_routes")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        routes: dict[str, Handler],
        *,
        ssl_context: Any = None,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._routes = routes
        self._fronts: set[Front] = set()

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    async def start(self) -> None:
        await super().start()
        aiohttp_server = self._runner.server
        assert aiohttp_server is not None
        fallback = cast(Callable[[], asyncio.Protocol], aiohttp_server)
        self._server = await asyncio.get_running_loop().create_server(
            lambda: Front(self._routes, fallback, self._fronts),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
        )

    async def stop(self) -> None:
        await super().stop()
        for front in list(self._fronts):
            front.close()
