"""Smsclouds' other services, as its manual describes them (seed 004): the voice blaster
(send, status, cancel while queued), email campaigns, SMS CLIC and HLR look-ups.

Blaster campaigns stay queued (status 0) for ``blaster_queue_ms``, then run; a call ends
"sent" (2) or "fail" (3) by the mock's decision. Cancel answers CANCELLED while queued and
422 once the campaign has started. HLR answers ``{"number", "valid", "carrier", "type"}``
(the manual shows no answer; this shape is the mock's own), invalid for numbers the settings
list in ``hlr_invalid``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from dispatcher.mock import smsclouds_rules as rules
from dispatcher.mock.reports import decide, gatekeeper, now_ms
from dispatcher.mock.smsclouds import PREFIX, Smsclouds
from dispatcher.mock.smsclouds_rules import Invalid, error, fill, json_response
from dispatcher.mock.state import MockState

SHORT_LINK = re.compile(r"<\+DYNAMICSHORTURL_[A-Z0-9]+\+>")
EMAIL = re.compile(r"\A[^@\s]+@[^@\s]+\.[^@\s]+\Z")
TEMPLATES = {1: ("body", "subject"), 2: ("body", "subject"), 3: ("subject", "image"),
             4: ("body", "subject", "image")}  # fmt: skip


class SmscloudsMore:
    """Endpoints beside the SMS campaign, sharing its tokens and its campaign counter."""

    def __init__(self, state: MockState, sms: Smsclouds) -> None:
        self.state = state
        self.sms = sms
        self.blaster = state.recorder("smsclouds_blaster")
        self.email = state.recorder("smsclouds_email")
        self.voice: dict[int, dict[str, Any]] = {}
        self._voice_id = 481776
        self._email_id = 28648

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{PREFIX}/api/v3/voice", self.send_voice),
            web.get(f"{PREFIX}/api/v3/voice/{{id}}", self.voice_status),
            web.post(f"{PREFIX}/api/v3/voice/{{id}}/cancel", self.cancel_voice),
            web.post(f"{PREFIX}/api/v1/email", self.send_email),
            web.post(f"{PREFIX}/api/v3/smsclic/campaign", self.send_clic),
            web.get(f"{PREFIX}/api/v3/hlr/{{number}}", self.hlr),
        ]

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        refused = await self.sms._enter(request, body=True)
        if refused is not None:
            return refused
        body = rules.parse_json(await request.read())
        if body is None:
            return error(400, "The request must carry a JSON body.")
        return body

    # -- blaster -----------------------------------------------------------------------

    async def send_voice(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        gated = await gatekeeper(
            self.state,
            self.blaster,
            "smsclouds_blaster",
            request,
            lambda: error(500, "Try again later."),
        )
        if gated is not None:
            return gated
        try:
            return json_response(self._create_voice(body))
        except Invalid as exc:
            self.blaster.stats.rejected += 1
            return error(422, str(exc))

    def _create_voice(self, body: dict[str, Any]) -> dict[str, Any]:
        """Send Blaster: the parameter table (type, audio, text, campaign_name, recipients,
        remittent, scheduledDate, transfer_num, transfer_key)."""
        kind = rules.need_integer(body, "type", required=True)
        if kind not in (1, 2):
            raise Invalid("The type field must be 1 or 2.")
        rules.need_integer(body, "audio", required=kind == 1)
        rules.need_string(body, "text", required=kind == 2)
        rules.need_string(body, "campaign_name", required=True)
        recipients = rules.check_recipients(body, limit=None)
        rules.need_string(body, "remittent", required=True)
        rules.need_date(body, "scheduledDate")
        rules.need_string(body, "transfer_num")
        rules.need_integer(body, "transfer_key", required=rules.present(body, "transfer_num"))
        self._voice_id += 1
        start = now_ms() + int(self.state.settings.blaster_queue_ms)
        calls = []
        for given in recipients:
            self._voice_id += 1
            r = {**given, "cellphone": str(given["cellphone"])}
            outcome = decide(self.state, f"blaster:{r['cellphone']}")
            text = fill(body.get("text") or "", r)
            call = {
                "voice_message": self._voice_id,
                "cellphone": r["cellphone"],
                "final": 3 if outcome == "rejected" else 2,
                "text": text,
            }
            calls.append(call)
            self.blaster.accept(
                {
                    "mobile": r["cellphone"],
                    "text": text,
                    "uid": None,
                    "sid": str(self._voice_id),
                    "timestamp": now_ms(),
                }
            )
        self.blaster.batch(len(recipients))
        number = self._voice_id
        self.voice[number] = {"body": body, "start": start, "calls": calls, "cancelled": False}
        return {
            "message": "Completado Correctamente",
            "voice_campaign": number,
            "name": body["campaign_name"],
            "type": "audio" if kind == 1 else "text",
            "country": "Mexico",
            "scheduled_date": body.get("scheduledDate"),
            "recipients_count": len(recipients),
            "status": "TO_SEND",
            "balance": round(self.state.balance, 3),
        }

    def _state(self, campaign: dict[str, Any]) -> int:
        """0 queued, 1 running, 2 sent, 3 cancelled: where the campaign stands now."""
        if campaign["cancelled"]:
            return 3
        elapsed = now_ms() - campaign["start"]
        if elapsed < 0:
            return 0
        return 1 if elapsed < self.state.settings.dlr_delay_ms else 2

    async def voice_status(self, request: web.Request) -> web.Response:
        refused = await self.sms._enter(request)
        if refused is not None:
            return refused
        campaign = self.voice.get(
            int(request.match_info["id"]) if request.match_info["id"].isdigit() else -1
        )
        if campaign is None:
            return error(404, "The specified campaign could not be found.")
        token = request.headers.get("Authorization", "")
        if not self.state.limiter.allow(f"{request.path}:{token}", self.blaster):
            return error(429, "Too many requests.")
        state = self._state(campaign)
        names = {0: "TO_SEND", 1: "PROCESSING", 2: "COMPLETED", 3: "CANCELLED"}
        body = campaign["body"]
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
        messages = [
            {
                "voice_message": c["voice_message"],
                "cellphone": c["cellphone"],
                "sent_date": stamp if state == 2 else None,
                "voice_message_status": c["final"] if state == 2 else state,
            }
            for c in campaign["calls"]
        ]
        return json_response(
            {
                "message": "Completado Correctamente",
                "voice_campaign": int(request.match_info["id"]),
                "name": body["campaign_name"],
                "text": body.get("text"),
                "audio": body.get("audio"),
                "remittent": body["remittent"],
                "recipients_count": len(messages),
                "recipients_processed": len(messages) if state >= 2 else 0,
                "status": names[state],
                "voice_messages": messages,
            }
        )

    async def cancel_voice(self, request: web.Request) -> web.Response:
        refused = await self.sms._enter(request)
        if refused is not None:
            return refused
        number = int(request.match_info["id"]) if request.match_info["id"].isdigit() else -1
        campaign = self.voice.get(number)
        if campaign is None:
            return error(404, "The specified campaign could not be found.")
        if self._state(campaign) != 0:
            return error(422, "Only a queued campaign (status 0) can be cancelled.")
        campaign["cancelled"] = True
        return json_response(
            {
                "message": "Completado Correctamente",
                "voice_campaign": number,
                "name": campaign["body"]["campaign_name"],
                "status": "CANCELLED",
                "scheduled_date": campaign["body"].get("scheduledDate"),
            }
        )

    # -- email, SMS CLIC, HLR ----------------------------------------------------------

    async def send_email(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            recipients = self._check_email(body)
        except Invalid as exc:
            self.email.stats.rejected += 1
            return error(422, str(exc))
        for r in recipients:
            self.email.accept(
                {
                    "mobile": r["email"],
                    "text": fill(str(body.get("body", "")), r),
                    "subject": body.get("subject"),
                    "uid": None,
                    "sid": str(self._email_id + 1),
                    "timestamp": now_ms(),
                }
            )
        self.email.batch(len(recipients))
        self._email_id += 1
        return json_response(
            {
                "message": "New Email Campaign created successfully",
                "email_campaign_id": self._email_id,
            }
        )

    @staticmethod
    def _check_email(body: dict[str, Any]) -> list[dict[str, Any]]:
        """Send Email: the parameter table, and what each template needs."""
        template = rules.need_integer(body, "template")
        needs = TEMPLATES.get(2 if template is None else template)
        if needs is None:
            raise Invalid("The selected template is invalid.")
        for name in ("body", "subject", "header", "image", "sender"):
            rules.need_string(body, name, required=name in needs)
        rules.need_integer(body, "attachment")
        rules.need_date(body, "scheduledDate")
        return rules.check_recipients(
            body, "email", lambda v: isinstance(v, str) and bool(EMAIL.match(v)), limit=None
        )

    async def send_clic(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        url = rules.integer(body.get("url"))
        if url is None:
            return error(422, "The url field is required.")
        text = body.get("text")
        if not isinstance(text, str) or not SHORT_LINK.search(text):
            return error(422, "The text needs a <+DYNAMICSHORTURL_…+> token.")
        link = f"https://mx4.mx/{url:04d}"
        clic = {**body, "text": SHORT_LINK.sub(link, text)}
        try:
            return json_response(self.sms.create(clic, route_required=True))
        except Invalid as exc:
            return error(422, str(exc))

    async def hlr(self, request: web.Request) -> web.Response:
        refused = await self.sms._enter(request)
        if refused is not None:
            return refused
        number = request.match_info["number"]
        if not (number.isascii() and number.isdigit() and len(number) == 10):
            return error(422, "The number must have 10 digits, without the country code.")
        valid = number not in self.state.settings.hlr_invalid
        self.sms.recorder.stats.hlr_lookups += 1
        return json_response(
            {
                "number": number,
                "valid": valid,
                "carrier": "TELCEL" if valid else None,
                "type": "mobile" if valid else "unknown",
            }
        )
