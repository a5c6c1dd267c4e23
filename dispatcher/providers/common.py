"""The request/answer shape Cloud Aten and YCloud share: one mobile per JSON request,
answered by ``{"code", "msg", "data"}``, with a 401 body on a bad key.

The two providers differ in the auth header, a few fields and their code tables; each has a
small module that sets those and inherits the rest from :class:`OneMobileCodec`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dispatcher.model import Status
from dispatcher.providers.base import (
    BadPush,
    BuildContext,
    Built,
    ChunkRecipient,
    HttpRequest,
    Outcome,
    Report,
    SendJob,
    Verdict,
    map_status,
    split_e164,
)
from dispatcher.providers.capabilities import Listed, PushContext, Pushed, PushRoute
from dispatcher.render import render
from dispatcher.segments import measure


def uid(campaign_id: str, index: int) -> str:
    """Our ``uid``: echoed in reports and list records, it leads back to the recipient."""
    return f"{campaign_id}.{index}"


#: Our ``uid``: a campaign id (``store.new_campaign_id``: hex; any id safe in a key name)
#: and the recipient index, in ASCII digits written as ``str(int)`` does. Anything else, such
#: as ``c0ffee.²`` or ``c0ffee.１`` (which ``int()`` reads as 2 and 1), is not ours.
UID = re.compile(r"([A-Za-z0-9_-]{1,64})\.(0|[1-9][0-9]{0,9})", re.ASCII)
CAMPAIGN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
#: A number as pushed: E.164 with or without ``+`` (or ``00``), or national.
PUSHED_NUMBER = re.compile(r"(?:\+|00)?([0-9]{3,20})", re.ASCII)
#: A provider's message id (``sid``, ``SMS_UID``): printable ASCII, no spaces.
MESSAGE_ID = re.compile(r"[!-~]{1,64}", re.ASCII)
#: Pushed times outside [2000-01-01, now + a day] are not times the provider could mean.
EARLIEST_MS = 946_684_800_000
FUTURE_SLACK_MS = 24 * 3600 * 1000


def parse_uid(value: str) -> tuple[str, int] | None:
    """The campaign id and recipient index carried by a ``uid``, or None if it is not ours."""
    match = UID.fullmatch(value)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def plausible_ms(value: int, name: str, now_ms: int | None = None) -> int:
    """``value`` (Unix ms) if a provider could mean it; :class:`BadPush` naming ``name`` if it
    is negative, before 2000 or more than a day ahead (clocks drift, time zones mislead)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if not EARLIEST_MS <= value <= now + FUTURE_SLACK_MS:
        raise BadPush(name, "is not a plausible time (before 2000 or over a day ahead)")
    return value


def pushed_number(value: str, name: str) -> str:
    """A pushed phone number, as given, if it is ASCII digits (``+`` first at most)."""
    if PUSHED_NUMBER.fullmatch(value) is None:
        raise BadPush(name, "must be 3 to 20 ASCII digits, with an optional leading +")
    return value


def same_number(pushed: str, sent: str) -> bool:
    """Whether a pushed number is the one we sent to (E.164): the same digits in full, or
    its national form (significant number, with or without the trunk 0), as lists and
    Smsclouds write it. A number that is not digits is never the same."""
    if not sent.startswith("+"):
        return pushed == sent  # not a phone number (an e-mail address): as stored
    match = PUSHED_NUMBER.fullmatch(pushed)
    if match is None:
        return False
    digits = match.group(1)
    if digits == sent[1:]:
        return True
    try:
        _, national = split_e164(sent)
    except ValueError:
        return False
    return digits in (national, f"0{national}")


def http_outcome(status: int, body: bytes) -> Outcome | None:
    """The verdict for a non-200 answer; None when the body should be read as an answer.

    401 carries ``{"message": "INVALID_API_KEY"}``; 404/403 mean a wrong base URL or a
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
    code, error = f"HTTP_{status}", f"HTTP {status}"
    if status in (403, 404):
        return Outcome(Verdict.ACCOUNT, Status.FAILED, error_code=code, error=error)
    if status == 429 or status >= 500:
        return Outcome(Verdict.RETRY, Status.FAILED, error_code=code, error=error)
    return Outcome(Verdict.PERMANENT, Status.FAILED, error_code=code, error=error)


def message_outcome(data: Any, codes: Mapping[int, tuple[str, Verdict]]) -> Outcome:
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
        status = str(message.get("status", "accepted")).lower()
        if status in ("unaccepted", "failed"):
            return Outcome(
                Verdict.PERMANENT,
                Status.REJECTED if status == "unaccepted" else Status.FAILED,
                message_id=_str(message.get("sid")),
                error_code=status.upper(),
                error=msg or status,
            )
        count, price = message.get("count"), message.get("price")
        return Outcome(
            Verdict.OK,
            Status.ACCEPTED,
            message_id=_str(message.get("sid")),
            segments=count if isinstance(count, int) else None,
            price=float(price) if isinstance(price, int | float) else None,
        )
    name, verdict = codes.get(code, (f"CODE_{code}", Verdict.PERMANENT))
    status_ = Status.REJECTED if verdict is Verdict.PERMANENT else Status.FAILED
    return Outcome(verdict, status_, error_code=name, error=msg or name)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


class OneMobileCodec:
    """One ``send_messages`` request per recipient; the text rendered for each."""

    name: str
    kind = "sms"
    number_spacing_seconds = 0.0
    dedupe = True
    address = "phone"
    send_path = "/v1/sms/send_messages"
    codes: Mapping[int, tuple[str, Verdict]]
    options: Mapping[str, type] = {}
    max_chunk: int | None = None
    per_request: int | None = 1
    queries: Mapping[str, str] = {"balance": "/v1/account/balance"}
    statuses: Mapping[str, Status]
    push_time_field: str
    list_path: str
    page_param: str
    list_page_size = 5000  # the seeds' most

    def auth_header(self, api_key: str) -> dict[str, str]:
        raise NotImplementedError

    def headers(self, api_key: str) -> dict[str, str]:
        return {**self.auth_header(api_key), "Content-Type": "application/json;charset=utf-8"}

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        return None

    def extra_fields(self, job: SendJob) -> dict[str, Any]:
        return {}

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        return measure(text).segments

    def build(
        self, job: SendJob, recipients: Sequence[ChunkRecipient], ctx: BuildContext
    ) -> Built[HttpRequest]:
        base: dict[str, Any] = self.extra_fields(job)
        if job.callback_url:
            base["callback_url"] = job.callback_url
        built: Built[HttpRequest] = Built()
        for pos, rcpt in enumerate(recipients):
            body = {
                "mobile": rcpt.number,
                "text": render(job.text, rcpt.fields),
                "uid": uid(job.campaign_id, rcpt.index),
                **base,
            }
            built.requests.append(HttpRequest("POST", self.send_path, orjson.dumps(body), (pos,)))
        return built

    def list_request(self, page: int, start_ms: int, until_ms: int) -> str:
        """The GET path of one page of the records created in ``[start_ms, until_ms]``."""
        return (
            f"{self.list_path}?{self.page_param}={page}&page_size={self.list_page_size}"
            f"&from={start_ms}&until={until_ms}"
        )

    def sent_text(self, text: str, fields: dict[str, str] | None) -> str:
        """What a list record shows of one recipient's message: its rendered text (the
        provider may put the signature in front)."""
        return render(text, fields)

    def parse_listed(self, body: bytes) -> list[Listed]:
        """A list page's records; :class:`BadPush` if the provider refused the call."""
        reports = parse_list(body, self.statuses)
        data = orjson.loads(body)
        items = [
            i
            for i in data.get("data") or []
            if isinstance(i, dict) and isinstance(i.get("sid"), str)
        ]
        out = []
        for report, item in zip(reports, items, strict=True):
            text = item.get("text", item.get("verification_code", ""))
            created, count, price = (
                item.get("create_timestamp"), item.get("count"), item.get("price")
            )  # fmt: skip
            out.append(
                Listed(
                    report=report,
                    mobile=str(item.get("mobile", "")),
                    text=str(text),
                    created_ms=created if isinstance(created, int) else None,
                    segments=count if isinstance(count, int) else None,
                    price=float(price) if isinstance(price, int | float) else None,
                )
            )
        return out

    def parse(self, request: HttpRequest, status: int, body: bytes) -> list[Outcome]:
        outcome = http_outcome(status, body)
        if outcome is None:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = None
            outcome = message_outcome(data, self.codes)
        return [outcome] * len(request.positions)

    # -- capabilities (capabilities.py): Pushes, Balance -----------------------------------

    balance_query = "balance"

    def push_routes(self) -> Mapping[str, PushRoute]:
        """The ``callback_url`` a delivery report is POSTed to (answered ``ok``)."""
        return {"dlr": PushRoute("POST", self.parse_report_push)}

    def parse_report_push(self, body: bytes, query: Mapping[str, str], ctx: PushContext) -> Pushed:
        """A pushed delivery report, with this codec's statuses and time field."""
        report = parse_push(body, self.statuses, self.push_time_field, int(ctx.now * 1000))
        return Pushed(reports=(report,))

    def push_refusal(self, body: bytes, busy: bool, now: float) -> tuple[bytes, str] | None:
        """None: the HTTP status says it (anything but 200 is pushed again)."""
        return None

    def balance_of(self, answer: Any) -> float | None:
        """``amount`` of the balance answer: in ``data``, or the object on its own (the
        seeds show both)."""
        if not isinstance(answer, dict):
            return None
        data = answer.get("data", answer)
        value = data.get("amount") if isinstance(data, dict) else None
        return amount(answer.get("amount") if value is None else value)


def amount(value: Any) -> float | None:
    """A JSON number as a float (an account's credit); None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _field(data: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = data.get(name)
    if value is None:
        if required:
            raise BadPush(name, "is required")
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadPush(name, f"must be {kind.__name__}")
    return value


def parse_push(
    body: bytes, statuses: Mapping[str, Status], time_field: str, now_ms: int | None = None
) -> Report:
    """A delivery report pushed as ``{"sid", "status", <time_field>, "mobile", "uid"?, …}``.

    Cloud Aten calls the time ``status_timestamp`` and YCloud ``push_timestamp``. Every
    field that names the message is checked to be what we could have sent: a ``uid`` that
    is not ours (non-ASCII digits included), a number that is not digits, an implausible
    time are refused here, before anything looks the recipient up.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadPush("body", "not JSON") from None
    if not isinstance(data, dict):
        raise BadPush("body", "not a JSON object")
    sid = _field(data, "sid", str)
    if MESSAGE_ID.fullmatch(sid) is None:
        raise BadPush("sid", "must be 1 to 64 printable ASCII characters")
    raw = _field(data, "status", str)
    if len(raw) > 32:
        raise BadPush("status", "longer than 32 characters")
    at = plausible_ms(_field(data, time_field, int), time_field, now_ms)
    mobile = pushed_number(_field(data, "mobile", str), "mobile")
    given = _field(data, "uid", str, required=False) or ""
    ours = parse_uid(given)
    if given and ours is None:
        raise BadPush("uid", "is not one of ours (<campaign>.<index>, ASCII digits)")
    return Report(
        status=map_status(raw, statuses),
        raw_status=raw,
        message_id=sid,
        campaign_id=ours[0] if ours else None,
        index=ours[1] if ours else None,
        number=mobile,
        error_code=_field(data, "error_code", str, required=False),
        error=_field(data, "error_msg", str, required=False),
        at=at,
    )


def parse_list(body: bytes, statuses: Mapping[str, Status]) -> list[Report]:
    """The message objects of a ``/v1/sms/list`` page. They carry no ``uid``: they are
    matched to recipients by ``sid``."""
    data = orjson.loads(body)
    if not isinstance(data, dict) or data.get("code") != 0:
        raise BadPush("code", f"list call refused: {str(data)[:200]}")
    reports = []
    for item in data.get("data") or []:
        if not isinstance(item, dict) or not isinstance(item.get("sid"), str):
            continue
        raw = str(item.get("status", ""))
        at = item.get("status_timestamp") or item.get("push_timestamp") or None
        reports.append(
            Report(
                status=map_status(raw, statuses),
                raw_status=raw,
                message_id=item["sid"],
                number=item.get("mobile"),
                error_code=item.get("error_code"),
                at=at if isinstance(at, int) else None,
            )
        )
    return reports
