"""Smsclouds voice blaster (seed 004, "Send Blaster (RoboCall)", "… Status", "… Cancel").

``POST api/v3/voice`` with ``type`` 1 (a saved ``audio`` id) or 2 (``text`` to speech, with
the ``<+B+>``… fields), ``campaign_name``, ``recipients`` (``cellphone`` and fields),
``remittent`` (required), ``scheduledDate``, ``transfer_num`` and ``transfer_key``. The
returned ``voice_campaign`` id is kept as each result's ``batch_id``; ``GET api/v3/voice/{id}``
gives each call's ``voice_message_status`` (0 queued, 1 in process, 2 sent, 3 failed or
cancelled), polled like Smsclouds' SMS campaigns; ``POST api/v3/voice/{id}/cancel`` works
only while the campaign is queued (status 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dispatcher.model import FIELD_NAMES, CampaignError, Status
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
from dispatcher.providers.smsclouds import (
    DATE,
    SmscloudsCodec,
    campaign_name,
    created_id,
    dial_code,
)

PATH = "/api/v3/voice"
#: voice_message_status → (our status, raw name)
CALL_STATES = {
    0: (Status.SENT, "queued"),
    1: (Status.SENT, "process"),
    2: (Status.SUBMITTED, "sent"),
    3: (Status.FAILED, "fail/cancel"),
}


class BlasterCodec(SmscloudsCodec):
    kind = "blaster"
    options: Mapping[str, type] = {
        "type": int,
        "audio": int,
        "remittent": str,
        "scheduled_date": str,
        "transfer_num": str,
        "transfer_key": int,
        "dial_code": int,
    }

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        return 1  # billed per call

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        kind = options.get("type", 2)
        if kind not in (1, 2):
            raise CampaignError("options.type", "1 (saved audio) or 2 (text to speech)")
        if kind == 1 and options.get("audio") is None:
            raise CampaignError("options.audio", "the audio id is required for type 1")
        if not options.get("remittent"):
            raise CampaignError("options.remittent", "the number shown to the callee is required")
        if (options.get("transfer_num") is None) != (options.get("transfer_key") is None):
            raise CampaignError("options.transfer_key", "transfer_num and transfer_key go together")
        date = options.get("scheduled_date")
        if date is not None and not DATE.match(str(date)):
            raise CampaignError("options.scheduled_date", "must be YYYY-MM-DD HH:mm:ss")
        if signature:
            raise CampaignError("signature", "a voice campaign has no signature")

    def build(
        self, job: SendJob, recipients: Sequence[ChunkRecipient], ctx: BuildContext
    ) -> Built[HttpRequest]:
        built: Built[HttpRequest] = Built()
        dial = dial_code(job.options)
        members, positions = [], []
        for pos, rcpt in enumerate(recipients):
            country, national = split_e164(rcpt.number)
            if country != dial:
                built.refused[pos] = refused("WRONG_COUNTRY", f"not a +{dial} number")
                continue
            member = {"cellphone": national}
            member.update({k: v for k, v in (rcpt.fields or {}).items() if k in FIELD_NAMES})
            members.append(member)
            positions.append(pos)
        if members:
            o = job.options
            body: dict[str, Any] = {
                "type": int(o.get("type", 2)),
                "campaign_name": campaign_name(job.campaign_id, job.chunk),
                "recipients": members,
                "remittent": str(o["remittent"]),
            }
            if body["type"] == 1:
                body["audio"] = int(o["audio"])
            else:
                body["text"] = job.text
            for ours, theirs in (("scheduled_date", "scheduledDate"),
                                 ("transfer_num", "transfer_num"),
                                 ("transfer_key", "transfer_key")):  # fmt: skip
                if o.get(ours) is not None:
                    body[theirs] = o[ours]
            built.requests.append(HttpRequest("POST", PATH, orjson.dumps(body), tuple(positions)))
        return built

    def parse(self, request: HttpRequest, status: int, body: bytes) -> list[Outcome]:
        batch, failed = created_id(request, status, body, "voice_campaign")
        if batch is None:
            return failed
        outcome = Outcome(Verdict.OK, Status.ACCEPTED, segments=1, batch_id=batch)
        return [outcome] * len(request.positions)

    def batch_path(self, batch: str) -> str:
        return f"{PATH}/{batch}"

    def parse_batch(self, body: bytes, options: Mapping[str, Any]) -> list[Report]:
        """ "Blaster (RoboCall) Status": one report per call (``cellphone`` national)."""
        dial = dial_code(options)
        data = orjson.loads(body)
        if not isinstance(data, dict) or "error" in data:
            raise BadPush("body", f"status call refused: {str(data)[:200]}")
        cancelled = str(data.get("status", "")).upper() == "CANCELLED"
        reports = []
        for call in data.get("voice_messages") or []:
            state = call.get("voice_message_status") if isinstance(call, dict) else None
            if not isinstance(state, int) or call.get("cellphone") is None:
                continue
            status, raw = CALL_STATES.get(state, (Status.SENT, str(state)))
            if state == 3 and cancelled:
                status, raw = Status.CANCELLED, "cancelled"
            reports.append(
                Report(
                    status=status,
                    raw_status=raw,
                    message_id=str(call.get("voice_message")),
                    number=f"+{dial}{call['cellphone']}",
                    error_code=None if state in (0, 1, 2) else raw.upper(),
                )
            )
        return reports

    # -- capabilities (capabilities.py): Cancelling -----------------------------------------

    def cancel_path(self, batch: str) -> str:
        """ "Blaster (RoboCall) Cancel": only while the campaign is queued."""
        return cancel_path(batch)

    def parse_cancel(self, status: int, body: bytes) -> tuple[bool, str]:
        return parse_cancel(status, body)


def cancel_path(batch: str) -> str:
    return f"{PATH}/{batch}/cancel"


def parse_cancel(status: int, body: bytes) -> tuple[bool, str]:
    """(cancelled, what the provider said): refused once the campaign has started."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = {}
    if status == 200 and isinstance(data, dict) and data.get("status") == "CANCELLED":
        return True, "cancelled"
    info = data.get("error", {}).get("information") if isinstance(data, dict) else None
    return False, str(info or f"HTTP {status}")
