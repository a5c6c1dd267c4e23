"""Smsclouds v3 SMS wire format (seed 004, "Send Messages MT", "Errors", routes/countries).

One ``POST api/v3/campaign`` carries a whole chunk (30,000 recipients by default, 50,000 at
most). Smsclouds fills the ``<+B+>``…``<+F+>`` tokens itself from each recipient's ``name``
and ``field1``…``field4``, so the text is sent as written. ``cellphone`` is the national
number of the route's country (``dial_code``, 52 for Mexico by default); a number from
another country is refused before sending. The text decides the flags, by the longest
rendered text of the chunk:

=========================  ====================  ==========
text                       flag                  at most
=========================  ====================  ==========
GSM characters             (none)                160
GSM characters             ``long_message``      306
accents, other characters  ``encode``            70
accents, other characters  ``encode_2``          128
accents, other characters  ``encode_3``          192
=========================  ====================  ==========

``campaign_name`` carries our campaign and chunk; the campaign id Smsclouds returns is kept
as each result's ``batch_id``, for status polling.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import Any

import orjson

from dispatcher.model import FIELD_NAMES, CampaignError, Status
from dispatcher.providers import smsclouds_responses as responses
from dispatcher.providers.base import (
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
from dispatcher.providers.capabilities import PushContext, Pushed, PushRoute, Reply
from dispatcher.providers.common import amount
from dispatcher.providers.smsclouds_responses import mo_id, parse_keyword, parse_mo
from dispatcher.providers.smsclouds_status import messages_path, parse_messages
from dispatcher.render import render
from dispatcher.segments import Encoding, measure

PATH = "/api/v3/campaign"
MAX_RECIPIENTS = 50_000
#: (flag, most units, segments billed), in the order they are tried.
GSM_FLAGS = [(None, 160, 1), ("long_message", 306, 2)]
OTHER_FLAGS = [("encode", 70, 1), ("encode_2", 128, 2), ("encode_3", 192, 3)]
ALL_FLAGS = ("encode", "encode_2", "encode_3", "long_message")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


#: The calling code of the route's country when an account or campaign does not set
#: ``dial_code``: the seed's provider is Mexican (masmensajes.com.mx).
DIAL_CODE = 52


def dial_code(options: Mapping[str, Any]) -> int:
    return int(options.get("dial_code") or DIAL_CODE)


def campaign_name(campaign_id: str, chunk: int) -> str:
    return f"dsp:{campaign_id}:{chunk}"


def _units(text: str, gsm: bool) -> int:
    m = measure(text)
    return m.units if gsm else len(text.encode("utf-16-le")) // 2


def flag_for(texts: Sequence[str]) -> tuple[str | None, int] | None:
    """The one flag that fits every text of a request, with its billed segments; None if
    none does. One non-GSM text puts the whole request in the ``encode`` family."""
    gsm = all(measure(t).encoding is Encoding.GSM7 for t in texts)
    longest = max((_units(t, gsm) for t in texts), default=0)
    for flag, most, segments in GSM_FLAGS if gsm else OTHER_FLAGS:
        if longest <= most:
            return flag, segments
    return None


def _too_long(text: str) -> str:
    gsm = measure(text).encoding is Encoding.GSM7
    most = 306 if gsm else 192
    return f"{_units(text, gsm)} characters; Smsclouds sends at most {most} for this text"


def error_outcome(status: int, body: bytes) -> Outcome:
    """The seed's errors: 400/401/404/422/500 with ``{"error": {"information", …}}``."""
    info = f"HTTP {status}"
    try:
        data = orjson.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            info = str(data["error"].get("information", info))
    except orjson.JSONDecodeError:
        pass
    code = f"HTTP_{status}"
    if status in (401, 403, 404):
        return Outcome(Verdict.ACCOUNT, Status.FAILED, error_code=code, error=info)
    if status == 429 or status >= 500:
        return Outcome(Verdict.RETRY, Status.FAILED, error_code=code, error=info)
    return Outcome(Verdict.PERMANENT, Status.REJECTED, error_code=code, error=info)


def created_id(
    request: HttpRequest, status: int, body: bytes, field: str
) -> tuple[str | None, list[Outcome]]:
    """The id a create call (campaign, voice campaign, email campaign) answered with, or
    no id and the outcomes that say why. A 200 without the id is not resent: the provider
    may have taken it."""
    n = len(request.positions)
    if status != 200:
        return None, [error_outcome(status, body)] * n
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    value = data.get(field) if isinstance(data, dict) else None
    if value is None:
        error = f"answer without {field}; not resent, to avoid a double send"
        failed = Outcome(Verdict.PERMANENT, Status.FAILED, error_code="BAD_RESPONSE", error=error)
        return None, [failed] * n
    return str(value), []


def _plain_nationals(recipients: Sequence[ChunkRecipient], dial: int, text: str) -> str | None:
    """Every recipient's national number, one a line, when none has fields, all are
    numbers of the route's country and the text fits: a 30,000-recipient chunk then costs
    a few passes in C, not a split, a render and a check per recipient (the provider waits
    for its first request). None when any of that does not hold: SmscloudsCodec.build
    looks at each recipient then."""
    if not recipients or flag_for([text]) is None or any(map(_FIELDS, recipients)):
        return None
    numbers = list(map(_NUMBER, recipients))
    if split_e164(numbers[0])[0] != dial:
        return None
    # Calling codes are a prefix code: a number that starts with this one's has it. Every
    # line starts with it, and no number holds a line break, when both counts are n.
    lines, prefix = "\n" + "\n".join(numbers), f"\n+{dial}"
    if lines.count("\n") != len(numbers) or lines.count(prefix) != len(numbers):
        return None
    return lines.replace(prefix, "\n")[1:]


_FIELDS = attrgetter("fields")
_NUMBER = attrgetter("number")


def _members_json(nationals: str) -> orjson.Fragment:
    """``[{"cellphone": …}, …]`` of national numbers one a line, made by one replace:
    they are ASCII digits, which JSON writes as they are (validated at enqueue), so no
    dict a recipient is needed."""
    if not nationals:
        return orjson.Fragment(b"[]")
    members = nationals.replace("\n", '"},{"cellphone":"')
    return orjson.Fragment(b'[{"cellphone":"' + members.encode() + b'"}]')


class SmscloudsCodec:
    name = "smsclouds"
    options: Mapping[str, type] = {
        "route": int,
        "country": int,
        "dial_code": int,
        "scheduled_date": str,
        "hlr_scrub": bool,  # look every (Mexican) number up first; send only the valid ones
    }
    kind = "sms"
    number_spacing_seconds = 0.0
    dedupe = True
    max_chunk: int | None = MAX_RECIPIENTS
    per_request: int | None = None  # a campaign: the whole chunk
    queries: Mapping[str, str] = {
        "routes": "/api/v3/user/routes",
        "countries": "/api/v3/user/countries",
        "user": "/api/v1/user",
    }
    path = PATH
    address = "phone"

    replies_path = responses.PATH
    replies_most = responses.MOST_CAMPAIGNS

    @staticmethod
    def wants_scrub(options: Mapping[str, Any]) -> bool:
        return bool(options.get("hlr_scrub"))

    @staticmethod
    def scrub_path(number: str) -> str | None:
        """``GET api/v3/hlr/{10 digits}``: Mexican numbers only; None for any other."""
        country, national = split_e164(number)
        return f"/api/v3/hlr/{national}" if country == 52 and len(national) == 10 else None

    @staticmethod
    def scrub_invalid(status: int, body: bytes) -> bool:
        """Did the look-up say the number is invalid? The seed shows no answer: any of
        ``valid``/``exists`` false, or a ``status`` of invalid/inactive, counts as no."""
        if status != 200:
            return False  # no answer is no verdict: keep the number
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(data, dict):
            return False
        data = data.get("data", data) if isinstance(data.get("data"), dict) else data
        if data.get("valid") is False or data.get("exists") is False:
            return True
        return str(data.get("status", "")).lower() in ("invalid", "inactive")

    def batch_path(self, batch: str) -> str:
        """Where the statuses of one of our requests (a provider campaign) are read."""
        return messages_path(batch)

    def parse_batch(self, body: bytes, options: Mapping[str, Any]) -> list[Report]:
        """The campaign's messages; ``cellphone`` is national, of the route's country."""
        dial = dial_code(options)
        return [replace(r, number=f"+{dial}{r.number}") for r in parse_messages(body)]

    @staticmethod
    def replies_request(batches: Sequence[str]) -> bytes:
        return responses.request_body(batches)

    @staticmethod
    def parse_replies(body: bytes) -> list[Reply]:
        return [
            Reply(mo_id(r.message_id, r.received_at), r.batch, r.message_id, r.text)
            for r in responses.parse_replies(body)
        ]

    def headers(self, api_key: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        """Billed by the flag the text needs (see the table above)."""
        fit = flag_for([text])
        return fit[1] if fit else measure(text).segments

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        if options.get("route") is None and options.get("country") is None:
            raise CampaignError("options.route", "route or country is required for Smsclouds")
        date = options.get("scheduled_date")
        if date is not None and not DATE.match(str(date)):
            raise CampaignError("options.scheduled_date", "must be YYYY-MM-DD HH:mm:ss")
        if signature:
            raise CampaignError("signature", "Smsclouds has no signature field")
        if flag_for([render(text, None)]) is None:
            raise CampaignError("text", _too_long(text))

    def build(
        self, job: SendJob, recipients: Sequence[ChunkRecipient], ctx: BuildContext
    ) -> Built[HttpRequest]:
        built: Built[HttpRequest] = Built()
        dial = dial_code(job.options)
        plain = render(job.text, None)  # the text of every recipient without fields
        same = _plain_nationals(recipients, dial, plain)
        if same is not None:  # the usual campaign: one text, the route's country
            flag = (flag_for([plain]) or (None, 1))[0]
            n = len(recipients)
            parts = same.split("\n") if n > MAX_RECIPIENTS else None  # a campaign each
            for start in range(0, n, MAX_RECIPIENTS):
                span = tuple(range(start, min(start + MAX_RECIPIENTS, n)))
                lines = same if parts is None else "\n".join(parts[start : start + MAX_RECIPIENTS])
                body = self.campaign(job, _members_json(lines), flag)
                built.requests.append(self._request(body, span, flag))
            return built
        texts: dict[int, str] = {}
        members: dict[int, dict[str, str]] = {}
        fits: dict[str, bool] = {}  # per distinct text: most campaigns have one
        for pos, rcpt in enumerate(recipients):
            country, national = split_e164(rcpt.number)
            if country != dial:
                built.refused[pos] = refused(
                    "WRONG_COUNTRY", f"not a +{dial} number, the route's country"
                )
                continue
            fields = rcpt.fields
            text = render(job.text, fields) if fields else plain
            fits_alone = fits.get(text)
            if fits_alone is None:
                fits_alone = fits[text] = flag_for([text]) is not None
            if not fits_alone:
                built.refused[pos] = refused("TEXT_TOO_LONG", _too_long(text))
                continue
            member = {"cellphone": national}
            if fields:
                member.update({k: v for k, v in fields.items() if k in FIELD_NAMES})
            texts[pos], members[pos] = text, member
        # A GSM text that fits alone may not fit beside a non-GSM one: refuse it too.
        if texts and flag_for(list(set(texts.values()))) is None:
            most = OTHER_FLAGS[-1][1]
            for pos, text in list(texts.items()):
                if _units(text, gsm=False) > most:
                    built.refused[pos] = refused(
                        "TEXT_TOO_LONG",
                        f"{len(text)} characters in a request with accented texts; "
                        f"Smsclouds sends at most {most}",
                    )
                    del texts[pos], members[pos]
        positions = list(members)
        for start in range(0, len(positions), MAX_RECIPIENTS):
            part = positions[start : start + MAX_RECIPIENTS]
            flag = (flag_for(list({texts[p] for p in part})) or (None, 1))[0]
            body = self.campaign(job, [members[p] for p in part], flag)
            built.requests.append(self._request(body, tuple(part), flag))
        return built

    def _request(
        self, body: dict[str, Any], part: tuple[int, ...], flag: str | None
    ) -> HttpRequest:
        segments = next((s for f, _, s in GSM_FLAGS + OTHER_FLAGS if f and f == flag), 1)
        return HttpRequest("POST", self.path, orjson.dumps(body), part, context=segments)

    def campaign(
        self, job: SendJob, members: list[dict[str, str]] | orjson.Fragment, flag: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "text": job.text,
            "recipients": members,
            "campaign_name": campaign_name(job.campaign_id, job.chunk),
            **{f: f == flag for f in ALL_FLAGS},
        }
        for key in ("route", "country"):
            if job.options.get(key) is not None:
                body[key] = int(job.options[key])
        if job.options.get("scheduled_date"):
            body["scheduled_date"] = str(job.options["scheduled_date"])
        return body

    def parse(self, request: HttpRequest, status: int, body: bytes) -> list[Outcome]:
        campaign, failed = created_id(request, status, body, "campaign")
        if campaign is None:
            return failed
        segments = request.context  # the flag's segment count, as built
        if segments is None:  # not built here: the body's flag says
            sent = orjson.loads(request.body or b"{}")
            segments = next((s for f, _, s in GSM_FLAGS + OTHER_FLAGS if f and sent.get(f)), 1)
        outcome = Outcome(Verdict.OK, Status.ACCEPTED, segments=segments, batch_id=campaign)
        return [outcome] * len(request.positions)

    # -- capabilities (capabilities.py): Pushes, Balance -----------------------------------

    balance_query = "user"

    def push_routes(self) -> Mapping[str, PushRoute]:
        """MO responses and keyword requests, both pushed by GET with the fields in the
        query; no delivery reports (statuses are polled)."""
        return {
            "mo": PushRoute("GET", self.parse_mo_push, "mo"),
            "keyword": PushRoute("GET", self.parse_keyword_push, "keyword"),
        }

    def parse_mo_push(self, body: bytes, query: Mapping[str, str], ctx: PushContext) -> Pushed:
        return Pushed(inbound=parse_mo(query, int(ctx.now * 1000)))

    def parse_keyword_push(self, body: bytes, query: Mapping[str, str], ctx: PushContext) -> Pushed:
        """Answered with the auto-response text: the platform sends back what we print."""
        message = parse_keyword(query, int(ctx.now * 1000))
        return Pushed(inbound=message, answer=ctx.keyword_response.encode())

    def push_refusal(self, body: bytes, busy: bool, now: float) -> tuple[bytes, str] | None:
        """None: the HTTP status says it."""
        return None

    def balance_of(self, answer: Any) -> float | None:
        """``credit`` of the ``user`` answer (``{"data": {…, "credit": 468062.11}}``)."""
        if not isinstance(answer, dict):
            return None
        data = answer.get("data", answer)
        return amount(data.get("credit")) if isinstance(data, dict) else None
