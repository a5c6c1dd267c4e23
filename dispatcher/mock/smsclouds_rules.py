"""What Smsclouds v3 refuses, read from its manual's parameter tables (seed 004).

Errors, as every section's table gives them: 400 "Bad Request -- Your request is not
correct" / "You probably forgot to add the json to your request", 401 "Your API key is
wrong", 404, 422 "You probably send and incorrect parameter", each with the body
``{"error": {"information": …, "status_code": …}}``.

Every endpoint lists the headers ``Authorization: Bearer …`` and ``Accept:
application/json``, and those taking a JSON body ``Content-Type: application/json``: a
request without them is a 400. An ``integer`` may come as a JSON number or as a string of
digits, as the manual's own examples send them (``"type": "4"``, ``"cellphone":
"4498987282"``, ``"url": "4"``); a ``boolean`` is ``true`` or ``false``; a ``date`` is
``YYYY-MM-DD HH:mm:ss``. An optional field sent as null counts as absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from dispatcher.mock.segments import GSM_BASIC, GSM_EXTENDED

DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
TOKENS = {"<+B+>": "name", "<+C+>": "field1", "<+D+>": "field2", "<+E+>": "field3",
          "<+F+>": "field4"}  # fmt: skip
#: "the special fields are name, field1, field2, field3, field4" besides the cellphone
COMBINATION = ("name", "field1", "field2", "field3", "field4")
#: encode: "special characters of a maximum of 70 characters"; encode_2: 128; encode_3: 192
ENCODED = {"encode": 70, "encode_2": 128, "encode_3": 192}
FLAGS = ("encode", "encode_2", "encode_3", "long_message")
PLAIN, LONG = 160, 306  # text "Between: 1 – 160"; long_message "Between: 1 – 306"
MAX_RECIPIENTS = 50_000


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error(status: int, information: str) -> web.Response:
    return json_response({"error": {"information": information, "status_code": status}}, status)


class Invalid(Exception):
    """A 422: "You probably send and incorrect parameter"."""


def wants_json(request: web.Request) -> bool:
    """``Accept: application/json`` among the media types the request accepts."""
    accept = request.headers.get("Accept", "")
    types = (part.split(";")[0].strip().lower() for part in accept.split(","))
    return "application/json" in types


def sends_json(request: web.Request) -> bool:
    return request.content_type == "application/json"


def header_refusal(request: web.Request, body: bool) -> web.Response | None:
    """The 400 for a request without the headers its section lists."""
    if not wants_json(request):
        return error(400, "The Accept header must be application/json.")
    if body and not sends_json(request):
        return error(400, "The Content-Type header must be application/json.")
    return None


def parse_json(raw: bytes) -> dict[str, Any] | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def integer(value: Any) -> int | None:
    """An ``integer`` parameter's value, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def is_date(value: Any) -> bool:
    if not isinstance(value, str) or not DATE.match(value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return False
    return True


def present(body: dict[str, Any], name: str) -> bool:
    return body.get(name) is not None


def need_integer(body: dict[str, Any], name: str, required: bool = False) -> int | None:
    if not present(body, name):
        if required:
            raise Invalid(f"The {name} field is required.")
        return None
    value = integer(body[name])
    if value is None:
        raise Invalid(f"The {name} must be an integer.")
    return value


def need_string(body: dict[str, Any], name: str, required: bool = False) -> None:
    if not present(body, name):
        if required:
            raise Invalid(f"The {name} field is required.")
        return
    if not isinstance(body[name], str):
        raise Invalid(f"The {name} must be a string.")
    if required and not body[name]:
        raise Invalid(f"The {name} field is required.")


def need_boolean(body: dict[str, Any], name: str) -> None:
    if present(body, name) and not isinstance(body[name], bool):
        raise Invalid(f"The {name} field must be true or false.")


def need_date(body: dict[str, Any], name: str) -> None:
    if present(body, name) and not is_date(body[name]):
        raise Invalid(f"The {name} does not match the format Y-m-d H:i:s.")


def fill(text: str, recipient: dict[str, Any]) -> str:
    for token, field in TOKENS.items():
        text = text.replace(token, str(recipient.get(field, "")))
    return text


def check_recipients(
    body: dict[str, Any],
    key: str = "cellphone",
    valid: Callable[[Any], bool] | None = None,
    limit: int | None = MAX_RECIPIENTS,
) -> list[dict[str, Any]]:
    """``recipients``: a non-empty array (of at most ``limit`` objects: SMS's "50,000
    records maximum"), each with its required ``key`` (a 10-digit cellphone unless
    ``valid`` says otherwise) and nothing but the combination fields beside it, strings."""
    recipients = body.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise Invalid("The recipients field is required.")
    if limit is not None and len(recipients) > limit:
        raise Invalid(f"The recipients may not have more than {limit} items.")
    for i, r in enumerate(recipients):
        if not isinstance(r, dict):
            raise Invalid(f"The recipients.{i} must be an object.")
        value = r.get(key)
        if valid is None:
            number = integer(value)
            if number is None or len(str(value)) != 10:
                raise Invalid(f"The recipients.{i}.{key} must be a 10-digit number.")
        elif not valid(value):
            raise Invalid(f"The recipients.{i}.{key} must be a valid {key}.")
        for name, field_value in r.items():
            if name == key:
                continue
            if name not in COMBINATION:
                raise Invalid(f"The recipients.{i}.{name} field is not allowed.")
            if not isinstance(field_value, str):
                raise Invalid(f"The recipients.{i}.{name} must be a string.")
    return recipients


def plain(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)


def text_limit(text: str, body: dict[str, Any]) -> int:
    """With encode / encode_2 / encode_3 the message may have 70 / 128 / 192 characters
    (the largest flag set wins); without them only plain characters, 160, or 306 with
    long_message."""
    encoded = [limit for flag, limit in ENCODED.items() if body.get(flag) is True]
    if encoded:
        return max(encoded)
    if not plain(text):
        raise Invalid("The text has special characters: set encode, encode_2 or encode_3.")
    return LONG if body.get("long_message") is True else PLAIN


def check_text(text: str, body: dict[str, Any]) -> None:
    limit = text_limit(text, body)
    if len(text) > limit:
        raise Invalid(f"The text may not be greater than {limit} characters.")


def check_campaign(body: dict[str, Any], route_required: bool = False) -> list[str]:
    """Send Messages "MT" (and SMS CLIC, where ``route`` is required outright): every
    parameter of the table. Returns each recipient's text, tokens filled."""
    need_string(body, "text", required=True)
    text: str = body["text"]
    recipients = check_recipients(body)
    for flag in FLAGS:
        need_boolean(body, flag)
    route = need_integer(body, "route", required=route_required)
    country = need_integer(body, "country")
    if route is None and country is None:
        raise Invalid("El campo route es obligatorio cuando country no esta presente")
    need_string(body, "campaign_name")
    need_date(body, "scheduled_date")
    check_text(text, body)
    texts = [fill(text, r) for r in recipients]
    for filled in texts:
        check_text(filled, body)
    return texts
