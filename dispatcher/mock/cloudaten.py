"""Cloud Aten SMS, as its API document describes it (seed 000: §1.2, §2.1, §4.1, Appendix 1).

Written from the document alone, never from our client codec, so that each checks the other.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
import phonenumbers
from aiohttp import web

from dispatcher.mock.segments import segments
from dispatcher.mock.state import MockState

PREFIX = "/cloudaten"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _code(code: int, msg: str) -> web.Response:
    return _json({"code": code, "msg": msg})


class CloudAten:
    name = "cloudaten"

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.recorder = state.recorder(self.name)
        self._sid = 3321910440

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{PREFIX}/v1/sms/send_messages", self.send_message),
            web.get(f"{PREFIX}/v1/account/balance", self.balance),
        ]

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        """§1.2: a missing or unknown X-API-Key gets 401 with this exact body."""
        if request.headers.get("X-API-Key") in self.state.settings.cloudaten_keys:
            return None
        self.recorder.stats.unauthorized += 1
        body = {
            "timestamp": int(time.time() * 1000),
            "status": 401,
            "error": "Unauthorized",
            "message": "INVALID_API_KEY",
            "path": request.path.removeprefix(PREFIX),
        }
        return _json(body, 401)

    async def send_message(self, request: web.Request) -> web.Response:
        self.recorder.stats.requests += 1
        await self.state.delay()
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        answer = self._send(await request.read())
        if isinstance(answer, web.Response):
            self.recorder.stats.rejected += 1
        else:
            answer = _json(answer)
        return answer

    def _send(self, raw: bytes) -> web.Response | dict[str, Any]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _code(-101, "JSON_PARSE_ERROR")
        if not isinstance(body, dict):
            return _code(-101, "JSON_PARSE_ERROR")
        for name in ("mobile", "text"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                return _code(1, f"ARGUMENT_MISSING {name}")
        for name in ("signature", "uid", "callback_url"):
            if name in body and not isinstance(body[name], str):
                return _code(2, f"BAD_ARGUMENT The {name} is invalid")
        mobile: str = body["mobile"]
        if not E164.match(mobile):
            return _code(2, "BAD_ARGUMENT The mobile is invalid")
        try:
            number = phonenumbers.parse(mobile, None)
        except phonenumbers.NumberParseException:
            return _code(2, "BAD_ARGUMENT The mobile is invalid")
        if not phonenumbers.is_valid_number(number):
            return _code(2, "BAD_ARGUMENT The mobile is unverified")
        region = phonenumbers.region_code_for_number(number) or "ZZ"
        signature = body.get("signature")
        if region == "CN" and not signature:
            return _code(2, "BAD_ARGUMENT The signature is required for Chinese mainland SMS")
        text: str = body["text"]
        if signature:
            text = f"【{signature}】{text}"
        settings = self.state.settings
        if any(word in text for word in settings.sensitive_words):
            return _code(52, "SENSITIVE_WORD")
        if region in settings.unpriced_regions:
            return _code(-2, "NO_BASE_PRICE")
        count = segments(text)
        price = round(settings.price * count, 4)
        if not self.state.charge(price):
            return _code(3, "NO_BALANCE")
        self._sid += 1
        now = int(time.time() * 1000)
        self.recorder.accept(
            {
                "mobile": mobile,
                "text": text,
                "uid": body.get("uid"),
                "sid": str(self._sid),
                "segments": count,
                "callback_url": body.get("callback_url"),
                "timestamp": now,
            }
        )
        self.recorder.batch(1)
        return {
            "code": 0,
            "data": {
                "status": "accepted",
                "price": price,
                "count": count,
                "mobile": mobile,
                "sid": str(self._sid),
                "region_code": region,
                "create_timestamp": now,
            },
            "msg": "SUCCESS",
        }

    async def balance(self, request: web.Request) -> web.Response:
        """§4.1: the account's balance."""
        self.recorder.stats.requests += 1
        await self.state.delay()
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        amount = round(self.state.balance, 5)
        return _json({"code": 0, "data": {"currency": "USD", "amount": amount}, "msg": "SUCCESS"})
