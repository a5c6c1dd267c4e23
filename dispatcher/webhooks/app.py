"""``python -m dispatcher webhooks``: an aiohttp server answering each provider as it expects.

Every endpoint sits behind a secret path segment (``/hooks/<secret>/<provider>/<name>``,
the secret from ``webhooks.secret_env``) and a body-size limit. The endpoints are the push
routes of the provider's codecs (``capabilities.Pushes``: every kind's, so one provider may
push SMS reports, call reports and inbound messages); each route parses its push and says
how the provider expects to be answered. Whoever learns the secret can push anything, so
nothing is taken on trust:

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

A provider that reads its answer's body rather than the HTTP status gets refusals and 503s
in its own format too (``Pushes.push_refusal``); the others a JSON ``{"error": …}``.

``/healthz`` answers these counts (a live process); server.py adds ``/readyz`` and
``/metrics`` (health.py), where the same counts are ``dispatcher_webhook_pushes_total``.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.config import Settings
from dispatcher.providers import KINDS
from dispatcher.providers.base import BadPush, Inbound, Report
from dispatcher.providers.capabilities import PushContext, Pushes, PushRoute, capability
from dispatcher.tracking import REFUSED, Applied, Tracker

log = logging.getLogger("dispatcher.webhooks")
TRACKER = web.AppKey("tracker", Tracker)
SECRET = web.AppKey("secret", str)
SETTINGS = web.AppKey("settings", Settings)
COUNTS = web.AppKey("counts", dict)
#: Seconds a provider is asked to wait when Redis is down (they retry a minute later anyway).
RETRY_AFTER_S = 60


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One push endpoint: the route, and the codec that answers its refusals."""

    codec: Pushes
    route: PushRoute


ENDPOINTS = web.AppKey("endpoints", dict[tuple[str, str], Endpoint])


def endpoints(kinds: Mapping[tuple[str, str], object]) -> dict[tuple[str, str], Endpoint]:
    """(provider, name) → endpoint, from every codec that takes pushes. A provider's
    endpoints are the union of its codecs' routes; where two kinds share one (they inherit
    it), the first codec listed answers it."""
    table: dict[tuple[str, str], Endpoint] = {}
    for (provider, _kind), codec in kinds.items():
        pushes = capability(codec, Pushes)
        if pushes is None:
            continue
        for name, route in pushes.push_routes().items():
            table.setdefault((provider, name), Endpoint(pushes, route))
    return table


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
    verdicts = await tracker.check_many(provider, reports)
    for report, verdict in zip(reports, verdicts, strict=True):
        if isinstance(verdict, Applied) and verdict in REFUSED:
            raise Refused.contradicts(verdict, report)
    placed = list(zip(reports, verdicts, strict=True))
    for outcome in await tracker.write_many(provider, placed):
        _count(request, f"{provider}.{outcome}")
        if outcome is Applied.UNKNOWN:  # answered, not stored
            log.info("%s report for an unknown message; answered, not stored", provider)


async def _store(request: web.Request, message: Inbound, what: str) -> None:
    tracker = request.app[TRACKER]
    recipient, refusal = await tracker.link(message)
    if refusal is not None:
        raise Refused.contradicts(refusal, message)
    await tracker.add_inbound(message, recipient)
    _count(request, f"{message.provider}.{what}")


async def receive(request: web.Request, provider: str, route: PushRoute) -> web.Response:
    """Parse one push, land its reports and store its inbound message, and answer as the
    provider expects."""
    ctx = PushContext(time.time(), request.app[SETTINGS].webhooks.keyword_response)
    try:
        pushed = route.parse(await request.read(), request.query, ctx)
    except BadPush as exc:
        raise Refused.malformed(exc) from None
    if pushed.reports:
        await _land(request, provider, pushed.reports)
    if pushed.inbound is not None:
        await _store(request, pushed.inbound, route.what)
    return web.Response(body=pushed.answer, headers={"Content-Type": pushed.content_type})


async def _answer(request: web.Request, codec: Pushes, status: int, text: str) -> web.Response:
    """A refusal (or 503) in the provider's terms where it reads the body, else the HTTP
    status with a JSON error."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}
    own = codec.push_refusal(await request.read(), status == 503, time.time())
    if own is not None:
        body, content_type = own
        return web.Response(
            status=status, body=body, headers={**headers, "Content-Type": content_type}
        )
    return web.json_response({"error": text}, status=status, headers=headers or None)


async def hook(request: web.Request) -> web.Response:
    """Check the secret (in constant time) and hand over to the provider's push route."""
    given = request.match_info["secret"]
    if not hmac.compare_digest(given.encode(), request.app[SECRET].encode()):
        _count(request, "refused")
        raise web.HTTPNotFound()
    provider, name = request.match_info["provider"], request.match_info["name"]
    endpoint = request.app[ENDPOINTS].get((provider, name))
    if endpoint is None:
        raise web.HTTPNotFound()
    method = endpoint.route.method
    if request.method != method:
        raise web.HTTPMethodNotAllowed(request.method, [method])
    try:
        return await receive(request, provider, endpoint.route)
    except Refused as exc:
        _count(request, f"{provider}.refused.{exc.reason}")
        log.warning("%s/%s push refused (%s): %s", provider, name, exc.reason, exc.detail)
        return await _answer(request, endpoint.codec, exc.status, exc.detail)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        _count(request, "redis_unavailable")
        log.warning(
            "%s/%s push not stored: Redis unavailable (%s); answered 503",
            provider, name, type(exc).__name__,
        )  # fmt: skip
        return await _answer(request, endpoint.codec, 503, "storage unavailable; retry later")


async def stats(request: web.Request) -> web.Response:
    """Counts of what was received and refused (no secrets, no message content)."""
    return web.json_response(request.app[COUNTS])


def build_app(settings: Settings, tracker: Tracker) -> web.Application:
    app = web.Application(client_max_size=settings.webhooks.max_body_bytes)
    app[TRACKER] = tracker
    app[SECRET] = settings.webhooks.secret()
    app[SETTINGS] = settings
    app[COUNTS] = {}
    app[ENDPOINTS] = endpoints(KINDS)
    app.router.add_route("*", "/hooks/{secret}/{provider}/{name}", hook)
    app.router.add_get("/healthz", stats)
    return app
