"""Cloud Aten SMS wire format (seed 000, §2.1 and Appendix 1).

One mobile per request. Our ``uid`` is ``<campaign id>.<recipient index>``: the provider
echoes it in delivery reports and list records, so a report finds its recipient without a
lookup table, and a takeover can ask which recipients the provider already has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from dispatcher.model import Status
from dispatcher.providers.base import ChunkRecipient, HttpRequest, Outcome, SendJob, Verdict

SEND_PATH = "/v1/sms/send_messages"

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


def uid(campaign_id: str, index: int) -> str:
    return f"{campaign_id}.{index}"


def parse_uid(value: str) -> tuple[str, int] | None:
    """The campaign id and recipient index carried by a ``uid``, or None if it is not ours."""
    campaign_id, _, index = value.rpartition(".")
    if not campaign_id or not index.isdigit():
        return None
    return campaign_id, int(index)


def http_outcome(status: int, body: bytes) -> Outcome | None:
    """The verdict for a non-200 answer; None when the body should be read as an answer.

    Shared by the Cloud Aten and YCloud style APIs: 401 carries the seed's
    ``{"message": "INVALID_API_KEY"}`` body; 404/403 mean a wrong base URL or a
    blocked account, which no retry mends, so they pause too.
    """
    if status == 200:
        return None
    if status == 401:
        code = "INVALID_API_KEY"
        try:
            data = orjson.loads(body)
            if isinstance(data, dict) and isinstance(data.get("message"), str):
                code = data["message"]
        except orjson.JSONDecodeError:
            pass
        return Outcome(Verdict.ACCOUNT, Status.FAILED, error_code=code, error="HTTP 401")
    if status in (403, 404):
        return Outcome(
            Verdict.ACCOUNT, Status.FAILED, error_code=f"HTTP_{status}", error=f"HTTP {status}"
        )
    if status == 429 or status >= 500:
        return Outcome(
            Verdict.RETRY, Status.FAILED, error_code=f"HTTP_{status}", error=f"HTTP {status}"
        )
    return Outcome(
        Verdict.PERMANENT, Status.FAILED, error_code=f"HTTP_{status}", error=f"HTTP {status}"
    )


def message_outcome(data: Any, codes: dict[int, tuple[str, Verdict]]) -> Outcome:
    """The verdict for a ``{"code", "msg", "data"}`` answer about one message."""
    if not isinstance(data, dict) or not isinstance(data.get("code"), int):
        return Outcome(
            Verdict.PERMANENT,
            Status.FAILED,
            error_code="BAD_RESPONSE",
            error="answer without a code; not resent, to avoid a double send",
        )
    code: int = data["code"]
    msg = str(data.get("msg", ""))
    if code == 0:
        message = data.get("data")
        if not isinstance(message, dict):
            message = {}
        sid = message.get("sid")
        count = message.get("count")
        price = message.get("price")
        return Outcome(
            Verdict.OK,
            Status.ACCEPTED,
            message_id=str(sid) if sid is not None else None,
            segments=count if isinstance(count, int) else None,
            price=float(price) if isinstance(price, int | float) else None,
        )
    name, verdict = codes.get(code, (f"CODE_{code}", Verdict.PERMANENT))
    status = Status.REJECTED if verdict is Verdict.PERMANENT else Status.FAILED
    return Outcome(verdict, status, error_code=name, error=msg or name)


class CloudAtenCodec:
    """Builds one ``send_messages`` request per recipient and reads its answer."""

    name = "cloudaten"

    def headers(self, api_key: str) -> dict[str, str]:
        return {"X-API-Key": api_key, "Content-Type": "application/json;charset=utf-8"}

    def build(self, job: SendJob, recipients: Sequence[ChunkRecipient]) -> list[HttpRequest]:
        base: dict[str, Any] = {"text": job.text}
        if job.signature:
            base["signature"] = job.signature
        if job.callback_url:
            base["callback_url"] = job.callback_url
        requests = []
        for pos, rcpt in enumerate(recipients):
            body = {"mobile": rcpt.number, "uid": uid(job.campaign_id, rcpt.index), **base}
            requests.append(HttpRequest("POST", SEND_PATH, orjson.dumps(body), (pos,)))
        return requests

    def parse(self, request: HttpRequest, status: int, body: bytes) -> list[Outcome]:
        outcome = http_outcome(status, body)
        if outcome is None:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = None
            outcome = message_outcome(data, CODES)
        return [outcome] * len(request.positions)
