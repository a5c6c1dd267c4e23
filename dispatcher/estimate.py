"""``python -m dispatcher estimate``: what a campaign will cost, before sending it.

Validates the campaign exactly as enqueue does (nothing is written), renders each
recipient's text, and counts segments the way the provider bills them. The cost needs the
provider's ``price_per_segment`` in the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispatcher.config import Settings
from dispatcher.intake import Prepared, prepare
from dispatcher.model import Campaign


@dataclass
class Estimate:
    provider: str
    recipients: int  # unique valid numbers: what will be sent
    invalid: int
    duplicates: int
    segments: int
    by_segments: dict[int, int] = field(default_factory=dict)  # segments → recipients
    price_per_segment: float | None = None

    @property
    def cost(self) -> float | None:
        if self.price_per_segment is None:
            return None
        return round(self.segments * self.price_per_segment, 6)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "recipients": self.recipients,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "segments": self.segments,
            "by_segments": {str(k): v for k, v in sorted(self.by_segments.items())},
            "price_per_segment": self.price_per_segment,
            "cost": self.cost,
        }


def estimate(campaign: Campaign, settings: Settings, prepared: Prepared | None = None) -> Estimate:
    """``prepared`` (counted with ``count_segments``) saves validating again when the
    caller has just done it."""
    if prepared is None or prepared.by_segments is None:
        prepared = prepare(campaign, settings, count_segments=True)
    by_segments = dict(prepared.by_segments or {})
    return Estimate(
        provider=campaign.provider,
        recipients=prepared.valid,
        invalid=prepared.invalid,
        duplicates=prepared.duplicates,
        segments=sum(n * count for n, count in by_segments.items()),
        by_segments=by_segments,
        price_per_segment=settings.provider(campaign.provider).price_per_segment,
    )
