"""The receiver's endpoints come from the codecs' push routes (capabilities.Pushes): a
provider's endpoints are the union of its codecs', and each is answered as its route says."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from redis.asyncio import Redis

from dispatcher.providers import KINDS
from dispatcher.providers.capabilities import PushContext, Pushed, PushRoute
from dispatcher.webhooks.app import endpoints
from tests.webhooks.support import (
    SECRET,
    Hooks,
    cloudsms_packet,
    one_mobile_report,
    sent_campaign,
)


def test_the_endpoints_of_the_registry() -> None:
    table = endpoints(KINDS)
    assert {key: e.route.method for key, e in table.items()} == {
        ("cloudaten", "dlr"): "POST",
        ("cloudaten", "voice"): "POST",
        ("ycloud", "dlr"): "POST",
        ("ycloud", "inbound"): "POST",
        ("cloudsms", "dlr"): "POST",
        ("smsclouds", "mo"): "GET",
        ("smsclouds", "keyword"): "GET",
    }
    # Kinds that inherit a route do not replace the provider's own codec.
    own: object = KINDS[("smsclouds", "sms")]
    voice: object = KINDS[("cloudaten", "voice")]
    assert table[("smsclouds", "mo")].codec is own
    assert table[("cloudaten", "voice")].codec is voice


def _parse(body: bytes, query: Mapping[str, str], ctx: PushContext) -> Pushed:
    return Pushed()


class Fake:
    def __init__(self, *names: str) -> None:
        self.routes = {n: PushRoute("POST", _parse) for n in names}

    def push_routes(self) -> Mapping[str, PushRoute]:
        return self.routes

    def push_refusal(self, body: bytes, busy: bool, now: float) -> tuple[bytes, str] | None:
        return None


def test_a_providers_endpoints_are_the_union_of_its_codecs() -> None:
    sms, voice, again = Fake("dlr"), Fake("voice"), Fake("dlr", "mo")
    kinds = {("p", "sms"): sms, ("p", "voice"): voice, ("p", "other"): again,
             ("q", "sms"): object()}  # fmt: skip
    table = endpoints(kinds)
    assert sorted(table) == [("p", "dlr"), ("p", "mo"), ("p", "voice")]
    assert table[("p", "dlr")].codec is sms  # the first codec listed answers a shared route
    assert table[("p", "voice")].codec is voice and table[("p", "mo")].codec is again


async def test_call_reports_and_content_types(hooks: Hooks, redis: Redis) -> None:
    cid = await sent_campaign(redis, hooks.settings, "cloudaten")
    url = f"{hooks.base}/hooks/{SECRET}"
    body = orjson.dumps(one_mobile_report("cloudaten", cid, 1))
    async with hooks.session.post(f"{url}/cloudaten/voice", data=body) as r:
        assert (r.status, await r.read()) == (200, b"ok")
        assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await hooks.stats())["cloudaten.applied"] == 1
    async with hooks.session.post(f"{url}/cloudaten/voice", data=b"{}") as r:
        assert r.status == 400 and r.headers["Content-Type"] == "application/json; charset=utf-8"
        assert orjson.loads(await r.read()) == {"error": "sid: is required"}
    ccid = await sent_campaign(redis, hooks.settings, "cloudsms")
    packet = orjson.dumps(cloudsms_packet(ccid, 0))
    async with hooks.session.post(f"{url}/cloudsms/dlr", data=packet) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    async with hooks.session.get(f"{url}/ycloud/inbound") as r:
        assert r.status == 405 and r.headers["Allow"] == "POST"
    async with hooks.session.post(f"{url}/cloudsms/voice", data=packet) as r:
        assert r.status == 404
