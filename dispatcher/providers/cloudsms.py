"""CloudSMS UIP wire format (seed 002): one ``SMS_SEND_REQUEST`` packet per request.

A packet carries up to 200 numbers that share one text, so recipients are grouped by their
rendered text. Each number is split into ``COUNTRY_CODE`` and ``DEST_MSISDN``; ``SERIAL``
counts 1…65535 and wraps; ``TIME`` is UTC+8. ``CUSTOMER_BODY`` carries our campaign and
chunk, and comes back unchanged in every delivery report.

The seed's number rules are applied before sending: mainland China numbers must have 11
digits (else Invalid_parameter), Singapore numbers must have 8 digits and start with 8 or 9
(else the platform rejects them locally, LOCAL_REJECTED).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from dispatcher.model import CampaignError, Status
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
    refused,
    split_e164,
)
from dispatcher.providers.capabilities import PushContext, Pushed, PushRoute
from dispatcher.providers.common import CAMPAIGN_ID, plausible_ms
from dispatcher.render import render
from dispatcher.segments import measure

PATH = "/dave/io"
VERSION = "2021-01-01"
MAX_NUMBERS = 200
SERIAL_MAX = 65535
UTC8 = 8 * 3600

OK = 0x01
#: RESULT_CODE → (RESULT_DESC, verdict, come back later). The seed's table; "later" codes
#: ask to try again in 10 minutes (configurable as the provider's retry_later_seconds).
CODES: dict[int, tuple[str, Verdict, bool]] = {
    0x01: ("OK", Verdict.OK, False),
    0x02: ("Unknown_error", Verdict.RETRY, False),
    0x03: ("Busy", Verdict.RETRY, True),
    0x04: ("Empty_data", Verdict.PERMANENT, False),
    0x05: ("Channel_not_exist", Verdict.ACCOUNT, False),
    0x10000001: ("Invalid_parameter", Verdict.PERMANENT, False),
    0x10000003: ("Invalid_context", Verdict.PERMANENT, False),
    0x10000004: ("Send_failed", Verdict.PERMANENT, False),
    0x10000005: ("Queue_too_large", Verdict.RETRY, True),
    0x10000006: ("Intercept", Verdict.RETRY, True),
    0x10000007: ("Lost_info", Verdict.PERMANENT, False),
    0x1000000D: ("Empty_data", Verdict.PERMANENT, False),
    0x1000000E: ("DB_not_find", Verdict.RETRY, True),
    0x1000000F: ("Unpriced_area", Verdict.PERMANENT, False),
    0x10000010: ("Invalid_Version", Verdict.ACCOUNT, False),
}
#: Refused for this recipient (its number or its text), rather than failed.
RECIPIENT_FAULTS = {0x10000001, 0x10000003, 0x1000000F}

SIGNATURE_FORMS = {
    1: "【{s}】{t}",
    2: "{t}【{s}】",
    3: "[{s}] {t}",
    4: "{t}[{s}]",
    5: "{t}",  # the text already carries it
}


def uip_time(now: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC+8 (Beijing / Hong Kong time)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + UTC8))


def number_rule(country: int, national: str) -> Outcome | None:
    """The seed's local number rules; None when the number may be sent."""
    if country == 86 and len(national) != 11:
        return refused("Invalid_parameter", "mainland China numbers have 11 digits")
    if country == 65 and (len(national) != 8 or national[0] not in "89"):
        return refused("LOCAL_REJECTED", "Singapore numbers have 8 digits and start with 8 or 9")
    return None


def _by_number(items: list[Any]) -> dict[tuple[int, str], dict[str, Any]]:
    """DETAIL_LIST entries by (country code, number): for an answer in another order."""
    by_number: dict[tuple[int, str], dict[str, Any]] = {}
    for item in items:
        if isinstance(item, dict):
            cc = as_code(item.get("COUNTRY_CODE"))
            by_number[(cc or 0, str(item.get("DEST_MSISDN", "")))] = item
    return by_number


def as_code(value: Any) -> int | None:
    """RESULT_CODE as an int; the seed writes them in hex, so accept "0x…" strings too."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return None
    return None


def _code(value: Any) -> int | None:
    """:func:`as_code`, with no call for the int the platform writes."""
    return value if type(value) is int else as_code(value)


def classify(code: int | None, desc: str) -> Outcome:
    if code is None:
        return Outcome(Verdict.PERMANENT, Status.FAILED, error_code="BAD_RESPONSE", error=desc)
    name, verdict, later = CODES.get(code, (f"CODE_{code:#x}", Verdict.PERMANENT, False))
    if verdict is Verdict.OK:
        return Outcome(Verdict.OK, Status.ACCEPTED)
    status = Status.REJECTED if code in RECIPIENT_FAULTS else Status.FAILED
    return Outcome(verdict, status, error_code=name, error=desc or name, later=later)


class CloudSmsCodec:
    name = "cloudsms"
    options: Mapping[str, type] = {
        "route_id": str,
        "signature_type": int,
        "priority": int,
        "original_addr": str,
    }
    kind = "sms"
    number_spacing_seconds = 0.0
    dedupe = True
    address = "phone"
    max_chunk: int | None = None
    per_request: int | None = MAX_NUMBERS
    queries: Mapping[str, str] = {}

    def headers(self, api_key: str) -> dict[str, str]:
        return {"Content-Type": "application/json;charset=utf-8"}  # AUTH_KEY is in the body

    def content(self, text: str, signature: str | None, options: Mapping[str, Any]) -> str:
        """The text as the handset will show it, signature included."""
        if not signature:
            return text
        form = SIGNATURE_FORMS[int(options.get("signature_type", 1))]
        return form.format(s=signature, t=text)

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        return measure(self.content(text, signature, options)).segments

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        if not options.get("route_id"):
            raise CampaignError("options.route_id", "is required for CloudSMS")
        sig_type = options.get("signature_type", 1)
        if sig_type not in SIGNATURE_FORMS:
            raise CampaignError("options.signature_type", "must be 1, 2, 3, 4 or 5")
        if signature and len(signature.encode()) > 64:
            raise CampaignError("signature", "longer than CloudSMS's 64 bytes")
        if options.get("priority", 0) not in (0, 1):
            raise CampaignError("options.priority", "must be 0 (normal) or 1 (high)")
        if len(str(options.get("original_addr", "")).encode()) > 32:
            raise CampaignError("options.original_addr", "longer than 32 bytes")
        length = measure(self.content(text, signature, options))
        if length.too_long:
            raise CampaignError("text", f"{length.segments} segments; CloudSMS sends at most 10")

    def build(
        self, job: SendJob, recipients: Sequence[ChunkRecipient], ctx: BuildContext
    ) -> Built[HttpRequest]:
        built: Built[HttpRequest] = Built()
        groups: dict[str, list[tuple[int, int, str]]] = {}
        too_long: dict[str, bool] = {}  # per distinct text: most campaigns have one
        plain = render(job.text, None)  # the text of every recipient without fields
        for pos, rcpt in enumerate(recipients):
            country, national = split_e164(rcpt.number)
            rule = number_rule(country, national)
            if rule is not None:
                built.refused[pos] = rule
                continue
            text = render(job.text, rcpt.fields) if rcpt.fields else plain
            long = too_long.get(text)
            if long is None:
                content = self.content(text, job.signature, job.options)
                long = too_long[text] = measure(content).too_long
            if long:
                built.refused[pos] = refused("Invalid_context", "text longer than 10 segments")
                continue
            groups.setdefault(text, []).append((pos, country, national))
        for text, members in groups.items():
            for start in range(0, len(members), MAX_NUMBERS):
                part = members[start : start + MAX_NUMBERS]
                body = self.packet(job, ctx, text, [(c, n) for _, c, n in part])
                positions = tuple(p for p, _, _ in part)
                built.requests.append(HttpRequest("POST", PATH, orjson.dumps(body), positions))
        return built

    def packet(
        self, job: SendJob, ctx: BuildContext, text: str, numbers: list[tuple[int, str]]
    ) -> dict[str, Any]:
        """One SMS_SEND_REQUEST. The signature is sent apart: the platform places it."""
        packet: dict[str, Any] = {
            "METHOD": "SMS_SEND_REQUEST",
            "TYPE": "REQUEST",
            "SERIAL": ctx.serial(),
            "TIME": uip_time(ctx.now),
            "AUTH_KEY": ctx.api_key,
            "ROUTE_ID": str(job.options["route_id"]),
            "MULTI_MSISDN_LIST": [{"DEST_MSISDN": n, "COUNTRY_CODE": c} for c, n in numbers],
            "SMS_CONTENT": text,
            "VERSION": VERSION,
            "PRIORITY": int(job.options.get("priority", 0)),
            "CUSTOMER_BODY": {"campaign": job.campaign_id, "chunk": job.chunk},
        }
        if job.signature:
            packet["SIGNATURE"] = job.signature
            packet["SIGNATURE_TYPE"] = int(job.options.get("signature_type", 1))
        if job.options.get("original_addr"):
            packet["ORIGINAL_ADDR"] = str(job.options["original_addr"])
        return packet

    def parse(self, request: HttpRequest, status: int, body: bytes) -> list[Outcome]:
        n = len(request.positions)
        if status != 200:
            verdict = (
                Verdict.RETRY
                if status == 429 or status >= 500
                else Verdict.ACCOUNT
                if status in (401, 403, 404)
                else Verdict.PERMANENT
            )
            return [Outcome(verdict, Status.FAILED, error_code=f"HTTP_{status}")] * n
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            return [classify(None, "answer is not a UIP packet")] * n
        code = as_code(answer.get("RESULT_CODE"))
        desc = str(answer.get("RESULT_DESC", "")).strip("'")
        if code != OK:
            return [classify(code, desc)] * n
        return self._per_number(request, answer.get("DETAIL_LIST"))

    def _per_number(self, request: HttpRequest, details: Any) -> list[Outcome]:
        # The body again, not numbers kept beside it: a chunk's packets wait for their
        # answers together, and 32 chunks' numbers as dicts held some 8 MB (bench_memory).
        sent = orjson.loads(request.body or b"{}")["MULTI_MSISDN_LIST"]
        items = details if isinstance(details, list) else []
        if len(items) != len(sent):  # not as the platform answers: look each one up
            items = [None] * len(sent)
        by_number: dict[tuple[int, str], dict[str, Any]] | None = None
        outcomes: list[Outcome] = []
        append = outcomes.append
        ok, accepted = Verdict.OK, Status.ACCEPTED
        for number, answered in zip(sent, items, strict=True):
            # In order, as the platform answers: then no lookup (ints, as it writes them).
            item = answered
            if not (
                type(item) is dict
                and item.get("DEST_MSISDN") == number["DEST_MSISDN"]
                and _code(item.get("COUNTRY_CODE")) == number["COUNTRY_CODE"]
            ):
                if by_number is None:
                    by_number = _by_number(details if isinstance(details, list) else [])
                item = by_number.get((number["COUNTRY_CODE"], number["DEST_MSISDN"]))
            if item is None:
                append(
                    Outcome(
                        Verdict.PERMANENT,
                        Status.FAILED,
                        error_code="MISSING_IN_ANSWER",
                        error="the answer has no result for this number; not resent",
                    )
                )
                continue
            uid = item.get("SMS_UID")
            message_id = (uid if type(uid) is str else str(uid)).strip("*") if uid else None
            code = _code(item.get("RESULT_CODE"))
            if code == OK:  # the common case, kept cheap
                append(Outcome(ok, accepted, message_id))
                continue
            outcome = classify(code, str(item.get("RESULT_DESC", "")).strip("'"))
            append(replace(outcome, message_id=message_id))
        return outcomes

    # -- capabilities (capabilities.py): Pushes ---------------------------------------------

    def push_routes(self) -> Mapping[str, PushRoute]:
        """The DR server: SMS_PUSH_REPORT packets by POST (seed 002, "Delivery Report")."""
        return {"dlr": PushRoute("POST", self.parse_report_push)}

    def parse_report_push(self, body: bytes, query: Mapping[str, str], ctx: PushContext) -> Pushed:
        """The packet's reports, answered by an ANSWER packet echoing its SERIAL: the
        platform reads that packet, not the HTTP status."""
        serial, reports = parse_report_packet(body, int(ctx.now * 1000))
        answer = answer_packet(serial, ctx.now)
        return Pushed(reports=reports, answer=answer, content_type="application/json")

    def push_refusal(self, body: bytes, busy: bool, now: float) -> tuple[bytes, str] | None:
        """An ANSWER echoing the SERIAL with Invalid_parameter (refused) or Busy (storage
        unavailable); None when the body has no valid SERIAL to echo."""
        serial = serial_of(body)
        if serial is None:
            return None
        code = BUSY if busy else INVALID_PARAMETER
        return answer_packet(serial, now, code), "application/json"


#: SMS_STATE of a delivery report, in our vocabulary.
STATES: dict[int, Status] = {
    1: Status.SENT,  # ENROUTE
    2: Status.DELIVERED,
    3: Status.EXPIRED,
    4: Status.FAILED,  # DELETED
    5: Status.UNDELIVERED,  # UNDELIVERABLE
    6: Status.DELIVERED,  # ACCEPTED: received (read on the user's behalf)
    7: Status.FAILED,  # UNKNOWN: "invalid message status", CloudSMS's last word
    8: Status.REJECTED,
    9: Status.SENT,  # IDLE: being processed
    60: Status.REJECTED,  # LOCAL_REJECTED
}
STATE_NAMES = {
    1: "ENROUTE", 2: "DELIVERED", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIVERABLE",
    6: "ACCEPTED", 7: "UNKNOWN", 8: "REJECTED", 9: "IDLE", 60: "LOCAL_REJECTED",
}  # fmt: skip


#: SMS_UID as the seed shows it (30 hex-like characters), ``*``-wrapped in some answers.
SMS_UID = re.compile(r"\*?[0-9A-Za-z]{1,64}\*?", re.ASCII)
DEST_MSISDN = re.compile(r"[0-9]{1,32}", re.ASCII)  # "non-numeric or longer than 32 bytes"
UIP_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
#: RESULT_CODE of the ANSWER to a report packet we refuse: the seed's parameter error.
INVALID_PARAMETER = 0x10000001
#: … and of one we cannot store now: the platform is busy, try again later.
BUSY = 0x03


def _uip_ms(p: dict[str, Any], name: str, now_ms: int | None) -> int | None:
    """A UTC+8 ``YYYY-MM-DD HH:MM:SS`` field as Unix ms (None: absent), or BadPush."""
    value = p.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or UIP_TIME.fullmatch(value) is None:
        raise BadPush(name, "must be YYYY-MM-DD HH:MM:SS")
    try:
        parsed = time.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise BadPush(name, "is not a calendar time") from None
    return plausible_ms((calendar.timegm(parsed) - UTC8) * 1000, name, now_ms)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def serial_of(body: bytes) -> int | None:
    """The SERIAL of a packet, if it has a valid one: a refused packet is answered with it."""
    try:
        p = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    serial = _int(p.get("SERIAL")) if isinstance(p, dict) else None
    return serial if serial is not None and 1 <= serial <= SERIAL_MAX else None


def _ours(p: dict[str, Any]) -> tuple[str | None, int | None]:
    """The campaign and chunk our CUSTOMER_BODY carries; (None, None) when it is empty or
    absent (not a message of ours), BadPush when it names them in a form we never send."""
    body = p.get("CUSTOMER_BODY")
    if body is None or body == {}:
        return None, None
    if not isinstance(body, dict):
        raise BadPush("CUSTOMER_BODY", "must be an object")
    campaign, chunk = body.get("campaign"), _int(body.get("chunk"))
    if not isinstance(campaign, str) or CAMPAIGN_ID.fullmatch(campaign) is None:
        raise BadPush("CUSTOMER_BODY.campaign", "is not one of our campaign ids")
    if chunk is None or not 0 <= chunk < 2**31:
        raise BadPush("CUSTOMER_BODY.chunk", "must be a chunk number")
    return campaign, chunk


def parse_report_packet(body: bytes, now_ms: int | None = None) -> tuple[int, list[Report]]:
    """An ``SMS_PUSH_REPORT`` packet: its SERIAL and a report per SMS_RESULT_LIST entry.

    Every field that names the message is checked to be what we could have sent (ASCII
    digits, our CUSTOMER_BODY, plausible times); anything else refuses the whole packet.
    """
    try:
        p = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadPush("body", "not JSON") from None
    if not isinstance(p, dict):
        raise BadPush("body", "not a UIP packet")
    if str(p.get("METHOD", "")).strip() != "SMS_PUSH_REPORT":
        raise BadPush("METHOD", "must be SMS_PUSH_REPORT")
    if str(p.get("TYPE", "")).strip() != "REQUEST":
        raise BadPush("TYPE", "must be REQUEST")
    serial = _int(p.get("SERIAL"))
    if serial is None or not 1 <= serial <= SERIAL_MAX:
        raise BadPush("SERIAL", "must be 1…65535")
    uid = p.get("SMS_UID")
    if not isinstance(uid, str) or SMS_UID.fullmatch(uid) is None:
        raise BadPush("SMS_UID", "is required: up to 64 ASCII letters and digits")
    results = p.get("SMS_RESULT_LIST")
    if not isinstance(results, list) or not results or len(results) > MAX_NUMBERS:
        raise BadPush("SMS_RESULT_LIST", "must be a list of 1 to 200 entries")
    campaign, chunk = _ours(p)
    sent_at = _uip_ms(p, "TIME", now_ms)  # required by the seed
    if sent_at is None:
        raise BadPush("TIME", "is required")
    at = _uip_ms(p, "REPORT_TIME", now_ms) or sent_at
    reports = []
    for i, item in enumerate(results):
        where = f"SMS_RESULT_LIST[{i}]"
        if not isinstance(item, dict):
            raise BadPush(where, "must be an object")
        cc, state = _int(item.get("COUNTRY_CODE")), _int(item.get("SMS_STATE"))
        dest = item.get("DEST_MSISDN")
        if cc is None or not 1 <= cc <= 999:
            raise BadPush(f"{where}.COUNTRY_CODE", "must be a calling code (1…999)")
        if not isinstance(dest, str) or DEST_MSISDN.fullmatch(dest) is None:
            raise BadPush(f"{where}.DEST_MSISDN", "must be 1 to 32 ASCII digits")
        if state is None:
            raise BadPush(f"{where}.SMS_STATE", "must be an integer")
        reports.append(
            Report(
                status=STATES.get(state, Status.SENT),
                raw_status=STATE_NAMES.get(state, str(item.get("RESULT_DESC", state))[:32]),
                message_id=uid.strip("*"),
                campaign_id=campaign,
                chunk=chunk,
                number=f"+{cc}{dest}",
                error_code=None if state == 2 else STATE_NAMES.get(state, str(state)),
                at=at,
            )
        )
    return serial, reports


def answer_packet(serial: int, now: float, code: int = OK) -> bytes:
    """The ANSWER to a report packet, echoing its SERIAL."""
    desc = "OK" if code == OK else CODES.get(code, ("Invalid_parameter",))[0]
    return orjson.dumps(
        {
            "METHOD": "SMS_PUSH_REPORT",
            "TYPE": "ANSWER",
            "SERIAL": serial,
            "TIME": uip_time(now),
            "RESULT_CODE": code,
            "RESULT_DESC": desc,
        }
    )
