"""YCloud SMS wire format (seed 001, §1, §2.1 and the appendices).

Like Cloud Aten, one mobile per request with our ``uid``; the key goes in
``Authorization`` as it is, and a campaign may carry ``extend`` (digits only). A message
answered with status ``unaccepted`` was refused by YCloud.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from dispatcher.model import CampaignError, Status
from dispatcher.providers.base import BadPush, Inbound, SendJob, Verdict
from dispatcher.providers.capabilities import PushContext, Pushed, PushRoute
from dispatcher.providers.common import OneMobileCodec, plausible_ms, pushed_number

#: Appendix 1.code
CODES: dict[int, tuple[str, Verdict]] = {
    -2: ("NO_BASE_PRICE", Verdict.PERMANENT),
    -1: ("INVALID_API_KEY", Verdict.ACCOUNT),
    0: ("SUCCESS", Verdict.OK),
    1: ("ARGUMENT_MISSING", Verdict.PERMANENT),
    2: ("BAD_ARGUMENT", Verdict.PERMANENT),
    3: ("NO_BALANCE", Verdict.ACCOUNT),
}


#: Appendix 1.status, in our vocabulary.
STATUSES = {
    "unaccepted": Status.REJECTED,
    "accepted": Status.ACCEPTED,
    "failed": Status.FAILED,
    "delivering": Status.SENT,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "expired": Status.EXPIRED,
}


#: An inbound message's ``id``: it names the message in a key (``seen:ycloud:<id>``).
INBOUND_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)


def parse_inbound(body: bytes, now_ms: int | None = None) -> Inbound:
    """§2.4: ``{"id", "mobile", "text", "inbound_timestamp"}``; the id ASCII, the mobile
    digits, the time plausible (:func:`plausible_ms`)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadPush("body", "not JSON") from None
    if not isinstance(data, dict):
        raise BadPush("body", "not a JSON object")
    for name, kind in (("id", str), ("mobile", str), ("text", str), ("inbound_timestamp", int)):
        value = data.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadPush(name, f"is required and must be {kind.__name__}")
    if INBOUND_ID.fullmatch(data["id"]) is None:
        raise BadPush("id", "must be 1 to 128 ASCII letters, digits or ._:-")
    mobile = pushed_number(data["mobile"], "mobile")
    at = plausible_ms(data["inbound_timestamp"], "inbound_timestamp", now_ms)
    return Inbound("ycloud", data["id"], mobile, data["text"], at)


class YCloudCodec(OneMobileCodec):
    name = "ycloud"
    codes = CODES
    statuses = STATUSES
    push_time_field = "push_timestamp"
    list_path = "/v1/sms/list"
    page_param = "page"
    options: Mapping[str, type] = {"extend": str}

    def auth_header(self, api_key: str) -> dict[str, str]:
        return {"Authorization": api_key}

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        extend = options.get("extend")
        if extend is not None and not str(extend).isdigit():
            raise CampaignError("options.extend", "must be digits only")
        if signature:
            raise CampaignError("signature", "YCloud has no signature field")

    def extra_fields(self, job: SendJob) -> dict[str, Any]:
        extend = job.options.get("extend")
        return {"extend": str(extend)} if extend is not None else {}

    def push_routes(self) -> Mapping[str, PushRoute]:
        """Delivery reports (§2.2) and inbound SMS (§2.4, ``inbound_callback_url``)."""
        inbound = PushRoute("POST", self.parse_inbound_push, "inbound")
        return {**super().push_routes(), "inbound": inbound}

    def parse_inbound_push(self, body: bytes, query: Mapping[str, str], ctx: PushContext) -> Pushed:
        return Pushed(inbound=parse_inbound(body, int(ctx.now * 1000)))
