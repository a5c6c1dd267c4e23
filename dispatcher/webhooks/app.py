"""``python -m dispatcher webhooks``: an aiohttp server answering each provider as it expects.

Every endpoint sits behind a secret path segment (``/hooks/<secret>/<provider>/<kind>``,
the secret from ``webhooks.secret_env``) and a body-size limit. A body that is not what the
provider documents gets 400 and changes nothing; a well-formed report about a message we do
not know still gets 200, or the provider would retry it five times for nothing.

=================================  ======  =====================================================
path                               method  answer
=================================  ======  =====================================================
``cloudaten/dlr``, ``cloudaten/voice``  POST    200 ``ok`` (seed 000 §2.2, §3.3)
``ycloud/dlr``                     POST    200 ``ok`` (seed 001 §2.2)
``ycloud/inbound``                 POST    200 ``ok`` (seed 001 §2.4)
``cloudsms/dlr``                   POST    an ANSWER packet echoing the SERIAL, RESULT_CODE 1
``smsclouds/mo``                   GET     ``ok`` (seed 004, MO push by GET)
``smsclouds/keyword``              GET     the configured auto-response text
=================================  ======  =====================================================
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from dispatcher.config import Settings
from dispatcher.providers import cloudsms, smsclouds, ycloud
from dispatcher.providers.base import BadPush, Report
from dispatcher.providers.cloudaten import STATUSES as CLOUDATEN_STATUSES
from dispatcher.providers.common import parse_push
from dispatcher.tracking import Applied, Tracker

log = logging.getLogger("dispatcher.webhooks")
TRACKER = web.AppKey("tracker", Tracker)
SECRET = web.AppKey("secret", str)
SETTINGS = web.AppKey("settings", Settings)
COUNTS = web.AppKey("counts", dict)

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _bad(exc: BadPush) -> web.Response:
    return web.json_response({"error": str(exc)}, status=400)


def _count(request: web.Request, what: str) -> None:
    counts: dict[str, int] = request.app[COUNTS]
    counts[what] = counts.get(what, 0) + 1


async def _apply(request: web.Request, provider: str, reports: Sequence[Report]) -> None:
    tracker = request.app[TRACKER]
    for report in reports:
        outcome = await tracker.apply(provider, report)
        _count(request, f"{provider}.{outcome}")
        if outcome is Applied.UNKNOWN:
            log.info("%s report for an unknown message; answered, not stored", provider)


async def cloudaten_dlr(request: web.Request) -> web.Response:
    try:
        report = parse_push(await request.read(), CLOUDATEN_STATUSES, "status_timestamp")
    except BadPush as exc:
        return _bad(exc)
    await _apply(request, "cloudaten", [report])
    return web.Response(text="ok")


async def ycloud_dlr(request: web.Request) -> web.Response:
    try:
        report = parse_push(await request.read(), ycloud.STATUSES, "push_timestamp")
    except BadPush as exc:
        return _bad(exc)
    await _apply(request, "ycloud", [report])
    return web.Response(text="ok")


async def ycloud_inbound(request: web.Request) -> web.Response:
    try:
        message = ycloud.parse_inbound(await request.read())
    except BadPush as exc:
        return _bad(exc)
    await request.app[TRACKER].add_inbound(message)
    _count(request, "ycloud.inbound")
    return web.Response(text="ok")


async def cloudsms_dlr(request: web.Request) -> web.Response:
    try:
        serial, reports = cloudsms.parse_report_packet(await request.read())
    except BadPush as exc:
        return _bad(exc)
    await _apply(request, "cloudsms", reports)
    return web.Response(
        body=cloudsms.answer_packet(serial, time.time()), content_type="application/json"
    )


async def smsclouds_mo(request: web.Request) -> web.Response:
    try:
        message = smsclouds.parse_mo(request.query)
    except BadPush as exc:
        return _bad(exc)
    await request.app[TRACKER].add_inbound(message)
    _count(request, "smsclouds.mo")
    return web.Response(text="ok")


async def smsclouds_keyword(request: web.Request) -> web.Response:
    try:
        message = smsclouds.parse_keyword(request.query)
    except BadPush as exc:
        return _bad(exc)
    await request.app[TRACKER].add_inbound(message)
    _count(request, "smsclouds.keyword")
    return web.Response(text=request.app[SETTINGS].webhooks.keyword_response)


ROUTES: dict[tuple[str, str], tuple[str, Handler]] = {
    ("cloudaten", "dlr"): ("POST", cloudaten_dlr),
    ("cloudaten", "voice"): ("POST", cloudaten_dlr),
    ("ycloud", "dlr"): ("POST", ycloud_dlr),
    ("ycloud", "inbound"): ("POST", ycloud_inbound),
    ("cloudsms", "dlr"): ("POST", cloudsms_dlr),
    ("smsclouds", "mo"): ("GET", smsclouds_mo),
    ("smsclouds", "keyword"): ("GET", smsclouds_keyword),
}


async def hook(request: web.Request) -> web.Response:
    """Check the secret (in constant time) and hand over to the provider's handler."""
    given = request.match_info["secret"]
    if not hmac.compare_digest(given.encode(), request.app[SECRET].encode()):
        _count(request, "refused")
        raise web.HTTPNotFound()
    route = ROUTES.get((request.match_info["provider"], request.match_info["kind"]))
    if route is None:
        raise web.HTTPNotFound()
    method, handler = route
    if request.method != method:
        raise web.HTTPMethodNotAllowed(request.method, [method])
    return await handler(request)


async def stats(request: web.Request) -> web.Response:
    """Counts of what was received (no secrets, no message content)."""
    return web.json_response(request.app[COUNTS])


def build_app(settings: Settings, tracker: Tracker) -> web.Application:
    app = web.Application(client_max_size=settings.webhooks.max_body_bytes)
    app[TRACKER] = tracker
    app[SECRET] = settings.webhooks.secret()
    app[SETTINGS] = settings
    app[COUNTS] = {}
    app.router.add_route("*", "/hooks/{secret}/{provider}/{kind}", hook)
    app.router.add_get("/healthz", stats)
    return app
