"""CloudSMS UIP, as its Web API specification v2.3 describes it (seed 002).

``POST /cloudsms/dave/io`` takes one ``SMS_SEND_REQUEST`` packet and answers with an
``ANSWER`` packet echoing the SERIAL: a packet-level RESULT_CODE and, when that is OK, one
DETAIL_LIST entry with its own RESULT_CODE and an SMS_UID for every number. The rules
checked are the document's: the four common fields, AUTH_KEY (Channel_not_exist), VERSION
(Invalid_Version), at most 200 numbers, numeric DEST_MSISDN of at most 32 characters,
11-digit mainland China numbers (Invalid_parameter), SMS_CONTENT present and at most 1530
bytes (ASCII one byte, anything else two; Invalid_context), SIGNATURE_TYPE 1–5.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from dispatcher.mock.onemobile import json_response
from dispatcher.mock.reports import answered, decide, final_at_ms, gatekeeper, now_ms
from dispatcher.mock.segments import segments
from dispatcher.mock.state import MockState

PREFIX = "/cloudsms"
VERSION = "2021-01-01"
TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
DESC = {
    0x01: "OK",
    0x03: "Busy",
    0x04: "Empty_data",
    0x05: "Channel_not_exist",
    0x10000001: "Invalid_parameter",
    0x10000003: "Invalid_context",
    0x10000010: "Invalid_Version",
}
SIGNATURES = {1: "【{s}】{t}", 2: "{t}【{s}】", 3: "[{s}] {t}", 4: "{t}[{s}]", 5: "{t}"}


def content_bytes(text: str) -> int:
    """The document's byte count: ASCII one byte, everything else two."""
    return sum(1 if ord(c) < 0x80 else 2 for c in text)


def utc8_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600))


#: our outcome → (SMS_STATE, RESULT_DESC)
FINAL_STATES = {
    "delivered": (2, "DELIVERED"),
    "undelivered": (5, "UNDELIVERABLE"),
    "expired": (3, "EXPIRED"),
    "rejected": (8, "REJECTED"),
}


class CloudSms:
    name = "cloudsms"
    _serial = 0

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.recorder = state.recorder(self.name)
        #: (time, RESULT_CODE) of every packet answered, for tests of retry timing
        self.packets: list[tuple[float, int]] = []

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"{PREFIX}/dave/io", self.send)]

    def answer(
        self, serial: Any, code: int, details: list[dict[str, Any]] | None = None
    ) -> web.Response:
        self.packets.append((time.time(), code))
        if code != 0x01:
            self.recorder.stats.rejected += 1
        packet: dict[str, Any] = {
            "METHOD": "SMS_SEND_REQUEST",
            "TYPE": "ANSWER",
            "SERIAL": serial if isinstance(serial, int) else 0,
            "TIME": utc8_now(),
            "RESULT_CODE": code,
            "RESULT_DESC": DESC[code],
            "DETAIL_LIST": details or [],
        }
        return json_response(packet)

    async def send(self, request: web.Request) -> web.Response:
        self.recorder.stats.requests += 1
        raw = await request.read()  # the whole packet has arrived: the provider has it …
        await self.state.delay()  # … and works on it, whether the client waits or not
        if not raw.strip():
            return self.answer(0, 0x04)
        try:
            packet = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.answer(0, 0x10000003)
        if not isinstance(packet, dict):
            return self.answer(0, 0x10000003)
        serial = packet.get("SERIAL")
        gated = await gatekeeper(
            self.state, self.recorder, self.name, request, lambda: self.answer(serial, 0x03)
        )
        if gated is not None:
            return gated
        code = self.check_packet(packet)
        if code is not None:
            return await answered(self.state, self.recorder, request, self.answer(serial, code))
        if self.state.settings.cloudsms_busy > 0:
            self.state.settings.cloudsms_busy -= 1
            return self.answer(serial, 0x03)
        response = self.answer(serial, 0x01, self.deliver(packet))
        return await answered(self.state, self.recorder, request, response)

    def check_packet(self, p: dict[str, Any]) -> int | None:
        """The packet-level RESULT_CODE when the packet is refused as a whole."""
        required = ("METHOD", "TYPE", "SERIAL", "TIME", "AUTH_KEY", "MULTI_MSISDN_LIST",
                    "SMS_CONTENT", "ROUTE_ID", "VERSION")  # fmt: skip
        if any(p.get(k) in (None, "") for k in required if k != "SMS_CONTENT"):
            return 0x10000001
        if p["METHOD"] != "SMS_SEND_REQUEST" or p["TYPE"] != "REQUEST":
            return 0x10000001
        serial = p["SERIAL"]
        if not isinstance(serial, int) or isinstance(serial, bool) or not 1 <= serial <= 65535:
            return 0x10000001
        if not isinstance(p["TIME"], str) or not TIME.match(p["TIME"]):
            return 0x10000001
        if p["AUTH_KEY"] not in self.state.settings.cloudsms_keys:
            self.recorder.stats.unauthorized += 1
            return 0x05
        if p["VERSION"] != VERSION:
            return 0x10000010
        numbers = p["MULTI_MSISDN_LIST"]
        if not isinstance(numbers, list) or not 1 <= len(numbers) <= 200:
            return 0x10000001
        content = p.get("SMS_CONTENT")
        if not isinstance(content, str) or not content or content_bytes(content) > 1530:
            return 0x10000003
        sig_type = p.get("SIGNATURE_TYPE")
        if p.get("SIGNATURE") and sig_type not in SIGNATURES:
            return 0x10000001
        if len(str(p.get("SIGNATURE", "")).encode()) > 64:
            return 0x10000001
        return None

    # -- delivery reports ---------------------------------------------------------------

    def next_serial(self) -> int:
        self._serial = self._serial % 65535 + 1
        return self._serial

    def report_packet(self, message: dict[str, Any], state: int, desc: str) -> dict[str, Any]:
        """An SMS_PUSH_REPORT for one SMS_UID ("pushed ... separately according to the
        SMS_UID"), CUSTOMER_BODY returned unchanged."""
        packet: dict[str, Any] = {
            "METHOD": "SMS_PUSH_REPORT",
            "TYPE": "REQUEST",
            "SERIAL": self.next_serial(),
            "TIME": utc8_now(),
            "REPORT_TIME": utc8_now(),
            "SOURCE_MSISDN": "CloudSMS",
            "SMS_UID": message["sid"],
            "SMS_RESULT_LIST": [
                {
                    "COUNTRY_CODE": message["country_code"],
                    "DEST_MSISDN": message["dest_msisdn"],
                    "SMS_STATE": state,
                    "RESULT_DESC": desc,
                }
            ],
        }
        if message["customer_body"] is not None:
            packet["CUSTOMER_BODY"] = message["customer_body"]
        return packet

    async def _push(self, session: aiohttp.ClientSession, packet: dict[str, Any]) -> bool:
        """A push counts as received only when answered with an ANSWER echoing its SERIAL."""
        url = self.state.settings.cloudsms_callback_url
        if not url:
            return True
        async with session.post(url, data=orjson.dumps(packet)) as resp:
            body = await resp.read()
        if resp.status != 200:
            return False
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        ok = (
            isinstance(answer, dict)
            and answer.get("METHOD", "").strip() == "SMS_PUSH_REPORT"
            and answer.get("TYPE") == "ANSWER"
            and answer.get("SERIAL") == packet["SERIAL"]
            and answer.get("RESULT_CODE") == 1
        )
        if not ok:
            self.recorder.stats.bad_answers += 1
        return ok

    def push_reports(self, message: dict[str, Any]) -> None:
        if not self.state.settings.cloudsms_callback_url:
            return
        delay = self.state.settings.dlr_delay_ms / 1000
        state, desc = FINAL_STATES[message["final"]]
        early = self.report_packet(message, 1, "ENROUTE")
        final = self.report_packet(message, state, desc)
        pusher = self.state.pusher
        pusher.schedule(self.recorder, delay / 2, lambda s: self._push(s, early))
        pusher.schedule(self.recorder, delay, lambda s: self._push(s, final))

    def number_code(self, item: Any) -> int:
        if not isinstance(item, dict):
            return 0x10000001
        cc, dest = item.get("COUNTRY_CODE"), item.get("DEST_MSISDN")
        if not isinstance(cc, int) or isinstance(cc, bool) or not 1 <= cc <= 9999:
            return 0x10000001
        if not isinstance(dest, str) or not dest.isdigit() or len(dest) > 32:
            return 0x10000001
        if cc == 86 and len(dest) != 11:
            return 0x10000001
        return 0x01

    def deliver(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        text = p["SMS_CONTENT"]
        if p.get("SIGNATURE"):
            text = SIGNATURES[p["SIGNATURE_TYPE"]].format(s=p["SIGNATURE"], t=text)
        details = []
        for item in p["MULTI_MSISDN_LIST"]:
            code = self.number_code(item)
            entry: dict[str, Any] = {
                "RESULT_CODE": code,
                "RESULT_DESC": DESC[code],
                "DEST_MSISDN": item.get("DEST_MSISDN") if isinstance(item, dict) else None,
                "COUNTRY_CODE": item.get("COUNTRY_CODE") if isinstance(item, dict) else None,
            }
            if code == 0x01:
                uid = secrets.token_hex(15).upper()
                entry["SMS_UID"] = uid
                mobile = f"+{item['COUNTRY_CODE']}{item['DEST_MSISDN']}"
                now = now_ms()
                outcome = decide(self.state, f"{self.name}:{mobile}")
                message = {
                    "mobile": mobile,
                    "country_code": item["COUNTRY_CODE"],
                    "dest_msisdn": item["DEST_MSISDN"],
                    "text": text,
                    "uid": None,
                    "sid": uid,
                    "segments": segments(text),
                    "route": p["ROUTE_ID"],
                    "customer_body": p.get("CUSTOMER_BODY"),
                    "serial": p["SERIAL"],
                    "timestamp": now,
                    "final": outcome,
                    "final_status": FINAL_STATES[outcome][0],  # the SMS_STATE
                    "final_at": final_at_ms(self.state, now),
                }
                self.recorder.accept(message)
                self.push_reports(message)
            else:
                self.recorder.stats.rejected += 1
            details.append(entry)
        self.recorder.batch(len(p["MULTI_MSISDN_LIST"]))
        return details
