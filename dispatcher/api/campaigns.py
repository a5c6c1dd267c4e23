"""The requests that create and steer campaigns.

A campaign comes as one JSON document, or, for a big list, as ``multipart/form-data``: a
``campaign`` part (the JSON without recipients) then a ``recipients`` part (CSV, or JSON
lines), which is read a piece at a time, validated and staged in Redis as it arrives
(staging.py), so the upload is never held whole. The campaign appears only once the whole
list has been read and found good: a bad row is a 422 naming its line, and what was staged
is deleted. A repeated ``Idempotency-Key`` whose first enqueue is still going on is a 409.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import orjson
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from dispatcher.api.problems import Conflict
from dispatcher.api.state import CLIENT, json_response
from dispatcher.client import Client
from dispatcher.estimate import estimate
from dispatcher.model import Campaign, CampaignError, CampaignState, Enqueued, Recipient
from dispatcher.recipients_file import NdjsonReader, RecipientReader
from dispatcher.staging import EnqueueInProgress

#: Bytes read from an upload at a time (and validated in a worker thread meanwhile).
PIECE = 256 * 1024
#: The ``campaign`` part of an upload is a small JSON document.
MAX_CAMPAIGN_PART = 1024 * 1024
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
CSV_TYPES = frozenset({"text/csv", "text/plain", "application/csv", "application/octet-stream"})
MAX_REASON = 200


def _client(request: web.Request) -> Client:
    return request.app[CLIENT]


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise CampaignError(name, "must be true or false")
    return raw in ("true", "1")


def _decode(raw: bytes, what: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CampaignError(what, f"not valid JSON ({exc})") from None


def _keyed(data: Any, request: web.Request) -> Any:
    """The ``Idempotency-Key`` header as the campaign's ``idempotency_key``."""
    key = request.headers.get("Idempotency-Key")
    if key is None or not isinstance(data, dict):
        return data
    given = data.get("idempotency_key")
    if given not in (None, key):
        raise CampaignError("idempotency_key", "differs from the Idempotency-Key header")
    return {**data, "idempotency_key": key}


async def create(request: web.Request) -> web.Response:
    client = _client(request)
    allow_empty = _flag(request, "allow_empty")
    try:
        if request.content_type == "application/json":
            data = _keyed(_decode(await request.read(), "campaign"), request)
            answer = await client.enqueue(Campaign.from_dict(data), allow_empty=allow_empty)
        elif request.content_type == "multipart/form-data":
            answer = await _upload(request, client, allow_empty)
        else:
            raise web.HTTPUnsupportedMediaType(
                text="send application/json, or multipart/form-data with campaign and recipients"
            )
    except EnqueueInProgress as exc:
        raise Conflict(exc.message) from None
    return json_response(asdict(answer), status=200 if answer.existing else 201)


async def _upload(request: web.Request, client: Client, allow_empty: bool) -> Enqueued:
    try:
        return await _read_upload(request, client, allow_empty)
    except CampaignError:
        raise
    except HttpProcessingError as exc:  # a part's headers are not HTTP (InvalidHeader)
        raise CampaignError(
            "multipart", f"a part's headers cannot be read ({exc.message})"
        ) from None
    except ValueError as exc:  # aiohttp's word for a body that is not multipart as declared
        raise web.HTTPBadRequest(text=f"cannot read the multipart body ({exc})") from None


async def _read_upload(request: web.Request, client: Client, allow_empty: bool) -> Enqueued:
    parts = await request.multipart()
    part = await parts.next()
    if not isinstance(part, BodyPartReader) or part.name != "campaign":
        raise CampaignError("campaign", "the first part must be 'campaign' (JSON)")
    raw = bytearray()
    while chunk := await part.read_chunk(PIECE):
        raw += chunk
        if len(raw) > MAX_CAMPAIGN_PART:
            raise CampaignError("campaign", f"the part is over {MAX_CAMPAIGN_PART} bytes")
    data = _keyed(_decode(bytes(raw), "campaign"), request)
    if isinstance(data, dict):
        if data.get("recipients"):
            raise CampaignError("recipients", "give them in the 'recipients' part")
        data = {**data, "recipients": []}
    campaign = Campaign.from_dict(data)
    staging = await asyncio.to_thread(client.staging, campaign)  # field errors raise here
    part = await parts.next()
    if not isinstance(part, BodyPartReader) or part.name != "recipients":
        raise CampaignError("recipients", "a 'recipients' part must follow 'campaign'")
    name = part.filename or "recipients"
    content_type = part.headers.get("Content-Type", "text/csv").partition(";")[0].strip().lower()
    ndjson = content_type in NDJSON_TYPES or name.endswith((".ndjson", ".jsonl"))
    if not ndjson and content_type not in CSV_TYPES:
        raise CampaignError("recipients", f"CSV or JSON lines, not {content_type}")
    reader: RecipientReader | NdjsonReader = NdjsonReader(name) if ndjson else RecipientReader(name)
    async with staging:
        if staging.existing is not None:  # a repeated Idempotency-Key: the list is not read
            while await part.read_chunk(PIECE):
                pass
            return staging.existing
        while chunk := await part.read_chunk(PIECE):
            await staging.add(_read(reader, chunk))  # parsed and validated in a thread
        await staging.add(_read(reader, None))
        extra = await parts.next()
        if extra is not None:
            raise CampaignError("multipart", "only the parts campaign and recipients are read")
        return await staging.publish(allow_empty=allow_empty)


def _read(reader: RecipientReader | NdjsonReader, piece: bytes | None) -> Iterator[Recipient]:
    """The recipients of one piece of an upload (None: its end), parsed when iterated: in
    the thread that validates them, off the event loop."""
    yield from reader.feed(piece) if piece is not None else reader.close()


async def listing(request: web.Request) -> web.Response:
    q = request.query
    raw_limit = q.get("limit", "20")
    if not raw_limit.isdecimal():
        raise CampaignError("limit", "must be a whole number")
    page = await _client(request).campaigns(
        int(raw_limit), state=q.get("state") or None, cursor=q.get("cursor") or None
    )
    items = [st.as_dict() for st in page.items]
    return json_response({"items": items, "next_cursor": page.next_cursor})


async def status(request: web.Request) -> web.Response:
    st = await _client(request).status(request.match_info["cid"])
    return json_response(st.as_dict())


async def pause(request: web.Request) -> web.Response:
    client, cid = _client(request), request.match_info["cid"]
    reason = "paused by operator"
    if request.can_read_body:
        body = _decode(await request.read(), "body")
        if not isinstance(body, dict):
            raise CampaignError("body", "must be a JSON object")
        unknown = sorted(set(body) - {"reason"})
        if unknown:
            raise CampaignError(unknown[0], "unknown field")
        given = body.get("reason", reason)
        if not isinstance(given, str) or not given.strip() or len(given) > MAX_REASON:
            raise CampaignError("reason", f"must be text of 1 to {MAX_REASON} characters")
        reason = given.strip()
    changed = await client.pause(cid, reason)
    state = await client.state(cid)
    message = "paused" if changed else f"already {state}: nothing to do"
    return json_response({"id": cid, "state": state, "changed": changed, "message": message})


async def resume(request: web.Request) -> web.Response:
    client, cid = _client(request), request.match_info["cid"]
    n = await client.resume(cid)
    state = await client.state(cid)
    if n < 0 and state == CampaignState.CANCELLED:
        raise Conflict("the campaign is cancelled; it cannot be resumed")
    message = f"resumed: {n} chunk(s) queued again" if n >= 0 else f"not paused ({state})"
    body = {"id": cid, "state": state, "changed": n >= 0, "message": message}
    return json_response({**body, "requeued": max(n, 0)})


async def cancel(request: web.Request) -> web.Response:
    client, cid = _client(request), request.match_info["cid"]
    moved = await client.cancel(cid)
    at_provider = await client.cancel_at_provider(cid)
    message = "cancelled" if moved >= 0 else "already cancelled: nothing to do"
    state = await client.state(cid)
    body = {"id": cid, "state": state, "changed": moved >= 0, "message": message}
    return json_response({**body, "provider_campaigns": at_provider})


async def retry(request: web.Request) -> web.Response:
    client, cid = _client(request), request.match_info["cid"]
    await client.status(cid)
    return json_response({"id": cid, "requeued": await client.retry(cid)})


async def dead(request: web.Request) -> web.Response:
    client, cid = _client(request), request.match_info["cid"]
    await client.status(cid)
    items = [{"index": i, "reason": why} for i, why in sorted((await client.dead(cid)).items())]
    return json_response({"items": items})


async def estimated(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the campaign as application/json")
    client = _client(request)
    campaign = Campaign.from_dict(_decode(await request.read(), "campaign"))
    est = await asyncio.to_thread(estimate, campaign, client.settings)
    return json_response(est.as_dict())


async def inbound(request: web.Request) -> web.Response:
    raw = request.query.get("count", "100")
    if not raw.isdecimal() or not 1 <= int(raw) <= 1000:
        raise CampaignError("count", "must be a whole number from 1 to 1000")
    return json_response({"items": await _client(request).inbound(int(raw))})
