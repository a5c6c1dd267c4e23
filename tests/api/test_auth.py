"""Bearer tokens: parsing ``DISPATCHER_API_TOKENS``, matching a header, and the middleware
that guards ``/v1`` of a real server while health, metrics, the document and the console's
page stay open."""

from __future__ import annotations

import asyncio
import hmac

import pytest

from dispatcher.api.auth import ENV, MIN_TOKEN_LENGTH, token_name, tokens_from_env
from dispatcher.config import ConfigError
from tests.api.conftest import AUTH, TOKEN, TOKENS, Api

SECRET = "s3cret-token-value-0123"


def test_tokens_are_read_by_name() -> None:
    raw = f" ci = {SECRET} ,billing=other-token-0123456789=="
    assert tokens_from_env({ENV: raw}) == {
        "ci": SECRET.encode(),
        "billing": b"other-token-0123456789==",  # a token may hold "=" (base64 padding)
    }


def test_tokens_come_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, f"ci={SECRET}")
    assert tokens_from_env() == {"ci": SECRET.encode()}
    monkeypatch.delenv(ENV)
    with pytest.raises(ConfigError, match=ENV):
        tokens_from_env()


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "set DISPATCHER_API_TOKENS"),
        ("   ", "set DISPATCHER_API_TOKENS"),
        (SECRET, "entry 1 is not name=token"),
        (f"ci={SECRET},{SECRET}", "entry 2 is not name=token"),
        (f"={SECRET}", "entry 1 is not name=token"),
        (f"ci={SECRET[: MIN_TOKEN_LENGTH - 1]}", "named 'ci' is shorter than 16 characters"),
        ("ci=", "named 'ci' is shorter"),
        (f"ci={SECRET},ci={SECRET}x", "the name 'ci' is given twice"),
    ],
)
def test_malformed_tokens_are_named_but_never_shown(raw: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        tokens_from_env({ENV: raw})
    message = str(info.value)
    assert words in message
    assert SECRET[: MIN_TOKEN_LENGTH - 1] not in message


def test_a_header_names_its_token() -> None:
    assert token_name(TOKENS, f"Bearer {TOKEN}") == "ci"
    assert token_name(TOKENS, "bearer   billing-token-0123456789  ") == "billing"
    assert token_name(TOKENS, f"BEARER {TOKEN}") == "ci"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN.upper()}",
        f"Bearer {TOKEN} {TOKEN}",
        "Bearer \udcff\udcfe",  # bytes that are not UTF-8, as aiohttp hands them over
    ],
)
def test_anything_else_names_no_token(header: str | None) -> None:
    assert token_name(TOKENS, header) is None


def test_every_token_is_compared_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)  # the module auth calls it from
    tokens = {f"t{i}": f"token-number-{i:04d}-abcdef".encode() for i in range(5)}
    assert token_name(tokens, "Bearer token-number-0000-abcdef") == "t0"  # the first matches
    assert compared == list(tokens.values())
    compared.clear()
    assert token_name(tokens, "Bearer nothing-like-any-of-them") is None
    assert compared == list(tokens.values())


async def assert_unauthorized(api: Api, path: str, headers: dict[str, str]) -> None:
    r = await api.get(path, headers=headers)
    assert r.status == 401
    assert r.content_type == "application/problem+json"
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="dispatcher"'
    body = await r.json(content_type=None)
    assert body["type"] == "urn:dispatcher:problem:unauthorized"
    assert body["status"] == 401
    assert TOKEN not in await r.text()


@pytest.mark.parametrize(
    "path", ["/v1/campaigns", "/v1/campaigns/nosuch", "/v1/inbound", "/v1/no-such-route"]
)
async def test_v1_needs_a_token(api: Api, path: str) -> None:
    await assert_unauthorized(api, path, {})
    await assert_unauthorized(api, path, {"Authorization": f"Bearer {TOKEN}x"})
    await assert_unauthorized(api, path, {"Authorization": f"Basic {TOKEN}"})


async def test_a_token_opens_v1(api: Api) -> None:
    r = await api.get("/v1/campaigns", headers=AUTH)
    assert r.status == 200
    assert await r.json() == {"items": [], "next_cursor": None}
    r = await api.get("/v1/campaigns", headers={"Authorization": "Bearer billing-token-0123456789"})
    assert r.status == 200


async def test_a_header_of_raw_bytes_is_refused_not_a_failure(api: Api) -> None:
    # Over a raw connection: the client library would not send bytes that are not UTF-8.
    assert api.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", api.server.port)
    writer.write(
        b"GET /v1/campaigns HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe"
        + TOKEN.encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
    await writer.drain()
    head = await reader.readline()
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 401 ")


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/healthz", "application/json"),
        ("/readyz", "application/json"),
        ("/metrics", "text/plain"),
        ("/openapi.json", "application/json"),
        ("/console", "text/html"),
    ],
)
async def test_open_paths_need_no_token(api: Api, path: str, content_type: str) -> None:
    r = await api.get(path)
    assert r.status == 200, await r.text()
    assert r.content_type == content_type
    assert "WWW-Authenticate" not in r.headers


async def test_the_document_is_served_as_shipped(api: Api) -> None:
    r = await api.get("/openapi.json")
    document = await r.json()
    assert document["openapi"].startswith("3.")
    assert "/v1/campaigns" in document["paths"]


async def test_an_open_prefix_does_not_open_v1_by_dot_segments(api: Api) -> None:
    assert api.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", api.server.port)
    writer.write(b"GET /healthz/../v1/campaigns HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert raw.startswith((b"HTTP/1.1 401 ", b"HTTP/1.1 404 "))
    assert b'"items"' not in raw
