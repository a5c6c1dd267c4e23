"""Smsclouds v3, as its integration manual describes it (seed 004: Create Token, User
Credentials, Errors, Send Messages "MT", API "ID route" and "ID Country", Messages: ID and
Status "DLR").

Bearer tokens; errors as ``{"error": {"information", "status_code"}}`` with 400 (no JSON,
or without the Accept / Content-Type headers the manual lists), 401 (bad token), 422 (a
wrong parameter; :mod:`dispatcher.mock.smsclouds_rules` has every rule). The mock fills
``<+B+>``…``<+F+>`` from each recipient (name, field1…field4) and keeps every message as the
handset would get it.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from dispatcher.mock import smsclouds_rules as rules
from dispatcher.mock.reports import answered, decide, final_at_ms, gatekeeper, now_ms
from dispatcher.mock.smsclouds_rules import TOKENS, Invalid, error, fill, json_response
from dispatcher.mock.state import MockState

__all__ = ["PREFIX", "TOKENS", "Invalid", "Smsclouds", "error", "fill"]

PREFIX = "/smsclouds"
ROUTES = [
    {"route": 77, "name": "Mixta 1 Masiva", "country": "Mexico", "price": 0.012,
     "description": "74342, Long Code"},
    {"route": 79, "name": "Mixta 2 Masiva", "country": "Mexico", "price": 0.012,
     "description": "98766, Long Code"},
    {"route": 87, "name": "Premium 2 Masiva", "country": "Mexico", "price": 1,
     "description": "74342"},
]  # fmt: skip
COUNTRIES = [{"country": 1, "name": "Mexico"}, {"country": 2, "name": "USA"}]


class Smsclouds:
    name = "smsclouds"

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.recorder = state.recorder(self.name)
        self._campaign = 11060007
        self._message = 46608336
        self.campaigns: dict[int, dict[str, Any]] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{PREFIX}/api/v3/campaign", self.campaign),
            web.get(f"{PREFIX}/api/v3/user/routes", self.user_routes),
            web.get(f"{PREFIX}/api/v3/user/countries", self.user_countries),
            web.get(f"{PREFIX}/api/v1/user", self.user),
            web.get(f"{PREFIX}/api/v3/campaign/{{campaign}}/messages", self.messages),
        ]

    def unauthorised(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        if token in self.state.settings.smsclouds_tokens:
            return None
        self.recorder.stats.unauthorized += 1
        return error(401, "Unauthenticated.")

    async def _enter(self, request: web.Request, body: bool = False) -> web.Response | None:
        """Count, wait, then the token (401) and the headers the manual lists (400)."""
        self.recorder.stats.requests += 1
        await self.state.delay()
        return self.unauthorised(request) or rules.header_refusal(request, body)

    async def user_routes(self, request: web.Request) -> web.Response:
        return await self._enter(request) or json_response(ROUTES)

    async def user_countries(self, request: web.Request) -> web.Response:
        return await self._enter(request) or json_response(COUNTRIES)

    async def user(self, request: web.Request) -> web.Response:
        data = {
            "information": "User Found",
            "user": "mock@smsclouds.test",
            "name": "Mock",
            "surname": "User",
            "credit": round(self.state.balance, 2),
            "API_settings": [{"name": "mock", "creation": "2021-07-09 10:00:26",
                              "expires": "2099-07-09 10:00:26"}],
        }  # fmt: skip
        return await self._enter(request) or json_response({"data": data})

    async def messages(self, request: web.Request) -> web.Response:
        """Messages: ID and Status "DLR". Limited like the list APIs: once a minute per token."""
        refused = await self._enter(request)
        if refused is not None:
            return refused
        number = rules.integer(request.match_info["campaign"])
        campaign = self.campaigns.get(number) if number is not None else None
        if number is None or campaign is None:
            return error(404, "The specified campaign could not be found.")
        token = request.headers.get("Authorization", "")
        if not self.state.limiter.allow(f"{self.name}:{token}", self.recorder):
            return error(429, "Too many requests.")
        now = now_ms()
        first = campaign["first"]
        rows = self.recorder.messages[first : first + campaign["count"]]
        data = [
            {
                "id": int(m["sid"]),
                "cellphone": m["mobile"],
                "status": m["final_status"] if now >= m["final_at"] else "in progress",
                "sent_date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(m["timestamp"] / 1000)),
                "text": m["text"],
            }
            for m in rows
        ]
        done = sum(1 for m in rows if now >= m["final_at"])
        return json_response(
            {
                "message": "Completado Correctamente",
                "campaign": number,
                "name": campaign["name"],
                "campaign_status": "inserted",
                "scheduled_date": campaign["scheduled_date"],
                "recipients_count": campaign["count"],
                "percentage": done * 100 // max(1, campaign["count"]),
                "balance": round(self.state.balance, 3),
                "data": data,
            }
        )

    async def campaign(self, request: web.Request) -> web.Response:
        raw = await request.read()  # the whole request has arrived: the provider has it …
        refused = await self._enter(request, body=True)  # … and works on it, whether the
        if refused is not None:  # client waits or not
            return refused
        gated = await gatekeeper(
            self.state,
            self.recorder,
            self.name,
            request,
            lambda: error(500, "We had a problem with our server. Try again later."),
        )
        if gated is not None:
            return gated
        body = rules.parse_json(raw)
        if body is None:
            self.recorder.stats.rejected += 1
            return error(400, "The request must carry a JSON body.")
        try:
            response = json_response(self.create(body))
        except Invalid as exc:
            self.recorder.stats.rejected += 1
            response = error(422, str(exc))
        return await answered(self.state, self.recorder, request, response)

    def create(self, body: dict[str, Any], route_required: bool = False) -> dict[str, Any]:
        texts = rules.check_campaign(body, route_required)
        recipients: list[dict[str, Any]] = body["recipients"]
        route, country = rules.integer(body.get("route")), rules.integer(body.get("country"))
        chosen = next((r for r in ROUTES if r["route"] == route), None)
        if route is not None and chosen is None:
            raise Invalid("The selected route is invalid.")
        if country is not None and country not in {c["country"] for c in COUNTRIES}:
            raise Invalid("The selected country is invalid.")
        date = body.get("scheduled_date")
        route_info = chosen or ROUTES[0]
        cost = float(route_info["price"]) * len(recipients)  # type: ignore[arg-type]
        if not self.state.charge(cost):
            raise Invalid("Saldo insuficiente.")
        self._campaign += 1
        now = int(time.time() * 1000)
        for r, filled in zip(recipients, texts, strict=True):
            self._message += 1
            outcome = decide(self.state, f"{self.name}:{r['cellphone']}")
            self.recorder.accept(
                {
                    "mobile": str(r["cellphone"]),
                    "text": filled,
                    "uid": None,
                    "sid": str(self._message),
                    "campaign": self._campaign,
                    "campaign_name": body.get("campaign_name"),
                    "timestamp": now,
                    "final": outcome,
                    # Smsclouds knows only whether the carrier took it.
                    "final_status": "failed" if outcome == "rejected" else "sent",
                    "final_at": final_at_ms(self.state, now),
                }
            )
        self.campaigns[self._campaign] = {
            "name": body.get("campaign_name"),
            "scheduled_date": date,
            "first": len(self.recorder.messages) - len(recipients),
            "count": len(recipients),
        }
        self.recorder.batch(len(recipients))
        flags = {flag: bool(body.get(flag)) for flag in ("encode", "long_message")}
        return {
            "message": "Completado Correctamente",
            "campaign": self._campaign,
            "campaign_name": body.get("campaign_name"),
            "route": route_info["name"],
            "country": "Mexico" if country in (None, 1) else "USA",
            "scheduled_date": date,
            "recipients_count": len(recipients),
            **flags,
            "balance": round(self.state.balance, 3),
        }
