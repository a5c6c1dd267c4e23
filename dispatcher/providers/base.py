"""What every provider codec has in common: the request it builds and the verdicts it gives.

A codec is pure: data in, data out. It never opens a socket, sleeps or touches Redis, so it
can be tested against the examples in the providers' documents alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from dispatcher.model import Status


class Verdict(StrEnum):
    OK = "ok"  # the provider took the message
    PERMANENT = "permanent"  # this recipient will never succeed: record it, do not resend
    RETRY = "retry"  # transient: send the same request again later
    ACCOUNT = "account"  # the account cannot send (bad key, no balance): pause the campaign


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    status: Status
    message_id: str | None = None
    error_code: str | None = None
    error: str | None = None
    segments: int | None = None
    price: float | None = None


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str  # appended to the account's base URL
    body: bytes | None
    positions: tuple[int, ...]  # which of the chunk's recipients this request carries


class Codec(Protocol):
    name: str

    def headers(self, api_key: str) -> dict[str, str]:
        """Authentication and content headers for every request of an account."""
        ...

    def build(self, job: SendJob, recipients: Sequence[ChunkRecipient]) -> list[HttpRequest]:
        """The requests that send ``recipients``; positions index into that sequence."""
        ...

    def parse(self, request: HttpRequest, status: int, body: bytes) -> list[Outcome]:
        """One outcome per position of ``request``, from the provider's HTTP answer."""
        ...


def transient(error_code: str, error: str) -> Outcome:
    """The outcome of a request that did not get an answer (timeout, connection reset)."""
    return Outcome(Verdict.RETRY, Status.FAILED, error_code=error_code, error=error)
