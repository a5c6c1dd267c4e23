"""What every provider codec has in common: the requests it builds and the verdicts it gives.

A codec is pure: data in, data out. It never opens a socket, sleeps or touches Redis, so it
can be tested against the examples in the providers' documents alone. What varies per send
(the account's key, the packet serial, the clock) comes in through :class:`BuildContext`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

import phonenumbers

from dispatcher.model import Status

#: ITU country calling codes. They are prefix-free, so an E.164 number splits one way only.
_CALLING_CODES = frozenset(str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


class Verdict(StrEnum):
    OK = "ok"  # the provider took the message
    PERMANENT = "permanent"  # this recipient will never succeed: record it, do not resend
    RETRY = "retry"  # transient: send the same request again
    ACCOUNT = "account"  # the account cannot send (bad key, no balance): pause the campaign
    #: The request may have reached the provider and no answer says (set by the sender,
    #: never by a codec): the recipient is parked until its fate is known (unknown.py).
    UNKNOWN = "unknown"


#: Made per recipient on the hot path, so not ``frozen``: a frozen dataclass's ``__init__``
#: sets each field through ``object.__setattr__``, some 1 µs more per object (four times
#: the cost of a plain one), and a worker makes several per recipient. Never assigned to
#: once made (``dataclasses.replace`` makes a changed copy); hashed by value as before.
@dataclass(slots=True, unsafe_hash=True)
class Outcome:
    verdict: Verdict
    status: Status
    message_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    segments: int | None = None
    price: float | None = None
    batch_id: str | None = None  # the provider's id for the whole request (a campaign)
    later: bool = False  # RETRY: the provider asked us to come back much later (busy)
    slow: bool = False  # RETRY: the provider said we send too fast (the account slows down)


@dataclass(slots=True, unsafe_hash=True)  # not frozen: see Outcome
class ChunkRecipient:
    index: int  # the recipient's position in the campaign as enqueued
    number: str  # E.164
    fields: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class SendJob:
    """The campaign data a codec needs to build requests for one chunk."""

    campaign_id: str
    chunk: int
    text: str
    signature: str | None = None
    callback_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # provider-specific, validated


@dataclass(frozen=True, slots=True)
class BuildContext:
    api_key: str
    serial: Callable[[], int] = lambda: 1  # next packet serial number (CloudSMS)
    now: float = 0.0  # Unix seconds


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str  # appended to the account's base URL
    body: bytes | None
    positions: tuple[int, ...]  # which of the chunk's recipients this request carries
    #: What the codec built the body from and reads the answer against, small (Smsclouds:
    #: the segments its flag stands for), so that it need not decode its own body again;
    #: None for a request made elsewhere, whose body is read instead.
    context: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SmppRequest:
    """One recipient's message over SMPP: its ``submit_sm`` PDUs, one per part, with
    sequence number 0 (the session numbers them)."""

    pdus: tuple[bytes, ...]
    positions: tuple[int, ...]


#: What a codec asks its transport to send: HTTP for most accounts, SMPP for some.
Request = HttpRequest | SmppRequest


R = TypeVar("R", HttpRequest, SmppRequest)


@dataclass(slots=True)
class Built(Generic[R]):
    requests: list[R] = field(default_factory=list)
    refused: dict[int, Outcome] = field(default_factory=dict)  # refused before sending


class Codec(Protocol):
    name: str
    kind: str  # "sms", "voice", …
    #: At least this long between two sends to one number (seconds; 0: no rule).
    number_spacing_seconds: float
    #: Whether a number listed twice in a campaign is sent once (SMS) or each time (voice).
    dedupe: bool
    #: What a recipient is: "phone" (E.164) or "email".
    address: str
    #: Options a campaign (or an account's settings) may set, with their types.
    options: Mapping[str, type]
    #: The most recipients one chunk may hold (one request for batch APIs); None: any.
    max_chunk: int | None
    #: The most recipients one request carries; None: a whole chunk in one request.
    per_request: int | None
    #: Read-only account queries for the command line: name → GET path.
    queries: Mapping[str, str]

    def headers(self, api_key: str) -> dict[str, str]:
        """Authentication and content headers for every request of an account."""
        ...

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        """Refuse at enqueue what the provider would refuse for every recipient.

        Raises ``CampaignError`` naming the field.
        """
        ...

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        """The segments one recipient's (rendered) text is billed as."""
        ...

    def build(
        self, job: SendJob, recipients: Sequence[ChunkRecipient], ctx: BuildContext
    ) -> Built[Any]:
        """The requests that send ``recipients``; positions index into that sequence."""
        ...

    def parse(self, request: Any, status: int, body: bytes) -> list[Outcome]:
        """One outcome per position of ``request`` (one this codec built: an HttpRequest,
        or an SmppRequest for an SMPP codec), from the transport's answer."""
        ...


def transient(error_code: str, error: str) -> Outcome:
    """The outcome of a request that did not get an answer (timeout, connection reset)."""
    return Outcome(Verdict.RETRY, Status.FAILED, error_code=error_code, error=error)


def refused(error_code: str, error: str) -> Outcome:
    """A recipient refused before sending, by the provider's documented rules."""
    return Outcome(Verdict.PERMANENT, Status.REJECTED, error_code=error_code, error=error)


def split_e164(number: str) -> tuple[int, str]:
    """``+85267001111`` → ``(852, "67001111")``: the calling code and the national
    (significant) number. Numbers were validated at enqueue, so this only has to cut, and
    does so without a full phonenumbers parse on the send path. A calling code has at most
    three digits, so the first three say where to cut: remembered for the next number."""
    digits = number[1:]
    cut = _CUTS.get(digits[:3])
    if cut is None:
        size = next((size for size in (1, 2, 3) if digits[:size] in _CALLING_CODES), 0)
        if not size:
            raise ValueError(f"{number!r} has no known country calling code")
        cut = _CUTS[digits[:3]] = (size, int(digits[:size]))  # at most 1,110 of them
    return cut[1], digits[cut[0] :]


_CUTS: dict[str, tuple[int, int]] = {}


@dataclass(frozen=True, slots=True)
class Report:
    """A provider's word on one message after the send: pushed to us, or read from a list.

    It names its recipient by what the provider echoes: our campaign and recipient index
    (a ``uid``), our campaign and chunk plus the number (``CUSTOMER_BODY``), or only the
    provider's message id (lists, Smsclouds), which the tracking index resolves.
    """

    status: Status
    raw_status: str
    message_id: str | None = None
    campaign_id: str | None = None
    index: int | None = None
    chunk: int | None = None
    number: str | None = None  # E.164, or national where that is all the provider gives
    error_code: str | None = None
    error: str | None = None
    at: int | None = None  # Unix ms, the provider's time of the status


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from a handset: YCloud inbound SMS, Smsclouds MO responses and keywords."""

    provider: str
    id: str  # the provider's id, or one made from the fields when it gives none
    mobile: str
    text: str
    at: int | None = None  # Unix ms
    message_id: str | None = None  # the message it answers, when the provider says
    keyword: str | None = None


class BadPush(ValueError):
    """A push whose body is not what the provider documents; ``field`` names the fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def map_status(raw: str, table: Mapping[str, Status]) -> Status:
    """The provider's status in our vocabulary; an unknown one is 'sent' (not final)."""
    return table.get(raw.strip().lower(), Status.SENT)
