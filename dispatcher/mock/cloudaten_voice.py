"""Cloud Aten voice verification codes, as the document describes them (seed 000, §3).

``POST /cloudaten/v1/voice/send`` takes ``mobile``, ``verification_code`` (4–6 digits),
``language`` (one of ten), ``uid`` and ``callback_url``, all Strings, and nothing else.
"Each recipient can only receive one voice call every 30 seconds": a second call to a number
sooner than that is refused and counted as a spacing violation. Records are listed by
``/v1/voice/list`` (100 a page).
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import phonenumbers
from aiohttp import web

from dispatcher.mock.cloudaten import CloudAten
from dispatcher.mock.onemobile import E164, Refusal
from dispatcher.mock.reports import decide, final_at_ms, now_ms
from dispatcher.mock.state import MockState

LANGUAGES = {"zh", "en", "id", "vi", "tr", "ru", "de", "fr", "it", "pt"}
CODE = re.compile(r"\A[0-9]{4,6}\Z")


class CloudAtenVoice(CloudAten):
    name = "cloudaten_voice"
    # §3.1's parameter table, and §3.2's "Max page size is 100".
    parameters = frozenset({"mobile", "verification_code", "language", "uid", "callback_url"})
    required = ("mobile", "verification_code")
    max_page_size = 100
    final_words: ClassVar[dict[str, tuple[str, str | None]]] = {
        "delivered": ("delivered", None),
        "undelivered": ("undelivered", "UNDELIV_0001"),
        "expired": ("undelivered", "EXPIRED_0027"),
        "rejected": ("failed", "YC:NOOP"),
    }

    def __init__(self, state: MockState) -> None:
        super().__init__(state)
        self._last_call: dict[str, float] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{self.prefix}/v1/voice/send", self.send_message),
            web.get(f"{self.prefix}/v1/voice/list", self.list_messages),
        ]

    def accept(self, raw: bytes, declared_json: bool) -> dict[str, Any]:
        body = self.parse_body(raw, declared_json)
        self.check_fields(body)
        mobile, code = body["mobile"], body["verification_code"]
        if not E164.match(mobile):
            raise Refusal(2, "BAD_ARGUMENT The mobile is invalid")
        number = phonenumbers.parse(mobile, None)
        if not phonenumbers.is_valid_number(number):
            raise Refusal(2, "BAD_ARGUMENT The mobile is unverified")
        if not CODE.match(code):
            raise Refusal(2, "BAD_ARGUMENT The verification_code must be 4 to 6 digits")
        language = body.get("language", "en")
        if language not in LANGUAGES:
            raise Refusal(2, "BAD_ARGUMENT The language is not supported")
        now = time.monotonic()
        last = self._last_call.get(mobile)
        if last is not None and now - last < self.state.settings.voice_spacing_s:
            self.recorder.stats.spacing_violations += 1
            raise Refusal(2, "BAD_ARGUMENT one voice call per number every 30 seconds")
        price = round(self.state.settings.price, 4)
        if not self.state.charge(price):
            raise Refusal(3, "NO_BALANCE")
        self._last_call[mobile] = now
        self._sid += 1
        created = now_ms()
        outcome = decide(self.state, f"{self.name}:{mobile}:{self._sid}")
        message = {
            "mobile": mobile,
            "text": code,
            "verification_code": code,
            "language": language,
            "uid": body.get("uid"),
            "sid": str(self._sid),
            "segments": 1,
            "price": price,
            "region_code": phonenumbers.region_code_for_number(number) or "ZZ",
            "callback_url": body.get("callback_url"),
            "timestamp": created,
            "final": outcome,
            "final_status": self.final_words[outcome][0],
            "final_error": self.final_words[outcome][1],
            "final_at": final_at_ms(self.state, created),
        }
        self.recorder.accept(message)
        self.recorder.batch(1)
        if message["callback_url"]:
            self.push_reports(message)
        data = {k: message[k] for k in ("price", "mobile", "sid", "region_code")}
        data.update(status="accepted", count=1, create_timestamp=created)
        return {"code": 0, "msg": "SUCCESS", "data": data}

    def record_view(self, message: dict[str, Any], at: int) -> dict[str, Any]:
        view = super().record_view(message, at)
        view.pop("text", None)
        view["verification_code"] = message["verification_code"]
        return view
