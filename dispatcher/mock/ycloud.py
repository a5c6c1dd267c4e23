"""YCloud SMS, as its API document describes it (seed 001: §1.1–1.3, §2.1, §3.1, appendices).

The key comes in ``Authorization`` as it is; ``extend`` must be digits. YCloud's code table
has no JSON_PARSE_ERROR, so a body that is not JSON is a BAD_ARGUMENT.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from aiohttp import web

from dispatcher.mock.onemobile import OneMobileMock, Refusal


class YCloud(OneMobileMock):
    name = "ycloud"
    prefix = "/ycloud"
    final_words: ClassVar[dict[str, tuple[str, str | None]]] = {
        "delivered": ("delivered", None),
        "undelivered": ("undelivered", "OP:UNDELIV"),
        "expired": ("expired", None),
        "rejected": ("failed", "YC:20"),
    }
    on_the_way = "delivering"
    time_field = "push_timestamp"
    page_param = "page"

    def busy(self) -> web.Response:
        """YCloud's code table has no "busy": it answers 503."""
        return web.json_response({"error": "Service Unavailable"}, status=503)

    def key_of(self, request: web.Request) -> str:
        return request.headers.get("Authorization", "")

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") in self.state.settings.ycloud_keys

    def parse_body(self, raw: bytes) -> dict[str, Any]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise Refusal(2, "BAD_ARGUMENT The body is not a JSON object")
        return body

    def check_extra(self, body: dict[str, Any], region: str) -> None:
        extend = body.get("extend")
        if extend is not None and not (isinstance(extend, str) and extend.isdigit()):
            raise Refusal(2, "BAD_ARGUMENT The extend must be numbers only")
