"""What the API's handlers share through the application, and its JSON answers."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from dispatcher.client import Client

CLIENT = web.AppKey("client", Client)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
