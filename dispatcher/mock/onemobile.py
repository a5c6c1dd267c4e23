"""The API style Cloud Aten (seed 000) and YCloud (seed 001) share, as their documents
describe it: one mobile per JSON request, ``{"code", "msg", "data"}`` answers, a 401 body.

Each provider module sets its prefix, auth header and checks; the rest lives here.
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

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class Refusal(Exception):
    """A ``{"code": n, "msg": …}`` answer."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class OneMobileMock:
    name: str
    prefix: str

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.recorder = state.recorder(self.name)
        self._sid = 3321910440

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{self.prefix}/v1/sms/send_messages", self.send_message),
            web.get(f"{self.prefix}/v1/account/balance", self.balance),
        ]

    def authorised(self, request: web.Request) -> bool:
        raise NotImplementedError

    def unauthorised(self, request: web.Request) -> web.Response | None:
        """A missing or unknown key gets 401 with the documents' body."""
        if self.authorised(request):
            return None
        self.recorder.stats.unauthorized += 1
        body = {
            "timestamp": int(time.time() * 1000),
            "status": 401,
            "error": "Unauthorized",
            "message": "INVALID_API_KEY",
            "path": request.path.removeprefix(self.prefix),
        }
        return json_response(body, 401)

    def check_extra(self, body: dict[str, Any], region: str) -> None:
        """Provider-specific fields; raise Refusal."""

    def text_of(self, body: dict[str, Any]) -> str:
        return str(body["text"])

    async def send_message(self, request: web.Request) -> web.Response:
        self.recorder.stats.requests += 1
        await self.state.delay()
        refused = self.unauthorised(request)
        if refused is not None:
            return refused
        try:
            return json_response(self.accept(await request.read()))
        except Refusal as r:
            self.recorder.stats.rejected += 1
            return json_response({"code": r.code, "msg": r.msg})

    def parse_body(self, raw: bytes) -> dict[str, Any]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise Refusal(-101, "JSON_PARSE_ERROR")
        return body

    def accept(self, raw: bytes) -> dict[str, Any]:
        body = self.parse_body(raw)
        for name in ("mobile", "text"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise Refusal(1, f"ARGUMENT_MISSING {name}")
        for name in ("uid", "callback_url"):
            if name in body and not isinstance(body[name], str):
                raise Refusal(2, f"BAD_ARGUMENT The {name} is invalid")
        mobile: str = body["mobile"]
        if not E164.match(mobile):
            raise Refusal(2, "BAD_ARGUMENT The mobile is invalid")
        try:
            number = phonenumbers.parse(mobile, None)
        except phonenumbers.NumberParseException:
            raise Refusal(2, "BAD_ARGUMENT The mobile is invalid") from None
        if not phonenumbers.is_valid_number(number):
            raise Refusal(2, "BAD_ARGUMENT The mobile is unverified")
        region = phonenumbers.region_code_for_number(number) or "ZZ"
        self.check_extra(body, region)
        text = self.text_of(body)
        settings = self.state.settings
        if any(word in text for word in settings.sensitive_words):
            raise Refusal(52, "SENSITIVE_WORD")
        if region in settings.unpriced_regions:
            raise Refusal(-2, "NO_BASE_PRICE")
        count = segments(text)
        price = round(settings.price * count, 4)
        if not self.state.charge(price):
            raise Refusal(3, "NO_BALANCE")
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
        self.recorder.stats.requests += 1
        await self.state.delay()
        refused = self.unauthorised(request)
        if refused is not None:
            return refused
        amount = round(self.state.balance, 5)
        data = {"currency": "USD", "amount": amount}
        return json_response({"code": 0, "data": data, "msg": "SUCCESS"})
