"""Smsclouds email campaigns (seed 004, "Send Email"): ``POST api/v1/email``.

``body``, ``subject``, ``recipients`` (``email`` and the fields), ``template`` 1–4 (1 basic,
2 basic format — the default, 3 only an image, 4 image and text) with the seed's parameters
per template, ``attachment`` (a file id), ``header``, ``image`` (a URL), ``sender``,
``scheduledDate``. The answer's ``email_campaign_id`` is kept as ``batch_id``. Smsclouds
reports nothing more on emails, so an accepted email is final at once as ``submitted``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dispatcher.model import FIELD_NAMES, CampaignError, Status
from dispatcher.providers.base import (
    BuildContext,
    Built,
    ChunkRecipient,
    HttpRequest,
    Outcome,
    SendJob,
    Verdict,
)
from dispatcher.providers.smsclouds import DATE, SmscloudsCodec, created_id

PATH = "/api/v1/email"
#: The seed's "Parameters according to template": what each template takes besides
#: recipients, and what it requires.
_COMMON = {"subject", "attachment", "scheduled_date", "sender"}
TEMPLATES: dict[int, tuple[set[str], set[str]]] = {
    1: (_COMMON | {"body", "header"}, {"body", "subject"}),
    2: (_COMMON | {"body", "header"}, {"body", "subject"}),
    3: (_COMMON | {"image"}, {"subject", "image"}),
    4: (_COMMON | {"body", "header", "image"}, {"body", "subject", "image"}),
}


class EmailCodec(SmscloudsCodec):
    kind = "email"
    address = "email"  # recipients are email addresses, not phone numbers
    options: Mapping[str, type] = {
        "subject": str,
        "template": int,
        "attachment": int,
        "header": str,
        "image": str,
        "sender": str,
        "scheduled_date": str,
    }

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        return 1

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        template = options.get("template", 2)
        if template not in TEMPLATES:
            raise CampaignError("options.template", "must be 1, 2, 3 or 4")
        allowed, required = TEMPLATES[template]
        given = {k for k, v in options.items() if v is not None} | ({"body"} if text else set())
        for name in sorted(required - given):
            field = "text" if name == "body" else f"options.{name}"
            raise CampaignError(field, f"is required for email template {template}")
        for name in sorted(given - allowed - {"template"}):
            field = "text" if name == "body" else f"options.{name}"
            raise CampaignError(field, f"email template {template} does not take it")
        date = options.get("scheduled_date")
        if date is not None and not DATE.match(str(date)):
            raise CampaignError("options.scheduled_date", "must be YYYY-MM-DD HH:mm:ss")
        if signature:
            raise CampaignError("signature", "an email campaign has no signature")

    def build(
        self, job: SendJob, recipients: Sequence[ChunkRecipient], ctx: BuildContext
    ) -> Built[HttpRequest]:
        members = []
        for rcpt in recipients:
            member = {"email": rcpt.number}
            member.update({k: v for k, v in (rcpt.fields or {}).items() if k in FIELD_NAMES})
            members.append(member)
        o = job.options
        body: dict[str, Any] = {"recipients": members, "template": int(o.get("template", 2))}
        if job.text:
            body["body"] = job.text
        for ours, theirs in (("subject", "subject"), ("attachment", "attachment"),
                             ("header", "header"), ("image", "image"), ("sender", "sender"),
                             ("scheduled_date", "scheduledDate")):  # fmt: skip
            if o.get(ours) is not None:
                body[theirs] = o[ours]
        positions = tuple(range(len(recipients)))
        return Built([HttpRequest("POST", PATH, orjson.dumps(body), positions)])

    def parse(self, request: HttpRequest, status: int, body: bytes) -> list[Outcome]:
        batch, failed = created_id(request, status, body, "email_campaign_id")
        if batch is None:
            return failed
        outcome = Outcome(Verdict.OK, Status.SUBMITTED, segments=1, batch_id=batch)
        return [outcome] * len(request.positions)
