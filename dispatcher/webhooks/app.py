"""``python -m dispatcher webhooks``: an aiohttp server answering each provider as it expects.

Every endpoint sits behind a secret path segment (``/hooks/<secret>/<provider>/<kind>``,
the secret from ``webhooks.secret_env``) and a body-size limit. Whoever learns the secret
can push anything, so nothing is taken on trust:

* a body that is not what the provider documents (a ``uid`` that is not ours, digits that
  are not ASCII, a time before 2000 or over a day ahead) gets **400**;
* a well-formed report that contradicts what we sent (the campaign went out through another
  provider, has no such recipient, sent that recipient another number, or the provider gave
  that message another id) gets **422** (tracking.REFUSED);
* either changes nothing in Redis, is counted as ``<provider>.refused.<reason>`` on
  ``/healthz`` and logged at WARNING (never the path: it holds the secret);
* a well-formed report about a campaign or message we do not know gets the provider's
  success answer and is dropped, or the provider would push it again for days;
* Redis unreachable (refused, timed out, no pool connection within its wait) gets **503**
  with ``Retry-After``; the providers push again. Load never gets a 500: the Redis pool
  makes requests wait for a connection (server.py).

``/healthz`` answers these counts (a live process); server.py adds ``/readyz`` and
``/metrics`` (health.py), where the same counts are ``dispatcher_webhook_pushes_total``.

=================================  ======  =====================================================
path                               method  answer
=================================  ======  =====================================================
``cloudaten/dlr``, ``cloudaten/voice``  POST    200 ``ok`` (seed 000 §2.2, §3.3)
``ycloud/dlr``                     POST    200 ``ok`` (seed 001 §2.2)
``ycloud/inbound``                 POST    200 ``ok`` (seed 001 §2.4)
``cloudsms/dlr``                   POST    an ANSWER packet echoing the SERIAL, RESULT_CODE 1;
                                           refused: the same with 0x10000001
                                           (Invalid_parameter), 503: 0x03 (Busy)
``smsclouds/mo``                   GET     ``ok`` (seed 004, MO push by GET)
``smsclouds/keyword``              GET     the configured auto-response text
=================================  ======  =====================================================
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.config import Settings
from dispatcher.providers import cloudsms, smsclouds, ycloud
from dispatcher.providers.base import BadPush, Inbound, Report
from dispatcher.providers.cloudaten import STATUSES as CLOUDATEN_STATUSES
from dispatcher.providers.common import parse_push
from dispatcher.tracking import REFUSED, Applied, Target, Tracker

log = logging.getLogger("dispatcher.webhooks")
TRACKER = web.AppKey("tracker", Tracker)
SECRET = web.AppKey("secret", str)
SETTINGS = web.AppKey("settings", Settings)
COUNTS = web.AppKey("counts", dict)
#: Seconds a provider is asked to wait when Redis is down (they retry a minute later anyway).
RETRY_AFTER_S = 60
BUSY = 0x03  # CloudSMS "The platform is busy. Please try again later"

Handler = Callable[[web.Request], Awaitable[web.Response]]


class Refused(Exception):
    """A push we will not store: ``status`` 400 (malformed) or 422 (contradicts what we
    sent); ``reason`` is a short fixed word for the counters, ``detail`` for the log."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail

    @classmethod
    def malformed(cls, exc: BadPush) -> Refused:
        leaf = re.sub(r"\[[0-9]+\]", "", exc.field).rsplit(".", 1)[-1].lower()
        return cls(400, f"bad_{leaf}", str(exc))

    @classmethod
    def contradicts(cls, outcome: Applied, named: Report | Inbound) -> Refused:
        if isinstance(named, Report) and named.campaign_id is not None:
            where = f"campaign {named.campaign_id}"
            where += f" recipient {named.index}" if named.index is not None else ""
        else:
            where = f"message {named.message_id}"
        return cls(422, outcome.value, f"{where}: {outcome.value.replace('_', ' ')}")


def _count(request: web.Request, what: str) -> None:
    counts: dict[str, int] = request.app[COUNTS]
    counts[what] = counts.get(what, 0) + 1


async def _land(request: web.Request, provider: str, reports: Sequence[Report]) -> None:
    """Check every report, then write them: a packet is applied whole or not at all."""
    tracker = request.app[TRACKER]
    placed: list[tuple[Report, Target | Applied]] = []
    for report in reports:
        target = await tracker.check(provider, report)
        if isinstance(target, Applied) and target in REFUSED:
            raise Refused.contradicts(target, report)
        placed.append((report, target))
    for report, target in placed:
        if isinstance(target, Applied):
            outcome = target  # UNKNOWN: answered, not stored
        else:
            outcome = await tracker.write(provider, report, target)
        _count(request, f"{provider}.{outcome}")
        if outcome is Applied.UNKNOWN:
            log.info("%s report for an unknown message; answered, not stored", provider)


async def _store(request: web.Request, message: Inbound, what: str) -> None:
    tracker = request.app[TRACKER]
    recipient, refusal = await tracker.link(message)
    if refusal is not None:
        raise Refused.contradicts(refusal, message)
    await tracker.add_inbound(message, recipient)
    _count(request, f"{message.provider}.{what}")


async def one_mobile_dlr(request: web.Request, provider: str) -> web.Response:
    statuses, time_field = (
        (CLOUDATEN_STATUSES, "status_timestamp")
        if provider == "cloudaten"
        else (ycloud.STATUSES, "push_timestamp")
    )
    try:
        report = parse_push(await request.read(), statuses, time_field)
    except BadPush as exc:
        raise Refused.malformed(exc) from None
    await _land(request, provider, [report])
    return web.Response(text="ok")


async def cloudaten_dlr(request: web.Request) -> web.Response:
    return await one_mobile_dlr(request, "cloudaten")


async def ycloud_dlr(request: web.Request) -> web.Response:
    return await one_mobile_dlr(request, "ycloud")


async def ycloud_inbound(request: web.Request) -> web.Response:
    try:
        message = ycloud.parse_inbound(await request.read())
    except BadPush as exc:
        raise Refused.malformed(exc) from None
    await _store(request, message, "inbound")
    return web.Response(text="ok")


async def cloudsms_dlr(request: web.Request) -> web.Response:
    try:
        serial, reports = cloudsms.parse_report_packet(await request.read())
    except BadPush as exc:
        raise Refused.malformed(exc) from None
    await _land(request, "cloudsms", reports)
    return web.Response(
        body=cloudsms.answer_packet(serial, time.time()), content_type="application/json"
    )


async def smsclouds_mo(request: web.Request) -> web.Response:
    try:
        message = smsclouds.parse_mo(request.query)
    except BadPush as exc:
        raise Refused.malformed(exc) from None
    await _store(request, message, "mo")
    return web.Response(text="ok")


async def smsclouds_keyword(request: web.Request) -> web.Response:
    try:
        message = smsclouds.parse_keyword(request.query)
    except BadPush as exc:
        raise Refused.malformed(exc) from None
    await _store(request, message, "keyword")
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


async def _answer(
    request: web.Request, provider: str, status: int, code: int, text: str
) -> web.Response:
    """A refusal in the provider's terms: CloudSMS reads an ANSWER packet echoing the
    SERIAL (seed 002, "DR response"), the others the HTTP status."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    serial = cloudsms.serial_of(await request.read()) if provider == "cloudsms" else None
    if serial is not None:
        body = cloudsms.answer_packet(serial, time.time(), code)
        return web.Response(
            status=status, body=body, content_type="application/json", headers=headers
        )
    return web.json_response({"error": text}, status=status, headers=headers)


async def hook(request: web.Request) -> web.Response:
    """Check the secret (in constant time) and hand over to the provider's handler."""
    given = request.match_info["secret"]
    if not hmac.compare_digest(given.encode(), request.app[SECRET].encode()):
        _count(request, "refused")
        raise web.HTTPNotFound()
    provider, kind = request.match_info["provider"], request.match_info["kind"]
    route = ROUTES.get((provider, kind))
    if route is None:
        raise web.HTTPNotFound()
    method, handler = route
    if request.method != method:
        raise web.HTTPMethodNotAllowed(request.method, [method])
    try:
        return await handler(request)
    except Refused as exc:
        _count(request, f"{provider}.refused.{exc.reason}")
        log.warning("%s/%s push refused (%s): %s", provider, kind, exc.reason, exc.detail)
        code = cloudsms.INVALID_PARAMETER
        return await _answer(request, provider, exc.status, code, exc.detail)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        _count(request, "redis_unavailable")
        log.warning(
            "%s/%s push not stored: Redis unavailable (%s); answered 503",
            provider, kind, type(exc).__name__,
        )  # fmt: skip
        return await _answer(request, provider, 503, BUSY, "storage unavailable; retry later")


async def stats(request: web.Request) -> web.Response:
    """Counts of what was received and refused (no secrets, no message content)."""
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
