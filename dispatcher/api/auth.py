"""Bearer tokens from the environment: ``DISPATCHER_API_TOKENS="ci=…,billing=…"``.

Each token has a name, so logs and metrics can say who asked without ever showing the
token. A presented token is compared with every configured one in constant time
(``hmac.compare_digest``), all of them each time, so how long the check takes says nothing
about which token came close.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from dispatcher.config import ConfigError

ENV = "DISPATCHER_API_TOKENS"
#: Shorter tokens are guessable: refuse them at start-up.
MIN_TOKEN_LENGTH = 16
#: Paths anyone may read: health, metrics, the document, and the console's page (its data
#: comes from /v1, which needs a token).
OPEN_PREFIXES = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/console")

#: The name of the token a request came with, for logs: never the token itself.
TOKEN_NAME = web.RequestKey("token_name", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tokens_from_env(environ: dict[str, str] | None = None) -> dict[str, bytes]:
    """Token name → token, from ``DISPATCHER_API_TOKENS``; a ConfigError naming the entry
    (never the token) when it is missing or malformed."""
    raw = (os.environ if environ is None else environ).get(ENV, "")
    if not raw.strip():
        raise ConfigError(f"set {ENV} to name=token pairs (comma-separated) to start the API")
    out: dict[str, bytes] = {}
    for position, entry in enumerate(raw.split(","), start=1):
        name, sep, token = entry.strip().partition("=")
        name, token = name.strip(), token.strip()
        if not sep or not name:
            raise ConfigError(f"{ENV}: entry {position} is not name=token")
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"{ENV}: the token named {name!r} is shorter than {MIN_TOKEN_LENGTH} characters"
            )
        if name in out:
            raise ConfigError(f"{ENV}: the name {name!r} is given twice")
        out[name] = token.encode()
    return out


def token_name(tokens: dict[str, bytes], header: str | None) -> str | None:
    """The name of the token an ``Authorization`` header carries, or None."""
    if not header:
        return None
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    given = presented.strip().encode(errors="surrogateescape")  # any bytes: 401, not 500
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(given, token) and found is None:
            found = name
    return found


def is_open(path: str) -> bool:
    return path == "/" or path.startswith(OPEN_PREFIXES)


def middleware(tokens: dict[str, bytes]) -> Middleware:
    from dispatcher.api.problems import problem

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request.path):
            return await handler(request)
        name = token_name(tokens, request.headers.get("Authorization"))
        if name is None:
            response = problem(401, "a valid Bearer token is required", kind="unauthorized")
            response.headers["WWW-Authenticate"] = 'Bearer realm="dispatcher"'
            return response
        request[TOKEN_NAME] = name
        return await handler(request)

    return check
