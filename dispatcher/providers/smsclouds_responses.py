"""Smsclouds handset replies read back (seed 004, "Receive Responses MO (Option 1)").

``POST api/v3/responses`` with ``type`` 4 ("by ids campaign") and ``campaigns``, the
campaign ids our sends created, answers ``results``: one object per reply with
``received_id``, ``campaign_id``, ``message_id`` (the message it answers), ``response`` (the
handset's text) and ``received_at``. The same replies may also arrive pushed by GET ("Send
Responses (MO) by GET method": ``response``, ``cellphone``, ``message_id``, ``date``), so
both are stored under one id made of the message answered and the time of the reply
(:func:`mo_id`), and whichever comes second is a repeat. Keyword requests come pushed by
GET too (:func:`parse_keyword`).

The parameter table types ``type`` and ``campaigns`` as integers (its example quotes them);
we send integers.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from dispatcher.providers.base import BadPush, Inbound
from dispatcher.providers.common import plausible_ms

PATH = "/api/v3/responses"
#: Campaign ids asked for in one call: the seed sets no bound; this keeps a body small.
MOST_CAMPAIGNS = 100
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$", re.ASCII)
_ID = re.compile(r"^[0-9]{1,20}$", re.ASCII)


def mo_id(message_id: str, date: str) -> str:
    """The id of a handset reply, the same whether it was pushed or read back: the message
    it answers and when it came (one handset does not answer one message twice a second)."""
    return f"mo:{message_id}:{date}"


@dataclass(frozen=True, slots=True)
class Reply:
    batch: str  # the Smsclouds campaign id
    message_id: str
    text: str
    received_at: str  # YYYY-MM-DD HH:mm:ss, as the provider writes it


def request_body(batches: Sequence[str]) -> bytes:
    """Ask for the replies to these campaigns (their Smsclouds ids, ASCII digits)."""
    return orjson.dumps({"type": 4, "campaigns": [int(b) for b in batches]})


def _text(item: dict[str, object], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadPush(f"results[].{name}", "is missing or not a string")
    text = str(value)
    if pattern is not None and not pattern.match(text):
        raise BadPush(f"results[].{name}", "is malformed")
    return text


def parse_replies(body: bytes) -> list[Reply]:
    """The replies of an answer; BadPush (the field named) if it is not what the seed shows.
    A malformed reply spoils the whole answer: a page is asked for again, not half-read."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadPush("body", "the responses answer is not JSON") from None
    if not isinstance(data, dict) or "error" in data:
        raise BadPush("body", f"responses call refused: {str(data)[:200]}")
    results = data.get("results")
    if not isinstance(results, list):
        raise BadPush("results", "is missing or not a list")
    replies = []
    for item in results:
        if not isinstance(item, dict):
            raise BadPush("results[]", "is not an object")
        replies.append(
            Reply(
                batch=_text(item, "campaign_id", _ID),
                message_id=_text(item, "message_id", _ID),
                text=_text(item, "response"),
                received_at=_text(item, "received_at", _DATE),
            )
        )
    return replies


def _query(query: Mapping[str, str], name: str, pattern: re.Pattern[str] | None = None) -> str:
    value = query.get(name)
    if not value:
        raise BadPush(name, "is required")
    if pattern is not None and not pattern.fullmatch(value):
        raise BadPush(name, "is malformed")
    return value


#: Pushed fields name messages and numbers in ASCII digits only (``\d`` would take ``١``).
DIGITS = re.compile(r"[0-9]{1,20}", re.ASCII)
PUSH_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)
KEYWORD = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,64}")  # no control characters


def _date(query: Mapping[str, str], now_ms: int | None) -> str:
    """``date``: a calendar time (the provider's zone, so a day's slack) since 2000."""
    date = _query(query, "date", PUSH_DATE)
    try:
        at = calendar.timegm(time.strptime(date, "%Y-%m-%d %H:%M:%S")) * 1000
    except ValueError:
        raise BadPush("date", "is not a calendar time") from None
    plausible_ms(at, "date", now_ms)
    return date


def _reply(query: Mapping[str, str]) -> tuple[str, str]:
    """``response`` (at most 160 characters) and ``cellphone``, which both pushes carry."""
    text = _query(query, "response")
    if len(text) > 160:
        raise BadPush("response", "longer than 160 characters")
    return text, _query(query, "cellphone", DIGITS)


def parse_mo(query: Mapping[str, str], now_ms: int | None = None) -> Inbound:
    """An MO response pushed by GET: ``response``, ``cellphone``, ``message_id``, ``date``."""
    text, cellphone = _reply(query)
    message_id = _query(query, "message_id", DIGITS)
    date = _date(query, now_ms)
    return Inbound(
        "smsclouds", mo_id(message_id, date), cellphone, text,
        message_id=message_id,
    )  # fmt: skip


def parse_keyword(query: Mapping[str, str], now_ms: int | None = None) -> Inbound:
    """A keyword request pushed by GET: ``response``, ``cellphone``, ``keyword``, ``date``."""
    text, cellphone = _reply(query)
    keyword = _query(query, "keyword", KEYWORD)
    date = _date(query, now_ms)
    return Inbound(
        "smsclouds", f"kw:{keyword}:{cellphone}:{date}", cellphone, text, keyword=keyword
    )
