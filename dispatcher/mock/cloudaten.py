"""Cloud Aten SMS, as its API document describes it (seed 000: §1.2, §2.1, §4.1, Appendix 1).

A body not sent as ``Content-Type: application/json`` (§1) is a JSON_PARSE_ERROR (-101);
a parameter §2.1 does not list, or one that is not a String, is a BAD_ARGUMENT (2).

Written from the document alone, never from our client codec, so that each checks the other.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

from dispatcher.mock.onemobile import OneMobileMock, Refusal


class CloudAten(OneMobileMock):
    name = "cloudaten"
    prefix = "/cloudaten"
    # Appendix 2 has no "expired" status: Appendix 3 reports expiry as undelivered EXPIRED_*.
    final_words: ClassVar[dict[str, tuple[str, str | None]]] = {
        "delivered": ("delivered", None),
        "undelivered": ("undelivered", "UNDELIV_0001"),
        "expired": ("undelivered", "EXPIRED_0027"),
        "rejected": ("failed", "YC:NOOP"),
    }
    on_the_way = "sent"
    time_field = "status_timestamp"
    page_param = "page_no"
    parameters = frozenset({"mobile", "text", "signature", "uid", "callback_url"})  # §2.1

    def key_of(self, request: web.Request) -> str:
        return request.headers.get("X-API-Key", "")

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("X-API-Key") in self.state.settings.cloudaten_keys

    def check_extra(self, body: dict[str, Any], region: str) -> None:
        signature = body.get("signature")
        if region == "CN" and not signature:
            raise Refusal(2, "BAD_ARGUMENT The signature is required for Chinese mainland SMS")

    def text_of(self, body: dict[str, Any]) -> str:
        """§2.1: the signature goes in front of the text, wrapped in 【】."""
        signature = body.get("signature")
        return f"【{signature}】{body['text']}" if signature else str(body["text"])
