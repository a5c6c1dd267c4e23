"""Campaign validation at enqueue: E.164 numbers, duplicates, and the split into chunks.

Everything is checked before anything is written, so a bad campaign enqueues nothing: the
fields' types at construction (model.py), then what depends on the settings and the
provider's length rules (limits.py). A bad *number* is not an error of the campaign: it
becomes that recipient's ``invalid`` result with the reason, so the sender sees exactly what
was not sent and why; so does a recipient the provider's rules exclude (limits.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException

from dispatcher.config import Settings
from dispatcher.limits import Checker
from dispatcher.model import Campaign, CampaignError, Recipient, Result, Status
from dispatcher.providers import KINDS, TRANSPORTS, account_codec, chunk_size

INVALID_NUMBER = "INVALID_NUMBER"
INVALID_EMAIL = "INVALID_EMAIL"
MAX_SCHEDULE_AHEAD_S = 366 * 24 * 3600

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


def normalise_email(raw: str) -> tuple[str | None, str | None]:
    """``(address, None)`` for a valid email address (normalised), ``(None, reason)``."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"not an email address: {exc}"
    # Lower case, so one mailbox written two ways is sent once (mail servers ignore case).
    return str(checked.normalized).lower(), None


def normalise(raw: str, region: str | None) -> tuple[str | None, str | None]:
    """``(e164, None)`` for a valid number, ``(None, reason)`` otherwise."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not a phone number")
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and region is None:
            reason += " (write it as +<country code>…, or set a default region)"
        return None, reason
    if not phonenumbers.is_valid_number(parsed):
        where = phonenumbers.region_code_for_number(parsed) or f"+{parsed.country_code}"
        return None, f"not a valid number for {where}"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


@dataclass(slots=True)
class Prepared:
    """A validated campaign, ready to be written in one transaction."""

    campaign: Campaign
    options: dict[str, Any]  # the account's options with the campaign's over them
    start_ms: int | None  # when to start sending; None: now
    chunks: list[bytes]  # orjson [[index, e164, fields?], …] per chunk
    invalid: list[Result]
    valid: int
    duplicates: int
    on_unknown: str = "resend"  # the campaign's, else its account's, else its provider's
    retention_days: int = 30  # the campaign's, else the settings'

    @property
    def total(self) -> int:
        return self.valid + len(self.invalid)


def _options(campaign: Campaign, settings: Settings) -> dict[str, Any]:
    """The account's options overridden by the campaign's, checked by the provider's codec."""
    codec = account_codec(settings, campaign.provider, campaign.account, campaign.kind)
    account = settings.provider(campaign.provider).account(campaign.account)
    # The account's options for this kind only (an email campaign ignores the SMS route).
    merged = {k: v for k, v in account.options.items() if k in codec.options}
    merged.update(campaign.options)
    for key, value in campaign.options.items():
        kind = codec.options.get(key)
        if kind is None:
            known = ", ".join(sorted(codec.options)) or "none"
            raise CampaignError(f"options.{key}", f"unknown for {campaign.provider} ({known})")
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise CampaignError(f"options.{key}", f"must be {kind.__name__}")
    codec.check(campaign.text, campaign.signature, merged)
    return merged


def _check_fields(campaign: Campaign, settings: Settings, *, streamed: bool = False) -> None:
    if not campaign.provider:
        raise CampaignError("provider", "is required")
    provider = settings.providers.get(campaign.provider)
    if provider is None:
        known = ", ".join(sorted(settings.providers))
        raise CampaignError("provider", f"unknown provider {campaign.provider!r} (known: {known})")
    if campaign.account not in provider.accounts:
        raise CampaignError(
            "account", f"{campaign.account!r} is not configured for {campaign.provider}"
        )
    if not campaign.text.strip():
        raise CampaignError("text", "must not be empty")
    if not campaign.recipients and not streamed:
        raise CampaignError("recipients", "must not be empty")
    region = campaign.default_region
    if region is not None and region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise CampaignError("default_region", f"unknown region {region!r}")
    if (campaign.provider, campaign.kind) not in KINDS:
        kinds = ", ".join(sorted(k for p, k in KINDS if p == campaign.provider))
        raise CampaignError("kind", f"{campaign.provider} sends {kinds}, not {campaign.kind!r}")
    transport = provider.accounts[campaign.account].transport
    if transport != "http" and (campaign.provider, campaign.kind, transport) not in TRANSPORTS:
        own = (campaign.provider, transport)
        kinds = ", ".join(sorted(k for p, k, t in TRANSPORTS if (p, t) == own))
        raise CampaignError(
            "kind",
            f"account {campaign.account} sends {kinds} over {transport}, not {campaign.kind!r}",
        )


def start_ms(value: str | float | None) -> int | None:
    """A campaign's start time as Unix ms; None to start now."""
    if value is None:
        return None
    if isinstance(value, int | float):
        when = float(value)
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise CampaignError("start_at", f"{value!r} is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise CampaignError("start_at", "needs a time zone, e.g. 2026-12-01T09:00:00+01:00")
        when = parsed.timestamp()
    if when > time.time() + MAX_SCHEDULE_AHEAD_S:
        raise CampaignError("start_at", "more than a year ahead")
    return int(when * 1000)


def prepare(campaign: Campaign, settings: Settings) -> Prepared:
    """Validate ``campaign`` and cut its recipients into the provider's chunks."""
    if not campaign.recipients:
        campaign.validate()
        _check_fields(campaign, settings)  # the errors in the order they always came
    builder = Builder(campaign, settings)
    builder.add(campaign.recipients)
    return builder.finish()


class Builder:
    """A campaign's recipients validated and cut into chunks as they come, for lists read
    a piece at a time (an upload): what it keeps is the compact chunks, the invalid
    results and the numbers seen (for duplicates), never the list as given. The campaign's
    own ``recipients`` are not read here: :meth:`add` them."""

    def __init__(self, campaign: Campaign, settings: Settings) -> None:
        campaign.validate()  # again: the app may have changed a field since construction
        _check_fields(campaign, settings, streamed=True)
        self.campaign = campaign
        self.settings = settings
        self.options = _options(campaign, settings)
        self.codec = account_codec(settings, campaign.provider, campaign.account, campaign.kind)
        self.limits = Checker(campaign, self.codec, self.options)
        self.limits.check_campaign()
        self.start = start_ms(campaign.start_at)
        self.chunk_size = chunk_size(settings.provider(campaign.provider), self.codec)
        self.email = self.codec.address == "email"
        self.region = (campaign.default_region or settings.default_region or "").upper() or None
        self.seen: set[str] = set()
        self.sent = 0  # recipients to send: unique numbers, or every listing where each is a call
        self.invalid: list[Result] = []
        self.duplicates = 0
        self.chunks: list[bytes] = []
        self.current: list[list[object]] = []
        self.index = 0  # the next recipient's position in the whole list

    def add(self, recipients: Iterable[Recipient | str]) -> None:
        dedupe = self.codec.dedupe
        for item in recipients:
            index = self.index
            self.index += 1
            rcpt = item if isinstance(item, Recipient) else Recipient(str(item))
            if self.email:
                e164, reason = normalise_email(rcpt.number)
            else:
                e164, reason = normalise(rcpt.number, self.region)
            if e164 is None:
                code = INVALID_EMAIL if self.email else INVALID_NUMBER
                self.invalid.append(
                    Result(index, rcpt.number, Status.INVALID, error_code=code, error=reason)
                )
                continue
            if e164 in self.seen and dedupe:
                self.duplicates += 1
                continue
            self.seen.add(e164)
            refused = self.limits.recipient(e164, rcpt.fields)
            if refused is not None:
                self.invalid.append(Result(index, e164, Status.INVALID, error_code=refused[0],
                                           error=refused[1]))  # fmt: skip
                continue
            self.sent += 1
            self.current.append([index, e164, rcpt.fields] if rcpt.fields else [index, e164])
            if len(self.current) == self.chunk_size:
                self.chunks.append(orjson.dumps(self.current))
                self.current = []

    def finish(self) -> Prepared:
        if self.index == 0:
            raise CampaignError("recipients", "must not be empty")
        if self.current:
            self.chunks.append(orjson.dumps(self.current))
            self.current = []
        self.limits.check_sendable(self.sent)
        campaign, settings = self.campaign, self.settings
        ps = settings.provider(campaign.provider)
        on_unknown = campaign.on_unknown or ps.account(campaign.account).on_unknown or ps.on_unknown
        retention = campaign.retention_days
        return Prepared(
            campaign, self.options, self.start, self.chunks, self.invalid, self.sent,
            self.duplicates, on_unknown,
            settings.retention_days if retention is None else retention,
        )  # fmt: skip
