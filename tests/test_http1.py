"""The lean HTTP/1.1 client (http1.py) and the transport on it (transport.py), against a
real loopback server whose bytes each test writes itself."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trustme

from dispatcher.embedded import free_port
from dispatcher.http1 import ConnectFailed, Http1Pool, ResponseFailed
from dispatcher.providers.base import HttpRequest
from dispatcher.transport import Transport, TransportError

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    open_now: int = 0
    most_open: int = 0
    got: asyncio.Event = field(default_factory=asyncio.Event)


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


@asynccontextmanager
async def serving(reply: Reply, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(free_port())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.connections += 1
        server.open_now += 1
        server.most_open = max(server.most_open, server.open_now)
        try:
            while (request := await read_request(reader)) is not None:
                server.requests.append(request)
                server.got.set()
                await reply(request, writer)
                if writer.is_closing():
                    break
        finally:
            server.open_now -= 1
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", server.port, ssl=tls)
    try:
        yield server
    finally:
        srv.close()


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def echo_ok(request: bytes, writer: asyncio.StreamWriter) -> None:
    writer.write(answer(b'{"ok":%d}' % len(request)))


def pool(port: int, limit: int = 4, tls: ssl.SSLContext | None = None) -> Http1Pool:
    return Http1Pool("127.0.0.1", port, tls=tls, limit=limit, headers={"X-API-Key": "k"})


def transport(
    port: int,
    *,
    scheme: str = "http",
    path: str = "",
    pool_size: int = 2,
    timeout: float = 2,
    ssl_context: ssl.SSLContext | None = None,
) -> Transport:
    return Transport(
        f"{scheme}://127.0.0.1:{port}{path}",
        {},
        pool_size=pool_size,
        timeout=timeout,
        connect_timeout=1,
        ssl_context=ssl_context,
    )


async def test_requests_share_a_kept_alive_connection_and_carry_the_headers() -> None:
    async with serving(echo_ok) as server:
        p = pool(server.port)
        first = await p.request("POST", "/v1/sms", b'{"a":1}', connect_timeout=1)
        second = await p.request("GET", "/v1/balance?x=1", None, connect_timeout=1)
        p.close()
    assert first[0] == 200 and second[0] == 200
    assert server.connections == 1  # the second went on the first's connection
    post, get = server.requests
    assert post.startswith(b"POST /v1/sms HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in post
    assert b"X-API-Key: k\r\n" in post and post.endswith(b'Content-Length: 7\r\n\r\n{"a":1}')
    assert get.startswith(b"GET /v1/balance?x=1 HTTP/1.1\r\n")
    assert b"Content-Length" not in get


async def test_chunked_gzip_and_read_until_close_answers_are_read_whole() -> None:
    packed = gzip.compress(b'{"hello":"world"}')

    async def chunked(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"/close" in request:  # no length: the body ends with the connection
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
            await writer.drain()
            writer.write(b"part two")
            writer.close()
            return
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
        writer.write(head)
        for at in range(0, len(packed), 7):
            piece = packed[at : at + 7]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async with serving(chunked) as server:
        p = pool(server.port)
        assert await p.request("GET", "/gz", None, connect_timeout=1) == (200, b'{"hello":"world"}')
        assert await p.request("GET", "/close", None, connect_timeout=1) == (
            200,
            b"part one, part two",
        )
        assert await p.request("GET", "/gz", None, connect_timeout=1) == (200, b'{"hello":"world"}')
        p.close()
    assert server.connections == 2  # the read-until-close one was not reused


async def test_no_connection_is_a_connect_failure_nothing_left() -> None:
    p = pool(free_port())
    with pytest.raises(ConnectFailed):
        await p.request("POST", "/x", b"{}", connect_timeout=1)
    refused = transport(free_port())
    with pytest.raises(TransportError) as err:
        await refused.send(HttpRequest("POST", "/x", b"{}", (0,)))
    assert (err.value.code, err.value.maybe_sent) == ("CONNECTION", False)
    await refused.close()


async def test_a_request_read_then_dropped_may_have_left() -> None:
    async def drop(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.close()  # the server has the whole request, and answers nothing

    async with serving(drop) as server:
        p = pool(server.port)
        with pytest.raises(ResponseFailed):
            await p.request("POST", "/x", b"{}", connect_timeout=1)
        dropped = transport(server.port)
        with pytest.raises(TransportError) as err:
            await dropped.send(HttpRequest("POST", "/x", b"{}", (0,)))
        await dropped.close()
        p.close()
    assert (err.value.code, err.value.maybe_sent) == ("CONNECTION", True)
    assert len(server.requests) == 2


async def test_a_late_answer_is_never_read_as_the_next_requests() -> None:
    release = asyncio.Event()

    async def slow_first(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"/slow" in request:
            await release.wait()
            writer.write(answer(b"late"))
        else:
            writer.write(answer(b"fresh"))

    async with serving(slow_first) as server:
        one = transport(server.port, pool_size=1, timeout=0.3)
        with pytest.raises(TransportError) as err:
            await one.send(HttpRequest("GET", "/slow", None, (0,)))
        assert (err.value.code, err.value.maybe_sent) == ("TIMEOUT", True)
        release.set()
        assert await one.send(HttpRequest("GET", "/next", None, (0,))) == (200, b"fresh")
        await one.close()
    assert server.connections == 2  # the timed-out connection was closed, not reused


async def test_the_timeout_covers_the_wait_for_a_connection() -> None:
    """A request waiting behind a full pool times out too, and gives its place back."""
    release = asyncio.Event()

    async def held(request: bytes, writer: asyncio.StreamWriter) -> None:
        if b"/slow" in request:
            await release.wait()
        writer.write(answer(b"ok"))

    async with serving(held) as server:
        one = transport(server.port, pool_size=1, timeout=5)
        slow = asyncio.create_task(one.send(HttpRequest("GET", "/slow", None, (0,))))
        await server.got.wait()  # the only connection is taken
        hurried = transport(server.port, pool_size=1, timeout=0.2)
        hurried._pool = one._pool  # the same pool, a shorter timeout
        with pytest.raises(TransportError) as err:
            await hurried.send(HttpRequest("GET", "/next", None, (0,)))
        assert err.value.code == "TIMEOUT"
        assert [r for r in server.requests if b"/next" in r] == []  # it never left
        release.set()
        assert await slow == (200, b"ok")
        assert await one.send(HttpRequest("GET", "/after", None, (0,))) == (200, b"ok")
        await one.close()


async def test_no_more_connections_than_the_limit() -> None:
    gate = asyncio.Event()

    async def held(request: bytes, writer: asyncio.StreamWriter) -> None:
        await gate.wait()
        writer.write(answer(b"ok"))

    async with serving(held) as server:
        p = pool(server.port, limit=2)
        calls = [asyncio.create_task(p.request("GET", f"/{i}", None, connect_timeout=1))
                 for i in range(6)]  # fmt: skip
        while len(server.requests) < 2:
            server.got.clear()
            await server.got.wait()
        assert server.open_now == 2 and not any(c.done() for c in calls)
        gate.set()
        assert [status for status, _ in await asyncio.gather(*calls)] == [200] * 6
        p.close()
    assert server.most_open == 2 and len(server.requests) == 6


async def test_an_answer_that_is_not_http_fails_the_request() -> None:
    async def garbage(request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SMPP? \x00\x01\x02 not http\r\n\r\n")

    async with serving(garbage) as server:
        p = pool(server.port)
        with pytest.raises(ResponseFailed):
            await p.request("GET", "/", None, connect_timeout=1)
        p.close()


async def test_https_with_a_private_ca() -> None:
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    async with serving(echo_ok, tls=server_tls) as server:
        trusted = transport(server.port, scheme="https", path="/api", ssl_context=client_tls)
        status, body = await trusted.send(HttpRequest("POST", "/sms", b"{}", (0,)))
        await trusted.close()
        untrusted = transport(server.port, scheme="https", pool_size=1)
        with pytest.raises(TransportError) as err:  # the system's CAs do not know ours
            await untrusted.send(HttpRequest("POST", "/sms", b"{}", (0,)))
        await untrusted.close()
    assert status == 200 and body.startswith(b'{"ok":')
    assert server.requests[0].startswith(b"POST /api/sms HTTP/1.1\r\n")
    assert err.value.maybe_sent is False  # refused in the handshake: nothing left
