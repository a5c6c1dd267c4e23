"""Campaign validation at enqueue: E.164 numbers, duplicates, and the split into chunks.

The campaign's fields are checked before any recipient is read: their types at
construction (model.py), then what depends on the settings and the provider's length rules
(limits.py). Recipients are then validated a batch at a time as they are read, and their
chunks handed on (staging.py writes them, invisible until published), so a list of millions
is never held; an error in the list raises and leaves no campaign. A bad *number* is not an
error of the campaign: it becomes that recipient's ``invalid`` result with the reason, so
the sender sees exactly what was not sent and why; so does a recipient the provider's rules
exclude (limits.py).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from operator import attrgetter
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from dispatcher.chunkblob import Chunker
from dispatcher.config import Settings
from dispatcher.limits import Checker
from dispatcher.model import (
    Campaign,
    CampaignError,
    Recipient,
    Result,
    Status,
    check_recipient,
    recipient_from_json,
)
from dispatcher.numbers import invalid_e164, is_valid_e164, normalise
from dispatcher.providers import KINDS, TRANSPORTS, account_codec, chunk_size
from dispatcher.render import has_tokens, render
from dispatcher.seen import DIGEST, NUMBER, Seen, digest_keys, number_keys

INVALID_NUMBER = "INVALID_NUMBER"
INVALID_EMAIL = "INVALID_EMAIL"
MAX_SCHEDULE_AHEAD_S = 366 * 24 * 3600
#: Recipients validated and looked up for duplicates at a time: a bounded working set.
BATCH = 16_384


def normalise_email(raw: str) -> tuple[str | None, str | None]:
    """``(address, None)`` for a valid email address (normalised), ``(None, reason)``."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, f"not an email address: {exc}"
    # Lower case, so one mailbox written two ways is sent once (mail servers ignore case).
    return str(checked.normalized).lower(), None


@dataclass(slots=True)
class Prepared:
    """A validated campaign's counts and settings: its chunks went to a sink as they were cut
    (:meth:`Builder.take`), so this stays small however long the list was."""

    campaign: Campaign
    options: dict[str, Any]  # the account's options with the campaign's over them
    start_ms: int | None  # when to start sending; None: now
    chunks: int  # how many chunks were cut
    invalid: int  # recipients with an ``invalid`` result
    valid: int
    duplicates: int
    entries: int = 0  # recipients as listed, duplicates and invalid ones included
    first_invalid: Result | None = None  # the lowest-indexed invalid result, for errors
    #: Every invalid recipient's index, ascending (``{cid}:chunks`` field ``invalid``).
    invalid_indexes: array[int] = field(default_factory=lambda: array("q"))
    on_unknown: str = "resend"  # the campaign's, else its account's, else its provider's
    retention_days: int = 30  # the campaign's, else the settings'
    #: Segments → recipients sent with that many, when the builder was asked to count.
    by_segments: dict[int, int] | None = None

    @property
    def total(self) -> int:
        return self.valid + self.invalid


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


def prepare(campaign: Campaign, settings: Settings, *, count_segments: bool = False) -> Prepared:
    """Validate ``campaign`` and count what its chunks would be, keeping none of them (the
    campaign's own list; :class:`Builder` for chunks, or a list given a piece at a time)."""
    builder = Builder(campaign, settings, listed=True, count_segments=count_segments)
    builder.add(campaign.recipients)
    builder.take()
    return builder.finish()


def cut(campaign: Campaign, settings: Settings) -> tuple[Prepared, list[bytes], list[Result]]:
    """:func:`prepare`, keeping the chunks and the invalid results: for short lists (tests,
    tools) that want to look at them."""
    builder = Builder(campaign, settings, listed=True)
    builder.add(campaign.recipients)
    head = builder.take()
    prepared = builder.finish()
    tail = builder.take()
    return prepared, head.chunks + tail.chunks, head.invalid + tail.invalid


@dataclass(slots=True)
class Batch:
    """What a builder cut since it was last asked: chunks ``first``, ``first + 1``, … and
    the invalid results, by index."""

    first: int
    chunks: list[bytes]
    invalid: list[Result]


class Builder:
    """A campaign's recipients validated and cut into chunks as they come, in batches of
    :data:`BATCH`: numbers already in E.164 by numbers.is_valid_e164, the rest by
    :func:`normalise`; duplicates by seen.Seen (the first listing wins). What it keeps is the
    numbers seen and the invalid indexes, compactly; chunks and invalid results wait in it
    only until :meth:`take`. The campaign's own ``recipients`` are not read here: :meth:`add`
    them, or any iterable of number strings, :class:`Recipient` or ``{"number": …}``."""

    def __init__(
        self,
        campaign: Campaign,
        settings: Settings,
        *,
        listed: bool = False,
        count_segments: bool = False,
    ) -> None:
        """``listed``: the recipients are the campaign's own (so it must have some);
        ``count_segments``: tally each recipient's segments (estimate, balance check)."""
        campaign.validate()  # again: the app may have changed a field since construction
        _check_fields(campaign, settings, streamed=not listed)
        self.campaign = campaign
        self.settings = settings
        self.options = _options(campaign, settings)
        self.codec = account_codec(settings, campaign.provider, campaign.account, campaign.kind)
        self.limits = Checker(campaign, self.codec, self.options)
        self.limits.check_campaign()
        self.start = start_ms(campaign.start_at)
        self.chunk_size = chunk_size(settings.provider(campaign.provider), self.codec)
        listing = len(campaign.recipients) if listed else 0
        if listing > self.chunk_size:
            # Chunks of one size rather than full ones and a remainder: a campaign is done
            # when its last answer is recorded, and a smaller first one starts it sooner.
            self.chunk_size = -(-listing // -(-listing // self.chunk_size))
        self.email = self.codec.address == "email"
        self.region = (campaign.default_region or settings.default_region or "").upper() or None
        self.seen = Seen(DIGEST if self.email else NUMBER) if self.codec.dedupe else None
        self.sent = 0  # recipients to send: unique numbers, or every listing where each is a call
        self.duplicates = 0
        self.index = 0  # the next recipient's position in the whole list
        self.invalid_indexes: array[int] = array("q")
        self.first_invalid: Result | None = None
        self.chunk_count = 0  # chunks cut so far
        self._cutter = Chunker(self.chunk_size, numbers=not self.email)
        self._invalid: list[Result] = []
        self._taken = 0  # chunks handed out by take()
        self.by_segments: dict[int, int] | None = {} if count_segments else None
        # Only a personalised text needs each recipient's segments counted.
        self._tally = count_segments and has_tokens(campaign.text)
        self._segments: dict[str, int] = {}

    def add(self, recipients: Iterable[Any]) -> int:
        """Validate and cut ``recipients``; how many were read."""
        read = 0
        it = iter(recipients)
        while batch := list(islice(it, BATCH)):
            self._batch(batch)
            read += len(batch)
        return read

    def take(self) -> Batch:
        """The chunks and invalid results cut since the last take."""
        batch = Batch(self._taken, self._cutter.chunks, self._invalid)
        self._taken += len(batch.chunks)
        self._cutter.chunks, self._invalid = [], []
        return batch

    def _recipient(self, item: Any, index: int) -> Recipient:
        """An item that is not a plain string, checked as the campaign's list is."""
        where = f"recipients[{index}]"
        if isinstance(item, Recipient):
            return check_recipient(item, where)
        got = recipient_from_json(str(item) if isinstance(item, str) else item, where)
        return got if isinstance(got, Recipient) else Recipient(got)

    def _batch(self, items: list[Any]) -> None:
        base = self.index
        self.index += len(items)
        bad: list[Result] = []
        plain, where, valid = self._valid(items, base, bad)
        first: list[bool] | None = None
        if self.seen is not None and valid:
            first = self.seen.first(digest_keys(valid) if self.email else number_keys(valid))
        prefixes = self.limits.screen[0]
        if plain and not prefixes and not self._tally and (first is None or all(first)):
            # Every one goes, as it is: no per-recipient step is left to take.
            self.sent += len(valid)
            if isinstance(where, range) and not self.email:  # all valid: indexes in a run
                self._cutter.run(base, valid)
            else:
                self._cutter.entries(zip(map(base.__add__, where), valid, strict=True))
        else:
            self._cutter.entries(self._kept(items, base, where, valid, first=first, bad=bad))
        if bad:
            bad.sort(key=attrgetter("index"))
            if self.first_invalid is None:
                self.first_invalid = bad[0]
            self.invalid_indexes.extend(r.index for r in bad)
            self._invalid.extend(bad)
        self.chunk_count = self._taken + len(self._cutter.chunks)

    def _valid(
        self, items: list[Any], base: int, bad: list[Result]
    ) -> tuple[bool, Sequence[int], list[str]]:
        """Whether every item is a plain string; the positions of the valid ones and their
        E.164 (or address); the invalid go to ``bad``. A list of plain numbers already in
        E.164 (the usual one) is checked in one pass with no step per number of its own."""
        email, region, fast = self.email, self.region, is_valid_e164
        plain = set(map(type, items)) == {str}
        if plain and not email:
            refused = invalid_e164(items)
            if not refused:
                return True, range(len(items)), items
            ok = [True] * len(items)  # vouched for as E.164
            for pos in refused:
                ok[pos] = False
        else:
            ok = [False] * len(items)
        code = INVALID_EMAIL if email else INVALID_NUMBER
        where: list[int] = []  # positions of the valid ones
        valid: list[str] = []  # their E.164 (or address)
        for pos, item in enumerate(items):
            if ok[pos]:
                where.append(pos)
                valid.append(item)
                continue
            if type(item) is str:
                raw = item
            else:
                checked = items[pos] = self._recipient(item, base + pos)
                raw = checked.number
            if not email and not plain and fast(raw):
                where.append(pos)
                valid.append(raw)
                continue
            e164, reason = normalise_email(raw) if email else normalise(raw, region)
            if e164 is None:
                bad.append(Result(base + pos, raw, Status.INVALID, error_code=code,
                                  error=reason))  # fmt: skip
            else:
                where.append(pos)
                valid.append(e164)
        return plain, where, valid

    def _kept(
        self,
        items: list[Any],
        base: int,
        where: Sequence[int],
        valid: list[str],
        *,
        first: list[bool] | None,
        bad: list[Result],
    ) -> Iterator[list[object]]:
        """The chunk entries of the valid recipients that go: not listed before, and not
        refused by the provider's rules (those go to ``bad``)."""
        prefixes, personal = self.limits.screen
        for j, pos in enumerate(where):
            if first is not None and not first[j]:
                self.duplicates += 1
                continue
            e164 = valid[j]
            item = items[pos]
            fields = None if type(item) is str else item.fields
            if (prefixes and e164.startswith(prefixes)) or (personal and fields):
                refused = self.limits.recipient(e164, fields)
                if refused is not None:
                    bad.append(Result(base + pos, e164, Status.INVALID, error_code=refused[0],
                                      error=refused[1]))  # fmt: skip
                    continue
            self.sent += 1
            if self._tally:
                self._count(fields)
            yield [base + pos, e164, fields] if fields else [base + pos, e164]

    def _count(self, fields: dict[str, str] | None) -> None:
        """Tally one recipient's segments (estimate and the balance check need them)."""
        assert self.by_segments is not None
        text = render(self.campaign.text, fields)
        n = self._segments.get(text)
        if n is None:
            n = self.codec.segments(text, self.campaign.signature, self.options)
            if len(self._segments) < 10_000:
                self._segments[text] = n
        self.by_segments[n] = self.by_segments.get(n, 0) + 1

    def finish(self) -> Prepared:
        """The counts, once the whole list has been added; the last chunk is cut (take it)."""
        if self.index == 0:
            raise CampaignError("recipients", "must not be empty")
        self._cutter.close()
        self.chunk_count = self._taken + len(self._cutter.chunks)
        self.seen = None  # the list is read: the numbers seen need no memory any more
        self.limits.check_sendable(self.sent)
        if self.by_segments is not None and not self._tally and self.sent:
            c = self.campaign
            n = self.codec.segments(render(c.text, None), c.signature, self.options)
            self.by_segments = {n: self.sent}
        campaign, settings = self.campaign, self.settings
        ps = settings.provider(campaign.provider)
        on_unknown = campaign.on_unknown or ps.account(campaign.account).on_unknown or ps.on_unknown
        retention = campaign.retention_days
        return Prepared(
            campaign, self.options, self.start, self.chunk_count, len(self.invalid_indexes),
            self.sent, self.duplicates, self.index, self.first_invalid, self.invalid_indexes,
            on_unknown, settings.retention_days if retention is None else retention,
            self.by_segments,
        )  # fmt: skip
