"""Estimates: recipients, segments as billed, and cost, without touching Redis."""

from __future__ import annotations

import pytest

from dispatcher.estimate import estimate
from dispatcher.model import Campaign, CampaignError, Recipient
from tests.conftest import all_providers


def test_segments_and_cost_per_provider() -> None:
    settings = all_providers("x:", "http://127.0.0.1:9", cloudaten={"price_per_segment": 0.01})
    people = [
        Recipient("+447901614024", {"name": "A"}),
        Recipient("+447911000001", {"name": "B" * 200}),
    ]
    est = estimate(Campaign("cloudaten", "Hi <+B+>", [*people, "junk", "+447901614024"]), settings)
    assert (est.recipients, est.invalid, est.duplicates) == (2, 1, 1)
    assert (est.segments, est.by_segments) == (3, {1: 1, 2: 1})
    assert est.cost == 0.03
    assert est.as_dict()["cost"] == 0.03


def test_signatures_count() -> None:
    settings = all_providers("x:", "http://127.0.0.1:9")
    text = "a" * 158
    plain = estimate(Campaign("cloudaten", text, ["+447901614024"]), settings)
    signed = estimate(Campaign("cloudaten", text, ["+447901614024"], signature="AB"), settings)
    assert (plain.segments, signed.segments) == (1, 3)  # 【】 makes it UCS-2: 162 units
    assert plain.cost is None


def test_smsclouds_bills_by_flag() -> None:
    settings = all_providers("x:", "http://127.0.0.1:9")
    est = estimate(Campaign("smsclouds", "á" * 100, ["+524498987282"]), settings)
    assert est.segments == 2  # encode_2


def test_a_text_no_provider_sends_is_refused_not_estimated() -> None:
    settings = all_providers("x:", "http://127.0.0.1:9")
    with pytest.raises(CampaignError) as info:
        estimate(Campaign("cloudaten", "a" * 100_000, ["+447901614024"]), settings)
    assert info.value.field == "text" and "654 segments" in info.value.message
