"""Provider-neutral plain data: campaigns, recipients, results and the status vocabulary.

Nothing here touches Redis or the network, so every layer can share these types.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from enum import IntEnum, StrEnum
from typing import Any

from dispatcher.errors import DispatcherError
from dispatcher.keys import LANES

#: Personalisation fields a recipient may carry (Smsclouds' <+B+>…<+F+> tokens).
FIELD_NAMES = ("name", "field1", "field2", "field3", "field4")
#: The longest ``name`` and ``idempotency_key``: labels, stored in Redis keys and hashes.
MAX_LABEL = 256
#: Later than any start time in seconds (the year 5138): a bigger number is milliseconds.
MAX_UNIX_SECONDS = 1e11


class Status(StrEnum):
    """One vocabulary for every provider; each result also keeps the provider's raw status."""

    PENDING = "pending"  # enqueued, no answer from the provider yet
    INVALID = "invalid"  # refused at enqueue (not a phone number, …); never sent
    ACCEPTED = "accepted"  # the provider took it; a delivery report may follow
    SENT = "sent"  # on its way: handed to a carrier, no final word yet
    DELIVERED = "delivered"  # the handset has it
    UNDELIVERED = "undelivered"  # the carrier could not deliver it
    EXPIRED = "expired"  # not delivered within the validity period
    REJECTED = "rejected"  # the provider or carrier refused this recipient for good
    FAILED = "failed"  # could not be sent, or the provider gave up
    SUBMITTED = "submitted"  # handed over; the provider reports nothing further (Smsclouds)
    CANCELLED = "cancelled"


#: Statuses after which nothing changes any more.
FINAL = frozenset({Status.INVALID, Status.DELIVERED, Status.UNDELIVERED, Status.EXPIRED,
                   Status.REJECTED, Status.FAILED, Status.SUBMITTED, Status.CANCELLED})  # fmt: skip


class Rank(IntEnum):
    """How far a recipient has come (``{cid}:state``): a report applies only if it moves the
    rank up; a final status counts once, on reaching FINAL. Scripts get it via lua.render."""

    NONE = 0  # no result yet
    ACCEPTED = 1  # the provider took it
    ON_ITS_WAY = 2  # handed to a carrier
    FINAL = 3  # a status of :data:`FINAL`


#: Every status's rank; one not listed (none today) is taken to be on its way.
RANKS: dict[Status, Rank] = {
    Status.PENDING: Rank.NONE, Status.ACCEPTED: Rank.ACCEPTED, Status.SENT: Rank.ON_ITS_WAY,
} | dict.fromkeys(FINAL, Rank.FINAL)  # fmt: skip


def rank(status: str) -> int:
    """Status only moves forward: a report is applied only if its rank is higher."""
    return int(RANKS.get(Status(status), Rank.ON_ITS_WAY))  # redis-py sends an enum's repr


class CampaignState(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"  # waiting for its start time
    PAUSED = "paused"  # by an operator, or an account-level error: nothing more is sent
    CANCELLED = "cancelled"  # nothing more is sent; what was sent stays recorded
    SENT = "sent"  # every recipient has a send result; delivery reports may still come
    DONE = "done"  # every recipient has a final status


class CampaignError(DispatcherError, ValueError):
    """A campaign that cannot be enqueued; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Recipient:
    number: str
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Campaign:
    """What an app asks for: one text to many numbers through one provider account.

    Every field's type and range is checked at construction (and again at enqueue, since a
    dataclass can be changed in between): a bad value raises :class:`CampaignError` naming
    the field, so nothing half-valid reaches Redis. Recipients may be any iterable of number
    strings, :class:`Recipient` or ``{"number": …, "name": …}`` objects; one that is not a
    sequence (a generator) is read once into a list, in order. A single string, a mapping or
    a set is refused: results are reported by position in the list. What depends on the
    settings (the provider, account, kind, region, the provider's length rules) is checked
    at enqueue (intake.py).
    """

    provider: str
    text: str
    recipients: Sequence[Recipient | str]
    account: str = "default"
    signature: str | None = None  # "" is the same as None
    name: str | None = None
    idempotency_key: str | None = None
    default_region: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # provider-specific, e.g. route
    kind: str = "sms"  # what is sent: sms, or voice (Cloud Aten verification codes)
    lane: str = "transactional"  # otp, transactional or bulk: urgent lanes are read first
    start_at: str | float | None = None  # ISO 8601 time or Unix seconds: send from then on
    #: What to do with recipients whose fate stayed unknown (a request that may have
    #: reached the provider, and nothing the provider said settled it within its
    #: ``unknown_wait_seconds``): "resend" (a person may get it twice) or "hold" (pause the
    #: campaign for review; resume resends). None: the provider's ``on_unknown`` (resend,
    #: or hold for Smsclouds).
    on_unknown: str | None = None
    #: Refuse to enqueue when the estimated cost exceeds the account's balance.
    check_balance: bool = False
    #: Its share of its account's rate against the account's other running campaigns of
    #: the lane: weight 2 gets twice the chunks of weight 1 (1–100).
    weight: int = 1
    #: Days its records stay in Redis once it is done, before they are archived to a file
    #: and its keys deleted (retention.py); None: the settings' ``retention_days``.
    retention_days: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field's type and range; the first bad one raises CampaignError."""
        for key in ("provider", "text", "account", "kind", "lane"):
            if not isinstance(getattr(self, key), str):
                raise CampaignError(key, "must be a string")
        if self.signature == "":
            self.signature = None
        for key in ("signature", "name", "idempotency_key", "default_region", "on_unknown"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise CampaignError(key, "must be a string or None")
        if self.signature is not None and (
            not self.signature.strip() or any(ord(c) < 32 or ord(c) == 127 for c in self.signature)
        ):
            raise CampaignError("signature", "must be one line of visible text")
        for key in ("name", "idempotency_key"):
            value = getattr(self, key)
            if value is not None and len(value) > MAX_LABEL:
                raise CampaignError(key, f"longer than {MAX_LABEL} characters")
        if self.idempotency_key is not None and not self.idempotency_key.strip():
            raise CampaignError("idempotency_key", "must not be blank")
        if self.lane not in LANES:
            raise CampaignError("lane", f"must be one of {', '.join(LANES)}")
        if self.on_unknown not in (None, "resend", "hold"):
            raise CampaignError("on_unknown", "must be resend or hold")
        if not isinstance(self.check_balance, bool):
            raise CampaignError("check_balance", "must be true or false")
        weight = self.weight
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
            raise CampaignError("weight", "must be a whole number from 1 to 100")
        days = self.retention_days
        if days is not None and (
            not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 3660
        ):
            raise CampaignError("retention_days", "must be a whole number from 0 to 3660")
        self.start_at = _start_at(self.start_at)
        self.options = _options(self.options)
        self.recipients = _recipients(self.recipients)

    @classmethod
    def from_dict(cls, data: Any) -> Campaign:
        """Build from decoded JSON (a campaign file), naming the field of any error."""
        if not isinstance(data, dict):
            raise CampaignError("campaign", "must be a JSON object")
        unknown = sorted(set(data) - {f.name for f in dataclass_fields(cls)})
        if unknown:
            raise CampaignError(unknown[0], "unknown field")
        for key in ("provider", "text"):
            if key not in data:
                raise CampaignError(key, "is required")
        if not isinstance(data.get("recipients"), list):
            raise CampaignError("recipients", "must be a list")
        required = ("provider", "text", "recipients")
        given = {k: v for k, v in data.items() if v is not None or k in required}
        # An empty string means the default, as JSON writers often say "no value".
        for key in ("account", "kind", "lane", "on_unknown"):
            if given.get(key) == "":
                del given[key]
        return cls(**given)


def _start_at(value: Any) -> str | float | None:
    """An ISO 8601 string (parsed at enqueue) or finite, non-negative Unix seconds."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CampaignError("start_at", "must be an ISO 8601 time or Unix seconds")
    if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
        raise CampaignError("start_at", "must be a finite, non-negative number of Unix seconds")
    if value > MAX_UNIX_SECONDS:
        raise CampaignError("start_at", "must be Unix seconds, not milliseconds")
    return value


def _options(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise CampaignError("options", "must be an object (a dict)")
    for key in value:
        if not isinstance(key, str):
            raise CampaignError("options", "keys must be strings")
    return value if isinstance(value, dict) else dict(value)


def _recipients(value: Any) -> Sequence[Recipient | str]:
    """The recipients as a sequence of numbers and Recipients; see :class:`Campaign`."""
    if isinstance(value, str | bytes | bytearray):
        raise CampaignError("recipients", "must be a list of numbers, not one string")
    if isinstance(value, Mapping | AbstractSet):
        kind = "an object" if isinstance(value, Mapping) else "a set (it has no order)"
        raise CampaignError("recipients", f"must be a list, not {kind}")
    if not isinstance(value, Iterable):
        raise CampaignError("recipients", "must be a list")
    items: Sequence[Any] = value if isinstance(value, list | tuple) else list(value)
    if set(map(type, items)) <= {str}:
        return items  # plain numbers (the usual list): nothing to check one by one
    out: list[Recipient | str] | None = None  # a copy, made only when an item changes
    for i, item in enumerate(items):
        if isinstance(item, str):
            checked: Recipient | str = item
        elif isinstance(item, Recipient):
            checked = _recipient(item, f"recipients[{i}]")
        else:
            checked = recipient_from_json(item, f"recipients[{i}]")
        if checked is not item and out is None:
            out = list(items[:i])
        if out is not None:
            out.append(checked)
    return out if out is not None else items


def check_recipient(item: Recipient, where: str) -> Recipient:
    """A Recipient's fields type-checked, errors naming ``where`` (a list read as it comes
    is checked item by item, as a campaign's own list is at construction)."""
    return _recipient(item, where)


def _recipient(item: Recipient, where: str) -> Recipient:
    if not isinstance(item.number, str):
        raise CampaignError(f"{where}.number", "must be a string")
    if not isinstance(item.fields, dict):
        raise CampaignError(f"{where}.fields", "must be a dict of strings")
    for key, value in item.fields.items():
        if key not in FIELD_NAMES:
            raise CampaignError(f"{where}.{key}", "unknown field")
        if not isinstance(value, str):
            raise CampaignError(f"{where}.{key}", "must be a string")
    return item


def recipient_from_json(item: Any, where: str) -> Recipient | str:
    """A recipient as decoded JSON gives it; errors name ``where`` and the field."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        raise CampaignError(where, "must be a number string or an object with 'number'")
    number = item.get("number", item.get("email"))  # email campaigns may say "email"
    if not isinstance(number, str):
        raise CampaignError(f"{where}.number", "is required and must be a string")
    extra = sorted(set(item) - {"number", "email", *FIELD_NAMES})
    if extra:
        raise CampaignError(f"{where}.{extra[0]}", "unknown field")
    fields: dict[str, str] = {}
    for key in FIELD_NAMES:
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise CampaignError(f"{where}.{key}", "must be a string")
        fields[key] = value
    return Recipient(number, fields)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The answer to an enqueue: the campaign id and what validation did to the list."""

    id: str
    recipients: int  # results the campaign will have: unique valid numbers + invalid ones
    valid: int
    invalid: int
    duplicates: int  # repeated numbers, sent once
    chunks: int
    existing: bool = False  # True when an idempotency key returned an earlier campaign


#: Stored result rows are positional lists (compact in Redis); this is their order.
ROW_FIELDS = (
    "number",
    "status",
    "message_id",
    "error_code",
    "error",
    "segments",
    "price",
    "sent_at",
    "batch_id",
)


#: Not frozen, for speed: see providers.base.Outcome.
@dataclass(slots=True, unsafe_hash=True)
class Result:
    """One recipient's outcome. Timestamps are Unix milliseconds."""

    index: int
    number: str
    status: str
    message_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    segments: int | None = None
    price: float | None = None
    sent_at: int | None = None
    batch_id: str | None = None  # the provider's id for the request (a Smsclouds campaign)
    # From the latest delivery report, when there is one (not stored in the row):
    raw_status: str | None = None  # the provider's own status word
    status_at: int | None = None

    def row(self) -> list[Any]:
        return [
            self.number,
            self.status,
            self.message_id,
            self.error_code,
            self.error,
            self.segments,
            self.price,
            self.sent_at,
            self.batch_id,
        ]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """The result :meth:`as_dict` gave (an archive line, archive.py)."""
        return cls(**{f.name: data[f.name] for f in dataclass_fields(cls) if f.name in data})

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            **dict(zip(ROW_FIELDS, self.row(), strict=True)),
            "raw_status": self.raw_status,
            "status_at": self.status_at,
        }


@dataclass(frozen=True, slots=True)
class CampaignStatus:
    id: str
    provider: str
    account: str
    state: str
    total: int
    counts: dict[str, int]  # send results by status
    created_at: int
    duplicates: int
    reason: str | None = None
    finals: dict[str, int] = field(default_factory=dict)  # final statuses, reports included
    #: Recipients whose fate at the provider is unknown, by why (timeout, connection,
    #: takeover, shutdown): parked until the provider's list or reports settle them.
    parked: dict[str, int] = field(default_factory=dict)
    #: Its current share of its account's rate, by weight among the account's campaigns
    #: with chunks still waiting to go (admission.py); None once all of its went.
    share: float | None = None
    #: When its records left Redis for an archive file (Unix ms; retention.py); None while
    #: they are in Redis. An archived campaign keeps the state it had (done, cancelled).
    archived_at: int | None = None

    @property
    def recorded(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> int:
        """Recipients without a send result yet."""
        return self.total - self.recorded

    @property
    def open(self) -> int:
        """Recipients without a final status yet."""
        return self.total - sum(self.finals.values())

    @property
    def sent(self) -> bool:
        """Every recipient has a send result."""
        return self.pending == 0

    @property
    def done(self) -> bool:
        """Every recipient has a final status."""
        return self.open == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "account": self.account,
            "state": self.state,
            "total": self.total,
            "counts": self.counts,
            "pending": self.pending,
            "sent": self.sent,
            "finals": self.finals,
            "open": self.open,
            "done": self.done,
            "duplicates": self.duplicates,
            "reason": self.reason,
            "created_at": self.created_at,
            "parked": self.parked,
            "share": self.share,
            "archived_at": self.archived_at,
        }
