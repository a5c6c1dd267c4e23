"""What CloudSMS refuses in an SMS_SEND_REQUEST, read from its specification (seed 002).

Three places a refusal shows, as the document puts them:

* the ANSWER's RESULT_CODE, for the packet as a whole (DETAIL_LIST then empty): the
  "Request UIP Format" table's required fields, types and LMAX (Invalid_parameter,
  0x10000001: "Required parameters missing", "whether the Type is correct"), AUTH_KEY
  (Channel_not_exist), VERSION (Invalid_Version), SMS_CONTENT lost or over 1530 bytes
  (Invalid_context);
* a DETAIL_LIST entry's RESULT_CODE, for one number: "Invalid country code", DEST_MSISDN
  "non-numeric or longer than 32 bytes", mainland China "not 11 digits" (Invalid_parameter);
* the delivery report's SMS_STATE 60, LOCAL_REJECTED: the number was answered OK with an
  SMS_UID, then "rejected locally by CloudSMS" — Singapore numbers that are not eight digits
  starting with 8 or 9, an unconfigured sending direction, a wrong ROUTE_ID, insufficient
  balance ("SMS_STATE and RESULT_DESC", Remark).

Unknown top-level fields are not refused: "Customers can add custom parameters in JSON
format to the request packet" (SMS Dispatching, Introduction).
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import phonenumbers

OK = 0x01
CHANNEL_NOT_EXIST = 0x05
INVALID_PARAMETER = 0x10000001
INVALID_CONTEXT = 0x10000003
INVALID_VERSION = 0x10000010

VERSION = "2021-01-01"
TIME = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
REQUIRED = ("METHOD", "TYPE", "SERIAL", "TIME", "AUTH_KEY", "MULTI_MSISDN_LIST", "ROUTE_ID",
            "VERSION")  # fmt: skip
MAX_NUMBERS = 200
MAX_CONTENT_BYTES = 1530
SIGNATURE_TYPES = (1, 2, 3, 4, 5)
PRIORITIES = (0, 1)  # "0: general ... 1: High priority > 1: Reserved"


def uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def within(value: Any, lmax: int) -> bool:
    """A STR of at most LMAX bytes ("LMAX: Maximum byte length of data")."""
    return isinstance(value, str) and len(value.encode()) <= lmax


def content_bytes(text: str) -> int:
    """SMS_CONTENT's count: "In English ... one character and one byte"; "The rest is
    calculated as one character and two bytes (mixed Chinese and English, and English is
    also two bytes)" — one character outside English makes every character two bytes."""
    return len(text) if text.isascii() else 2 * len(text)


def given(p: dict[str, Any], name: str) -> bool:
    """An optional field counts as absent when left out or null."""
    return p.get(name) is not None


def check_packet(p: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The packet-level RESULT_CODE when the packet is refused as a whole, else None."""
    if any(p.get(k) in (None, "") for k in REQUIRED):
        return INVALID_PARAMETER
    if p["METHOD"] != "SMS_SEND_REQUEST" or p["TYPE"] != "REQUEST":
        return INVALID_PARAMETER
    if not uint(p["SERIAL"]) or not 1 <= p["SERIAL"] <= 65535:
        return INVALID_PARAMETER
    if not within(p["TIME"], 32) or not TIME.match(p["TIME"]):
        return INVALID_PARAMETER
    if not isinstance(p["AUTH_KEY"], str) or p["AUTH_KEY"] not in keys:
        return CHANNEL_NOT_EXIST
    if p["VERSION"] != VERSION:
        return INVALID_VERSION
    numbers = p["MULTI_MSISDN_LIST"]
    if not isinstance(numbers, list) or not 1 <= len(numbers) <= MAX_NUMBERS:
        return INVALID_PARAMETER
    content = p.get("SMS_CONTENT")
    if not isinstance(content, str) or not content:
        return INVALID_CONTEXT
    if content_bytes(content) > MAX_CONTENT_BYTES:
        return INVALID_CONTEXT
    return check_optional(p)


def check_optional(p: dict[str, Any]) -> int | None:
    """ROUTE_ID and the optional fields of the "Request UIP Format" table."""
    if not within(p["ROUTE_ID"], 255):
        return INVALID_PARAMETER
    sender = p.get("ORIGINAL_ADDR")
    if sender is not None and not (
        isinstance(sender, str) and len(sender) <= 32 and all(0x20 <= ord(c) < 0x80 for c in sender)
    ):
        return INVALID_PARAMETER  # LMAX 32; Remark: characters outside ASCII 0x20–0x80
    if given(p, "SIGNATURE") and not within(p["SIGNATURE"], 64):
        return INVALID_PARAMETER
    sig_type = p.get("SIGNATURE_TYPE")
    if given(p, "SIGNATURE_TYPE") and (not uint(sig_type) or sig_type not in SIGNATURE_TYPES):
        return INVALID_PARAMETER
    if p.get("SIGNATURE") and sig_type is None:
        return INVALID_PARAMETER  # "If you use the SIGNATURE parameter, select SIGNATURE_TYPE"
    priority = p.get("PRIORITY")
    if given(p, "PRIORITY") and (not uint(priority) or priority not in PRIORITIES):
        return INVALID_PARAMETER
    body = p.get("CUSTOMER_BODY")
    if body is not None and not (isinstance(body, dict) and len(orjson.dumps(body)) <= 255):
        return INVALID_PARAMETER  # OBJ, LMAX 255 (counted as compact JSON)
    return None


def number_code(item: Any) -> int:
    """A DETAIL_LIST entry's RESULT_CODE for one MULTI_MSISDN_LIST entry."""
    if not isinstance(item, dict):
        return INVALID_PARAMETER
    cc, dest = item.get("COUNTRY_CODE"), item.get("DEST_MSISDN")
    if not isinstance(cc, int) or not uint(cc):
        return INVALID_PARAMETER
    if phonenumbers.region_code_for_country_code(cc) == "ZZ":
        return INVALID_PARAMETER  # "Invalid country code"
    if not (isinstance(dest, str) and dest.isascii() and dest.isdigit() and len(dest) <= 32):
        return INVALID_PARAMETER
    if cc == 86 and len(dest) != 11:
        return INVALID_PARAMETER
    return OK


def region_of(cc: int, dest: str) -> str:
    try:
        number = phonenumbers.parse(f"+{cc}{dest}", None)
    except phonenumbers.NumberParseException:
        number = None
    region = phonenumbers.region_code_for_number(number) if number is not None else None
    return region or phonenumbers.region_code_for_country_code(cc)


def local_rejection(
    cc: int, dest: str, route: str, routes: tuple[str, ...], unpriced: tuple[str, ...]
) -> str | None:
    """Why a number answered OK is then rejected locally (SMS_STATE 60), if it is; the
    fourth case, insufficient balance, is the caller's to check."""
    if cc == 65 and not (len(dest) == 8 and dest[0] in "89"):
        return "Singapore number"
    if routes and route not in routes:
        return "wrong ROUTE_ID"
    if unpriced and region_of(cc, dest) in unpriced:  # parsing costs: only when asked
        return "unconfigured sending direction"
    return None
