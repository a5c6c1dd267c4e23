"""A campaign from the command line (a file or options), and ``estimate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from dispatcher.account_api import balance
from dispatcher.config import Settings
from dispatcher.estimate import estimate
from dispatcher.model import Campaign, CampaignError, Recipient
from dispatcher.providers import CODECS
from dispatcher.recipients_file import read_recipients, stream_recipients
from dispatcher.runtime import run


def campaign_source(
    args: argparse.Namespace,
) -> tuple[Campaign, Iterator[Recipient | str] | None]:
    """The campaign, and ``--recipients FILE`` as a stream that enqueue reads a piece at a
    time (a file of millions is never held whole); a campaign file keeps its own list."""
    if args.campaign_file or args.recipients is None:
        return campaign_from(args), None
    source = stream_recipients(args.recipients)  # opened now: a missing file fails first
    return campaign_from(args, listed=False), source


def campaign_from(args: argparse.Namespace, *, listed: bool = True) -> Campaign:
    if args.campaign_file:
        if args.provider or args.text or args.recipients:
            raise CampaignError("campaign_file", "give a file or --provider/--text/--recipients")
        try:
            data = orjson.loads(Path(args.campaign_file).read_bytes())
        except OSError as exc:
            raise CampaignError("campaign_file", f"cannot read: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise CampaignError("campaign_file", f"not valid JSON: {exc}") from None
        return Campaign.from_dict(data)
    for name in ("provider", "text", "recipients"):
        if getattr(args, name) is None:
            raise CampaignError(name, f"--{name} is required without a campaign file")
    return Campaign(
        provider=args.provider,
        text=args.text,
        recipients=list(read_recipients(args.recipients)) if listed else [],
        account=args.account,
        signature=args.signature,
        name=args.name,
        idempotency_key=getattr(args, "idempotency_key", None),
        default_region=args.region,
        options=options(args.provider, args.option),
        kind=args.kind,
        lane=args.lane,
        check_balance=getattr(args, "check_balance", False),
        weight=args.weight,
        retention_days=getattr(args, "retention_days", None),
    )


def options(provider: str, given: list[str]) -> dict[str, Any]:
    """``--option key=value``, typed as the provider's codec expects."""
    codec = CODECS.get(provider)
    out: dict[str, Any] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CampaignError("--option", f"{item!r}: expected KEY=VALUE")
        kind = codec.options.get(key) if codec else None
        if kind is int:
            if not value.lstrip("-").isdigit():
                raise CampaignError(f"options.{key}", "must be int")
            out[key] = int(value)
        else:
            out[key] = value
    return out


def estimate_command(args: argparse.Namespace, settings: Settings) -> int:
    campaign = campaign_from(args)
    est = estimate(campaign, settings)
    left = run(balance(settings, campaign.provider, campaign.account)) if args.balance else None
    short = left is not None and est.cost is not None and est.cost > left
    if args.json:
        print(orjson.dumps({**est.as_dict(), "balance": left, "short": short}).decode())
        return 0
    print(f"{est.provider}: {est.recipients} recipient(s) to send", end="")
    print(f" ({est.invalid} invalid, {est.duplicates} duplicate(s) left out)")
    parts = ", ".join(f"{n} × {s} segment(s)" for s, n in sorted(est.by_segments.items()))
    print(f"segments: {est.segments}" + (f" ({parts})" if parts else ""))
    if est.cost is None:
        print(f"cost: unknown (set providers.{est.provider}.price_per_segment)")
    else:
        print(f"cost: {est.cost:.4f} at {est.price_per_segment} a segment")
    if left is not None:
        print(f"balance: {left:.4f}")
        if short:
            print("warning: the balance does not cover this campaign", file=sys.stderr)
    return 0
