"""Errors as ``application/problem+json`` (RFC 9457), each naming the field when one is to
blame, and the middleware that turns our exceptions into them.

A ``type`` is a stable URN per kind of problem, so a client can branch on it without
parsing the words of ``detail``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.api.auth import Handler
from dispatcher.client import CampaignNotFound
from dispatcher.config import ConfigError
from dispatcher.model import CampaignError

log = logging.getLogger("dispatcher.api")

CONTENT_TYPE = "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    field: str | None = None,
    **extra: Any,
) -> web.Response:
    kind = kind or TITLES.get(status, "error").lower().replace(" ", "-")
    body: dict[str, Any] = {
        "type": f"urn:dispatcher:problem:{kind}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if field is not None:
        body["field"] = field
    body.update(extra)
    return web.Response(status=status, body=orjson.dumps(body), content_type=CONTENT_TYPE)


class Conflict(Exception):
    """The request cannot apply to the campaign as it stands (resuming a cancelled one)."""


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CampaignError as exc:
        return problem(422, exc.message, kind="invalid-field", field=exc.field)
    except CampaignNotFound as exc:
        return problem(404, str(exc), kind="no-campaign")
    except Conflict as exc:
        return problem(409, str(exc), kind="conflict")
    except ConfigError as exc:
        return problem(422, str(exc), kind="settings")
    except (RedisConnectionError, RedisTimeoutError):
        response = problem(503, "Redis is unreachable; try again shortly", kind="redis-down")
        response.headers["Retry-After"] = "5"
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(exc.status, exc.text or exc.reason)
        for header in ("Allow", "Retry-After"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except Exception:
        log.exception("api: %s %s failed", request.method, request.path)
        return problem(500, "the server failed; its log says why", kind="internal")
