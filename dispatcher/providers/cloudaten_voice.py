"""Cloud Aten voice verification codes (seed 000, §3): ``POST /v1/voice/send``.

One call per recipient, the code spoken twice. The campaign text is the code, or a token
that renders to it per recipient (``<+C+>`` for ``field1``), and must come out as 4–6 digits.
"Each recipient can only receive one voice call every 30 seconds": the worker spaces calls
to a number by ``number_spacing_seconds`` (delayed, never refused), and a voice campaign
may list a number several times — each listing is a call. Reports come to the same kind of
callback as SMS (§3.3) and the records list is ``/v1/voice/list``, 100 a page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dispatcher.model import CampaignError
from dispatcher.providers.base import (
    BuildContext,
    Built,
    ChunkRecipient,
    HttpRequest,
    SendJob,
    refused,
)
from dispatcher.providers.capabilities import PushRoute
from dispatcher.providers.cloudaten import CODES, STATUSES
from dispatcher.providers.common import OneMobileCodec, uid
from dispatcher.render import has_tokens, render

LANGUAGES = frozenset({"zh", "en", "id", "vi", "tr", "ru", "de", "fr", "it", "pt"})
CODE = re.compile(r"^\d{4,6}$")


class CloudAtenVoiceCodec(OneMobileCodec):
    name = "cloudaten"
    kind = "voice"
    codes = CODES
    statuses = STATUSES
    send_path = "/v1/voice/send"
    list_path = "/v1/voice/list"
    list_page_size = 100  # §3.2: "Max page size is 100"
    page_param = "page_no"
    push_time_field = "status_timestamp"
    options: Mapping[str, type] = {"language": str}
    number_spacing_seconds = 30.0
    dedupe = False  # a number listed twice is called twice, 30 s apart

    def auth_header(self, api_key: str) -> dict[str, str]:
        return {"X-API-Key": api_key}

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        language = options.get("language")
        if language is not None and language not in LANGUAGES:
            raise CampaignError(
                "options.language", f"must be one of {', '.join(sorted(LANGUAGES))}"
            )
        if signature:
            raise CampaignError("signature", "voice codes have no signature")
        if not has_tokens(text) and not CODE.match(text.strip()):
            raise CampaignError("text", "a voice code is 4 to 6 digits (or a <+…+> token)")

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        return 1  # billed per call

    def sent_text(self, text: str, fields: dict[str, str] | None) -> str:
        return render(text, fields).strip()  # the list shows the verification_code

    def build(
        self, job: SendJob, recipients: Sequence[ChunkRecipient], ctx: BuildContext
    ) -> Built[HttpRequest]:
        built: Built[HttpRequest] = Built()
        language = job.options.get("language")
        for pos, rcpt in enumerate(recipients):
            code = render(job.text, rcpt.fields).strip()
            if not CODE.match(code):
                built.refused[pos] = refused("BAD_ARGUMENT", "the code is not 4 to 6 digits")
                continue
            body: dict[str, Any] = {
                "mobile": rcpt.number,
                "verification_code": code,
                "uid": uid(job.campaign_id, rcpt.index),
            }
            if language:
                body["language"] = language
            if job.callback_url:
                body["callback_url"] = job.callback_url
            built.requests.append(HttpRequest("POST", self.send_path, orjson.dumps(body), (pos,)))
        return built

    def push_routes(self) -> Mapping[str, PushRoute]:
        """§3.3: call reports come to their own callback, in the SMS report's shape."""
        return {"voice": PushRoute("POST", self.parse_report_push)}
