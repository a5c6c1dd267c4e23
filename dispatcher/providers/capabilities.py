"""What a codec can do beyond sending, as small optional protocols.

The generic layers (sender, poller, reconciler, webhooks, account queries, worker) ask a
codec for a capability with :func:`capability` and never name a provider: a provider that
lists its messages implements :class:`ListPolling`, one that must be asked campaign by
campaign :class:`BatchPolling`, one that pushes reports :class:`Pushes`, and so on. A
codec without the capability simply is not asked.

Everything here stays pure, like the codecs: paths and bodies in, reports out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from dispatcher.providers.base import Inbound, Report

C = TypeVar("C")


def capability(codec: object, kind: Callable[..., C]) -> C | None:
    """``codec`` as ``kind`` (one of the protocols below) if it has that capability, else
    None. ``kind`` is typed as a callable because mypy refuses a protocol class where
    ``type[C]`` is expected (``type-abstract``).

    A codec's capabilities are its class's methods, so the answer is kept per class: an
    isinstance check against a protocol looks up every member, some 10 us, and the
    worker asks a few times a chunk."""
    key = (type(codec), kind)
    has = _HAS.get(key)
    if has is None:
        has = _HAS[key] = isinstance(codec, cast(type, kind))
    return cast(C, codec) if has else None


_HAS: dict[tuple[type, object], bool] = {}


# -- statuses no push brought -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listed:
    """One record of a list page, with what matching a message of unknown fate needs."""

    report: Report  # its status, as polling reads it
    mobile: str
    text: str  # the SMS text as sent (signature included), or the voice code
    created_ms: int | None  # the record's creation, by the provider's clock
    segments: int | None
    price: float | None


@runtime_checkable
class ListPolling(Protocol):
    """An account-wide list API: records of a time window, matched to recipients by
    message id, and recipients of unknown fate by number and text (reconcile.py)."""

    list_page_size: int

    def list_request(self, page: int, start_ms: int, until_ms: int) -> str:
        """The GET path of one page of the records created in ``[start_ms, until_ms]``."""
        ...

    def parse_listed(self, body: bytes) -> list[Listed]:
        """A page's records; BadPush if the provider refused the call."""
        ...

    def sent_text(self, text: str, fields: dict[str, str] | None) -> str:
        """What a record shows of one recipient's message, to match it by."""
        ...


@runtime_checkable
class BatchPolling(Protocol):
    """Statuses asked for one provider campaign (batch) at a time."""

    def batch_path(self, batch: str) -> str: ...

    def parse_batch(self, body: bytes, options: Mapping[str, Any]) -> list[Report]:
        """The batch's reports, numbers in E.164 (``options``: the campaign's, for the
        dial code of numbers the provider gives in national form)."""
        ...


@runtime_checkable
class ReplyPolling(Protocol):
    """Handset replies read back for the batches we sent (besides their pushes)."""

    replies_path: str  # POST
    replies_most: int  # batches asked for in one call

    def replies_request(self, batches: Sequence[str]) -> bytes: ...

    def parse_replies(self, body: bytes) -> Sequence[Reply]:
        """The replies of an answer; BadPush if it is not what the provider documents."""
        ...


@dataclass(frozen=True, slots=True)
class Reply:
    """One handset reply read back: ``id`` is the same as its push's, so that whichever
    comes second is a repeat."""

    id: str
    batch: str  # the provider's id of the batch it answers
    message_id: str  # the message it answers
    text: str


@runtime_checkable
class ReportsById(Protocol):
    """Reports that name a message by the provider's id alone: the record script keeps a
    message-id index for them."""

    reports_by_id: bool


# -- before sending -----------------------------------------------------------------------


@runtime_checkable
class Scrubbing(Protocol):
    """A look-up per number before sending (HLR): numbers it reports invalid are
    recorded as rejected and not sent."""

    def wants_scrub(self, options: Mapping[str, Any]) -> bool: ...

    def scrub_path(self, number: str) -> str | None:
        """The GET path that looks ``number`` up, or None if it cannot be."""
        ...

    def scrub_invalid(self, status: int, body: bytes) -> bool: ...


# -- pushes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pushed:
    """What one push carried, and the answer the provider expects (a provider pushes again
    until it gets that answer, so it is the codec's to write)."""

    reports: Sequence[Report] = ()
    inbound: Inbound | None = None
    answer: bytes = b"ok"
    content_type: str = "text/plain; charset=utf-8"  # the Content-Type header, as sent


@dataclass(frozen=True, slots=True)
class PushContext:
    """What a push parser needs beyond the request: kept out of the codec, which stays pure."""

    now: float  # Unix seconds: pushed times are checked against it
    keyword_response: str  # what a keyword push is answered with (webhooks settings)


@dataclass(frozen=True, slots=True)
class PushRoute:
    """One push endpoint, ``/hooks/<secret>/<provider>/<name>``."""

    method: str  # "POST" or "GET"
    #: body, query → what it carried; raises base.BadPush naming the field at fault
    parse: Callable[[bytes, Mapping[str, str], PushContext], Pushed]
    #: the counter word for the inbound message it carries ("inbound", "mo", "keyword");
    #: reports are counted by their outcome
    what: str = "dlr"


@runtime_checkable
class Pushes(Protocol):
    """Reports or inbound messages pushed to the webhooks process. A provider's endpoints
    are the union of its codecs' routes (its SMS ``dlr``, its voice ``voice``, …)."""

    def push_routes(self) -> Mapping[str, PushRoute]:
        """Endpoint name → route."""
        ...

    def push_refusal(self, body: bytes, busy: bool, now: float) -> tuple[bytes, str] | None:
        """The body and content type of a refused push (400/422, or 503 when ``busy``:
        storage unavailable) for a provider that reads its answer rather than the status;
        None for the status with a JSON error. ``body`` is the push as received."""
        ...


# -- account queries ------------------------------------------------------------------------


@runtime_checkable
class Balance(Protocol):
    """The account's credit, read through one of its queries."""

    balance_query: str  # the name in ``queries``

    def balance_of(self, answer: Any) -> float | None:
        """The credit in that query's answer (decoded JSON); None if it carries none."""
        ...


@runtime_checkable
class Cancelling(Protocol):
    """Provider-side cancelling of the batches a campaign made (while still queued)."""

    def cancel_path(self, batch: str) -> str:
        """The path a cancel is POSTed to (empty body) for one batch (``Outcome.batch_id``)."""
        ...

    def parse_cancel(self, status: int, body: bytes) -> tuple[bool, str]:
        """(cancelled, what the provider said) from its answer."""
        ...


# -- reports on the sending session -----------------------------------------------------


@runtime_checkable
class SessionReports(Protocol):
    """Reports that come back on the session the messages went out on (SMPP delivery
    receipts, ``deliver_sm``), rather than pushed to the webhooks or polled."""

    def parse_deliver(self, pdu: bytes) -> Report | None:
        """The report a ``deliver_sm`` PDU carries, or None if it carries none."""
        ...
