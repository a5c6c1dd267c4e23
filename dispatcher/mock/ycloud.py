"""YCloud SMS, as its API document describes it (seed 001: §1.1–1.3, §2.1, §3.1, appendices).

The key comes in ``Authorization`` as it is; ``extend`` must be digits. YCloud's code table
has no JSON_PARSE_ERROR, so a body that is not JSON, or not sent as ``Content-Type:
application/json`` (§1), is a BAD_ARGUMENT; so is a parameter §2.1 does not list.
"""

from __future__ import annotations

from typing import Any, ClassVar

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
    default_page_size = 100  # §2.3: "Default value is 100,5000 at max"
    parameters = frozenset({"mobile", "text", "uid", "callback_url", "extend"})  # §2.1

    def busy(self) -> web.Response:
        """YCloud's code table has no "busy": it answers 503."""
        return web.json_response({"error": "Service Unavailable"}, status=503)

    def key_of(self, request: web.Request) -> str:
        return request.headers.get("Authorization", "")

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") in self.state.settings.ycloud_keys

    def not_json(self) -> Refusal:
        return Refusal(2, "BAD_ARGUMENT The body is not a JSON object")

    def check_extra(self, body: dict[str, Any], region: str) -> None:
        extend = body.get("extend")
        if isinstance(extend, str) and not (extend.isascii() and extend.isdigit()):
            raise Refusal(2, "BAD_ARGUMENT The extend must be numbers only")
