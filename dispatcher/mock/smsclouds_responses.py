"""Smsclouds "Receive Responses "MO" (Option 1)" (seed 004): the replies handsets sent to
the account's messages, asked for with ``POST api/v3/responses`` (the URL the manual gives;
its "HTTP Request" line says ``api/v3/response``: both are served).

The JSON carries ``type`` (integer, required): 1 by date (``from``, ``to``: dates, optional;
``to`` "if not specified will search until actual date"), 2 by message ids (``messages``;
the table spells it ``message``), 3 by ``cellphone``, 4 by campaign ids (``campaigns``).
Ids come one or as an array ("campaigns": ["8528381"] in the manual's example). The answer
echoes ``type`` as sent and the window searched; when ``from`` is not given the window
starts on the first of the current month (the example's "from": "2020-05-01 00:00:00"
beside "to": "2020-05-25 13:25:22"), and only type 1 is filtered by it. The manual gives
Smsclouds no limit on how often this may be asked, so the mock sets none.

The replies are what ``POST /_mock/inbound`` with ``"provider": "smsclouds"`` makes a handset
send (the same reply is pushed to ``smsclouds_mo_url`` when that is set): a reply to the
``message_id`` given, or else to the last message sent to that cellphone. Dates are UTC.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from dispatcher.mock import smsclouds_rules as rules
from dispatcher.mock.smsclouds import PREFIX, Smsclouds
from dispatcher.mock.smsclouds_rules import Invalid, error, json_response
from dispatcher.mock.state import MockState

TYPES = (1, 2, 3, 4)


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def month_start() -> str:
    return time.strftime("%Y-%m-01 00:00:00", time.gmtime())


def id_list(body: dict[str, Any], kind: int, *names: str) -> set[int]:
    """The ids of ``type`` 2 or 4: one integer or an array of them, under the first of
    ``names`` given."""
    name = next((n for n in names if rules.present(body, n)), names[0])
    value = body.get(name)
    values = value if isinstance(value, list) else [value]
    if value is None or not values:
        raise Invalid(f"The {names[0]} field is required when type is {kind}.")
    ids = set()
    for i, item in enumerate(values):
        number = rules.integer(item)
        if number is None:
            raise Invalid(f"The {name}.{i} must be an integer.")
        ids.add(number)
    return ids


class SmscloudsResponses:
    def __init__(self, state: MockState, sms: Smsclouds) -> None:
        self.state = state
        self.sms = sms
        #: (cellphone, the result object the manual shows) of every reply received
        self.replies: list[tuple[str, dict[str, Any]]] = []
        self._received = 977929

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{PREFIX}/api/v3/responses", self.responses),
            web.post(f"{PREFIX}/api/v3/response", self.responses),
        ]

    def sent_message(self, cellphone: str, message_id: int | None) -> dict[str, Any] | None:
        key, value = ("mobile", cellphone) if message_id is None else ("sid", str(message_id))
        messages: list[dict[str, Any]] = self.sms.recorder.messages
        return next((m for m in reversed(messages) if m[key] == value), None)

    def record(self, cellphone: str, text: str, message_id: Any = None) -> dict[str, Any]:
        """A handset's reply, kept for this endpoint; returns its result object."""
        wanted = rules.integer(message_id)
        sent = self.sent_message(cellphone, wanted)
        self._received += 1
        reply = {
            "received_id": self._received,
            "campaign_id": sent["campaign"] if sent else None,
            "campaign_name": sent["campaign_name"] if sent else None,
            "message_id": wanted if wanted is not None else (int(sent["sid"]) if sent else None),
            "message": sent["text"] if sent else None,
            "response": text,
            "sent_at": stamp(sent["timestamp"] / 1000) if sent else None,
            "received_at": stamp(time.time()),
        }
        self.replies.append((cellphone, reply))
        return reply

    async def responses(self, request: web.Request) -> web.Response:
        raw = await request.read()
        refused = await self.sms._enter(request, body=True)
        if refused is not None:
            return refused
        body = rules.parse_json(raw)
        if body is None:
            return error(400, "The request must carry a JSON body.")
        try:
            answer = self.search(body)
        except Invalid as exc:
            return error(422, str(exc))
        self.sms.recorder.stats.list_calls += 1
        self.sms.recorder.stats.responses_calls += 1
        return json_response(answer)

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        kind = rules.need_integer(body, "type", required=True)
        if kind not in TYPES:
            raise Invalid("The selected type is invalid.")
        rules.need_date(body, "from")
        rules.need_date(body, "to")
        start: str = body.get("from") or month_start()
        end: str = body.get("to") or stamp(time.time())
        if kind == 1:
            found = [r for _, r in self.replies if start <= r["received_at"] <= end]
        elif kind == 2:
            messages = id_list(body, kind, "messages", "message")
            found = [r for _, r in self.replies if r["message_id"] in messages]
        elif kind == 3:
            rules.need_integer(body, "cellphone", required=True)
            cellphone = str(body["cellphone"])
            found = [r for c, r in self.replies if c == cellphone]
        else:
            campaigns = id_list(body, kind, "campaigns")
            found = [r for _, r in self.replies if r["campaign_id"] in campaigns]
        return {
            "message": "Completado Correctamente",
            "type": body["type"],
            "from": start,
            "to": end,
            "results": found,
        }
