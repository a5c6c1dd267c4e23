"""Cloud Aten SMS wire format (seed 000, §2.1 and Appendix 1).

One mobile per request, key in ``X-API-Key``. Our ``uid`` is ``<campaign id>.<recipient
index>``: the provider echoes it in delivery reports and list records, so a report finds
its recipient without a lookup table. A campaign signature goes in ``signature``; Cloud
Aten puts it in front of the text as 【signature】 (required for mainland China).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatcher.model import Status
from dispatcher.providers.base import SendJob, Verdict
from dispatcher.providers.common import OneMobileCodec, parse_uid, uid
from dispatcher.segments import measure

__all__ = ["CODES", "CloudAtenCodec", "parse_uid", "uid"]

#: Appendix 1: code → (name, verdict). Account-level codes pause the campaign rather than
#: failing every recipient; UNKNOWN_ERROR is the provider's own transient failure.
CODES: dict[int, tuple[str, Verdict]] = {
    -101: ("JSON_PARSE_ERROR", Verdict.PERMANENT),
    -100: ("UNKNOWN_ERROR", Verdict.RETRY),
    -3: ("NO_CURRENCY_SETTING", Verdict.ACCOUNT),
    -2: ("NO_BASE_PRICE", Verdict.PERMANENT),
    -1: ("INVALID_API_KEY", Verdict.ACCOUNT),
    0: ("SUCCESS", Verdict.OK),
    1: ("ARGUMENT_MISSING", Verdict.PERMANENT),
    2: ("BAD_ARGUMENT", Verdict.PERMANENT),
    3: ("NO_BALANCE", Verdict.ACCOUNT),
    52: ("SENSITIVE_WORD", Verdict.PERMANENT),
}


#: Appendix 2 (and "delivering" from the list example), in our vocabulary.
STATUSES = {
    "accepted": Status.ACCEPTED,
    "sent": Status.SENT,
    "delivering": Status.SENT,
    "delivered": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
}


class CloudAtenCodec(OneMobileCodec):
    name = "cloudaten"
    codes = CODES
    statuses = STATUSES
    push_time_field = "status_timestamp"
    list_path = "/v1/sms/list"
    page_param = "page_no"

    def auth_header(self, api_key: str) -> dict[str, str]:
        return {"X-API-Key": api_key}

    def extra_fields(self, job: SendJob) -> dict[str, Any]:
        return {"signature": job.signature} if job.signature else {}

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        """Cloud Aten puts 【signature】 in front of the text, and bills it."""
        return measure(f"【{signature}】{text}" if signature else text).segments
