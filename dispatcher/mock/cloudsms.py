"""CloudSMS UIP, as its Web API specification v2.3 describes it (seed 002).

``POST /cloudsms/dave/io`` takes one ``SMS_SEND_REQUEST`` packet and answers with an
``ANSWER`` packet echoing the SERIAL: a packet-level RESULT_CODE and, when that is OK, one
DETAIL_LIST entry with its own RESULT_CODE and an SMS_UID for every number. What is refused
where is in :mod:`dispatcher.mock.cloudsms_rules`. A number answered OK can still be rejected
locally (Singapore rule, unconfigured direction, wrong ROUTE_ID, no balance): it then gets a
single report, SMS_STATE 60 LOCAL_REJECTED, and is not charged.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from dispatcher.mock import cloudsms_rules as rules
from dispatcher.mock.onemobile import json_response
from dispatcher.mock.reports import answered, decide, final_at_ms, gatekeeper, now_ms
from dispatcher.mock.segments import segments
from dispatcher.mock.state import MockState

PREFIX = "/cloudsms"
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


def utc8_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 8 * 3600))


#: our outcome → (SMS_STATE, RESULT_DESC)
FINAL_STATES = {
    "delivered": (2, "DELIVERED"),
    "undelivered": (5, "UNDELIVERABLE"),
    "expired": (3, "EXPIRED"),
    "rejected": (8, "REJECTED"),
    "local_rejected": (60, "LOCAL_REJECTED"),
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
        code = rules.check_packet(p, self.state.settings.cloudsms_keys)
        if code == rules.CHANNEL_NOT_EXIST:
            self.recorder.stats.unauthorized += 1
        return code

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
            "SOURCE_MSISDN": message["sender"] or "CloudSMS",
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
        """ENROUTE, then the final state; a locally rejected message only gets its one."""
        if not self.state.settings.cloudsms_callback_url:
            return
        delay = self.state.settings.dlr_delay_ms / 1000
        state, desc = FINAL_STATES[message["final"]]
        final = self.report_packet(message, state, desc)
        pusher = self.state.pusher
        if message["final"] != "local_rejected":
            early = self.report_packet(message, 1, "ENROUTE")
            pusher.schedule(self.recorder, delay / 2, lambda s: self._push(s, early))
        pusher.schedule(self.recorder, delay, lambda s: self._push(s, final))

    def deliver(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        text = p["SMS_CONTENT"]
        if p.get("SIGNATURE"):
            text = SIGNATURES[p["SIGNATURE_TYPE"]].format(s=p["SIGNATURE"], t=text)
        details = []
        for item in p["MULTI_MSISDN_LIST"]:
            code = rules.number_code(item)
            entry: dict[str, Any] = {
                "RESULT_CODE": code,
                "RESULT_DESC": DESC[code],
                "DEST_MSISDN": item.get("DEST_MSISDN") if isinstance(item, dict) else None,
                "COUNTRY_CODE": item.get("COUNTRY_CODE") if isinstance(item, dict) else None,
            }
            if code == rules.OK:
                entry["SMS_UID"] = self.take(p, item, text)
            else:
                self.recorder.stats.rejected += 1
            details.append(entry)
        self.recorder.batch(len(p["MULTI_MSISDN_LIST"]))
        return details

    def take(self, p: dict[str, Any], item: dict[str, Any], text: str) -> str:
        """One number answered OK: its SMS_UID, its record, its reports."""
        uid = secrets.token_hex(15).upper()
        cc, dest = item["COUNTRY_CODE"], item["DEST_MSISDN"]
        mobile = f"+{cc}{dest}"
        now = now_ms()
        settings = self.state.settings
        count = segments(text)
        price = round(settings.price * count, 4)
        local = rules.local_rejection(
            cc, dest, p["ROUTE_ID"], settings.cloudsms_routes, settings.unpriced_regions
        )
        if local is None and not self.state.charge(price):
            local = "insufficient balance"
        outcome = "local_rejected" if local else decide(self.state, f"{self.name}:{mobile}")
        if local:
            self.recorder.stats.local_rejected += 1
        message = {
            "mobile": mobile,
            "country_code": cc,
            "dest_msisdn": dest,
            "text": text,
            "uid": None,
            "sid": uid,
            "segments": count,
            "price": 0.0 if local else price,
            "route": p["ROUTE_ID"],
            "sender": p.get("ORIGINAL_ADDR") or None,
            "customer_body": p.get("CUSTOMER_BODY"),
            "serial": p["SERIAL"],
            "timestamp": now,
            "final": outcome,
            "final_status": FINAL_STATES[outcome][0],  # the SMS_STATE
            "local_rejected": local,
            "final_at": final_at_ms(self.state, now),
        }
        self.recorder.accept(message)
        self.push_reports(message)
        return uid
