"""The mock provider server: every provider under its own path prefix, plus /_mock controls.

``python -m dispatcher mock`` serves it; tests start it in-process with :func:`start`.
Once listening it prints ``mock listening on http://HOST:PORT`` so a parent process can wait
for that line instead of sleeping.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import secrets
import signal
import ssl
import sys
import time
from dataclasses import replace
from typing import Any

import orjson
import uvloop
from aiohttp import web

from dispatcher.mock.cloudaten import CloudAten
from dispatcher.mock.cloudaten_voice import CloudAtenVoice
from dispatcher.mock.cloudsms import CloudSms
from dispatcher.mock.front import FrontSite, Handler
from dispatcher.mock.reports import ListLimiter, Pusher, get_query, post_json
from dispatcher.mock.smsc import Smsc
from dispatcher.mock.smsclouds import Smsclouds
from dispatcher.mock.smsclouds_more import SmscloudsMore
from dispatcher.mock.smsclouds_responses import SmscloudsResponses
from dispatcher.mock.state import PROVIDERS, MockSettings, MockState
from dispatcher.mock.ycloud import YCloud

STATE = web.AppKey("state", MockState)
CLOUDSMS = web.AppKey("cloudsms", CloudSms)
SMSCLOUDS = web.AppKey("smsclouds", Smsclouds)
SMSCLOUDS_MO = web.AppKey("smsclouds_mo", SmscloudsResponses)
#: The SMPP SMSC, present when ``settings.smpp_port`` is not None; listening (``.port``) once
#: the app has started: ``runner.app[SMSC].port`` after :func:`start`.
SMSC = web.AppKey("smsc", Smsc)
#: Paths the lean front answers itself (see mock/front.py), with their handlers.
FRONT_ROUTES = web.AppKey("front_routes", dict[str, Handler])


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data: dict[str, Any] = {"providers": {n: r.stats.as_dict() for n, r in state.recorders.items()}}
    if SMSC in request.app:
        data["smsc"] = request.app[SMSC].as_dict()
    return _json(data)


async def messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    wanted = request.query.get("provider")
    smsc = request.app.get(SMSC)
    smpp = [{"provider": "smpp", **m} for m in smsc.messages] if smsc else []
    if wanted == "smpp" and smsc:
        return _json(smpp)
    if wanted is not None and wanted not in state.recorders:
        return _json({"error": f"unknown provider {wanted!r}"}, 404)
    names = [wanted] if wanted else list(state.recorders)
    listed = [{"provider": n, **m} for n in names for m in state.recorders[n].messages]
    return _json(listed if wanted else listed + smpp)


async def cloudsms_packets(request: web.Request) -> web.Response:
    """(time, RESULT_CODE) of every CloudSMS packet answered: when Busy was said, and when
    the next packet came."""
    return _json(request.app[CLOUDSMS].packets)


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    request.app[CLOUDSMS].packets.clear()
    request.app[SMSCLOUDS].campaigns.clear()
    request.app[SMSCLOUDS_MO].replies.clear()
    if SMSC in request.app:
        request.app[SMSC].reset()
    return _json({"reset": True})


async def smsc_disconnect(request: web.Request) -> web.Response:
    """Close every SMPP session at once, as a network failure would."""
    smsc = request.app.get(SMSC)
    if smsc is None:
        return _json({"error": "no SMSC: smpp_port not set"}, 404)
    return _json({"disconnected": smsc.disconnect_all()})


async def inbound(request: web.Request) -> web.Response:
    """Make a provider push an inbound message to the customer's URL, as a handset's reply
    would: YCloud §2.4 (POST JSON), Smsclouds MO and keyword requests (GET). A Smsclouds MO
    (no ``keyword``) is also kept for ``POST api/v3/responses``, whether pushed or not: a
    reply to ``message_id`` when given, else to the last message sent to ``mobile``."""
    state = request.app[STATE]
    try:
        body = orjson.loads(await request.read())
        provider, mobile, text = body["provider"], str(body["mobile"]), str(body["text"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return _json({"error": "expected provider, mobile and text"}, 400)
    settings = state.settings
    recorder = state.recorder(provider) if provider in state.recorders else None
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    if provider == "ycloud" and settings.ycloud_inbound_url and recorder:
        url = settings.ycloud_inbound_url
        push = orjson.dumps(
            {"id": secrets.token_hex(8), "mobile": mobile, "text": text,
             "inbound_timestamp": int(time.time() * 1000)}
        )  # fmt: skip
        state.pusher.schedule(recorder, 0, lambda s: post_json(s, url, push))
        return _json({"pushed": True})
    if provider == "smsclouds" and body.get("keyword") and settings.smsclouds_keyword_url:
        params = {"response": text, "cellphone": mobile, "keyword": str(body["keyword"]),
                  "date": stamp}  # fmt: skip
        session = state.pusher.session()
        async with session.get(settings.smsclouds_keyword_url, params=params) as resp:
            return _json({"status": resp.status, "answer": await resp.text()})
    if provider == "smsclouds" and recorder:
        # Kept for "Receive Responses MO (Option 1)", and pushed too when a URL is set.
        reply = request.app[SMSCLOUDS_MO].record(mobile, text, body.get("message_id"))
        answer: dict[str, Any] = {"pushed": False}
        answer.update((k, reply[k]) for k in ("received_id", "message_id", "campaign_id"))
        if settings.smsclouds_mo_url:
            url = settings.smsclouds_mo_url
            message_id = body.get("message_id", reply["message_id"] or "0")
            # One reply, one time: the push's date is the received_at read back later.
            params = {"response": text, "cellphone": mobile, "message_id": str(message_id),
                      "date": reply["received_at"]}  # fmt: skip
            state.pusher.schedule(recorder, 0, lambda s: get_query(s, url, params))
            answer["pushed"] = True
        return _json(answer)
    return _json({"error": f"no inbound URL set for {provider!r}"}, 400)


async def change_settings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _json({"error": "body must be JSON"}, 400)
    if not isinstance(body, dict):
        return _json({"error": "body must be a JSON object"}, 400)
    for key in body:
        if key not in MockSettings.RUNTIME:
            return _json({"error": f"{key}: not a runtime setting"}, 400)
    changes: dict[str, Any] = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in body.items()
    }
    state.settings = replace(state.settings, **changes)
    if "balance" in body:
        state.balance = float(body["balance"])
    return _json(state.settings.public())


@web.middleware
async def client_gone(request: web.Request, handler: Any) -> web.StreamResponse:
    """A client that went away mid-request (a killed worker) is nobody to answer: no
    traceback in the log, as a real provider would just drop it."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ConnectionResetError:
        return web.Response(status=499)


def build_app(settings: MockSettings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[client_gone])
    state = MockState(settings)
    app[STATE] = state
    app.add_routes(
        [
            web.get("/_mock/stats", stats),
            web.get("/_mock/messages", messages),
            web.post("/_mock/reset", reset),
            web.post("/_mock/inbound", inbound),
            web.get("/_mock/cloudsms/packets", cloudsms_packets),
            web.post("/_mock/settings", change_settings),
            web.post("/_mock/smsc/disconnect", smsc_disconnect),
        ]
    )
    state.pusher = Pusher(state)
    state.limiter = ListLimiter(state)
    cloudsms, smsclouds = CloudSms(state), Smsclouds(state)
    cloudaten, ycloud = CloudAten(state), YCloud(state)
    providers = (cloudaten, ycloud, cloudsms, smsclouds, CloudAtenVoice(state))
    app[FRONT_ROUTES] = {**cloudaten.front_routes(), **ycloud.front_routes()}
    app.add_routes(SmscloudsMore(state, smsclouds).routes())
    smsclouds_mo = SmscloudsResponses(state, smsclouds)
    app.add_routes(smsclouds_mo.routes())
    app[SMSCLOUDS_MO] = smsclouds_mo
    for provider in providers:
        assert provider.name in PROVIDERS
        app.add_routes(provider.routes())
    app[CLOUDSMS] = cloudsms
    app[SMSCLOUDS] = smsclouds

    async def close_pusher(_app: web.Application) -> None:
        await state.pusher.close()

    app.on_cleanup.append(close_pusher)
    if settings.smpp_port is not None:
        smsc = app[SMSC] = Smsc(state)

        async def start_smsc(_app: web.Application) -> None:
            await smsc.start()

        async def close_smsc(_app: web.Application) -> None:
            await smsc.close()

        app.on_startup.append(start_smsc)
        app.on_cleanup.append(close_smsc)
    return app


async def start(settings: MockSettings) -> tuple[web.AppRunner, int]:
    """Serve on loopback; returns the runner (``await runner.cleanup()``) and the bound port."""
    runner = web.AppRunner(build_app(settings), access_log=None, handle_signals=False)
    await runner.setup()
    site = FrontSite(
        runner,
        settings.host,
        settings.port,
        runner.app[FRONT_ROUTES],
        ssl_context=server_tls(settings),
    )
    await site.start()
    return runner, site.port


def server_tls(settings: MockSettings) -> ssl.SSLContext | None:
    """TLS for the whole mock when a certificate is given; with a client CA, two-way TLS
    as CloudSMS asks for: a client without a certificate signed by it is refused."""
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca:
        context.load_verify_locations(settings.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="answer delay")
    parser.add_argument("--latency-jitter-ms", type=float, default=0.0, help="± uniform jitter")
    parser.add_argument("--cloudaten-key", action="append", help="accepted X-API-Key")
    parser.add_argument("--ycloud-key", action="append", help="accepted Authorization")
    parser.add_argument("--cloudsms-key", action="append", help="accepted AUTH_KEY")
    parser.add_argument("--smsclouds-token", action="append", help="accepted Bearer token")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--tls-client-ca", help="require client certificates from this CA")
    parser.add_argument("--balance", type=float, default=1e12, help="starting balance")
    parser.add_argument(
        "--list-interval", type=float, default=60.0, help="seconds between allowed list calls"
    )
    parser.add_argument(
        "--voice-spacing", type=float, default=30.0, help="seconds between calls to a number"
    )
    parser.add_argument("--smpp-port", type=int, help="also serve the SMPP SMSC (0: free port)")
    parser.add_argument(
        "--smpp-account", action="append", type=smpp_account, metavar="SYSTEM_ID:PASSWORD",
        help="accepted SMPP bind (repeatable; replaces the default account)",
    )  # fmt: skip


def smpp_account(value: str) -> tuple[str, str]:
    system_id, colon, password = value.partition(":")
    if not colon or not system_id:
        raise argparse.ArgumentTypeError(f"{value!r}: expected SYSTEM_ID:PASSWORD")
    return system_id, password


async def _serve(settings: MockSettings) -> None:
    runner, port = await start(settings)
    scheme = "https" if settings.tls_cert else "http"
    print(f"mock listening on {scheme}://{settings.host}:{port}", flush=True)
    if SMSC in runner.app:
        print(f"mock smpp listening on {settings.host}:{runner.app[SMSC].port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    if not is_loopback(args.host):
        print(f"error: --host {args.host}: only loopback addresses are allowed", file=sys.stderr)
        return 2
    settings = MockSettings(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        balance=args.balance,
        list_interval_s=args.list_interval,
        voice_spacing_s=args.voice_spacing,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        smpp_port=args.smpp_port,
    )
    keys = {
        "cloudaten_keys": args.cloudaten_key,
        "ycloud_keys": args.ycloud_key,
        "cloudsms_keys": args.cloudsms_key,
        "smsclouds_tokens": args.smsclouds_token,
        "smpp_accounts": args.smpp_account,
    }
    given: dict[str, Any] = {k: tuple(v) for k, v in keys.items() if v}
    settings = replace(settings, **given)
    uvloop.run(_serve(settings))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dispatcher mock", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
