"""Validation at enqueue: E.164, duplicates, invalid numbers recorded, errors naming fields."""

from __future__ import annotations

import random
from typing import Any

import pytest

from dispatcher import chunkblob, intake
from dispatcher.config import Settings
from dispatcher.intake import INVALID_NUMBER, Builder, cut, prepare
from dispatcher.model import Campaign, CampaignError, Recipient, Result, Status
from dispatcher.numbers import normalise
from dispatcher.providers.base import ChunkRecipient
from tests.conftest import make_settings


@pytest.fixture
def cfg() -> Settings:
    return make_settings("x:", chunk_size=3)


def test_normalise_to_e164() -> None:
    assert normalise("+44 7901 614024", None) == ("+447901614024", None)
    assert normalise("07901 614024", "GB") == ("+447901614024", None)
    assert normalise("(201) 555-0123", "US") == ("+12015550123", None)


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("hello", None, "not a phone number"),
        ("07901614024", None, "unknown or missing country code"),
        ("+44 12", None, "not a valid number"),
        ("+999 1234567", None, "unknown or missing country code"),
    ],
)
def test_invalid_numbers_have_a_reason(raw: str, region: str | None, reason: str) -> None:
    e164, why = normalise(raw, region)
    assert e164 is None
    assert why is not None and reason in why


def test_prepare_chunks_dedupes_and_records_invalid(cfg: Settings) -> None:
    c = Campaign(
        "cloudaten",
        "hi",
        [
            "+447901614024",
            "not a number",
            "+44 7901 614024",  # the same as the first, written differently
            Recipient("+447911000001", {"name": "Ann"}),
            "+447911000002",
            "+447911000003",
        ],
    )
    p, chunks, invalid = cut(c, cfg)
    assert (p.valid, p.duplicates, p.total) == (4, 1, 5)
    assert [chunkblob.decode(b) for b in chunks] == [
        [ChunkRecipient(0, "+447901614024"), ChunkRecipient(3, "+447911000001", {"name": "Ann"}),
         ChunkRecipient(4, "+447911000002")],
        [ChunkRecipient(5, "+447911000003")],
    ]  # fmt: skip
    [bad] = invalid
    assert (bad.index, bad.number, bad.status, bad.error_code) == (
        1,
        "not a number",
        Status.INVALID,
        INVALID_NUMBER,
    )
    assert bad.error == "not a phone number"


def test_default_region_applies_to_national_numbers(cfg: Settings) -> None:
    p = prepare(Campaign("cloudaten", "hi", ["07901 614024"], default_region="gb"), cfg)
    assert p.valid == 1 and not p.invalid


@pytest.mark.parametrize(
    ("campaign", "field"),
    [
        (Campaign("nosuch", "hi", ["+447901614024"]), "provider"),
        (Campaign("", "hi", ["+447901614024"]), "provider"),
        (Campaign("cloudaten", "", ["+447901614024"]), "text"),
        (Campaign("cloudaten", "   ", ["+447901614024"]), "text"),
        (Campaign("cloudaten", "hi", []), "recipients"),
        (Campaign("cloudaten", "hi", ["+447901614024"], account="nope"), "account"),
        (Campaign("cloudaten", "hi", ["+447901614024"], default_region="XX"), "default_region"),
    ],
)
def test_bad_campaigns_name_the_field(cfg: Settings, campaign: Campaign, field: str) -> None:
    with pytest.raises(CampaignError) as info:
        prepare(campaign, cfg)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "campaign"),
        ({"text": "hi", "recipients": []}, "provider"),
        ({"provider": "cloudaten", "recipients": []}, "text"),
        ({"provider": "cloudaten", "text": "hi"}, "recipients"),
        ({"provider": "cloudaten", "text": 5, "recipients": []}, "text"),
        ({"provider": "cloudaten", "text": "hi", "recipients": [5]}, "recipients[0]"),
        ({"provider": "cloudaten", "text": "hi", "recipients": ["+1", {}]}, "recipients[1].number"),
        (
            {"provider": "cloudaten", "text": "hi", "recipients": [{"number": "+1", "age": "3"}]},
            "recipients[0].age",
        ),
        ({"provider": "cloudaten", "text": "hi", "recipients": [], "colour": "red"}, "colour"),
    ],
)
def test_campaign_json_errors_name_the_field(data: object, field: str) -> None:
    with pytest.raises(CampaignError) as info:
        Campaign.from_dict(data)
    assert info.value.field == field


def test_campaign_json_with_fields() -> None:
    c = Campaign.from_dict(
        {
            "provider": "cloudaten",
            "text": "Hi <+B+>",
            "recipients": ["+447901614024", {"number": "+447911000001", "name": "Ann"}],
            "idempotency_key": "order-1",
        }
    )
    assert c.recipients == ["+447901614024", Recipient("+447911000001", {"name": "Ann"})]
    assert c.idempotency_key == "order-1"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "fax"}, "kind"),
        ({"start_at": "tomorrow"}, "start_at"),
        ({"start_at": "2026-12-01T09:00:00"}, "start_at"),  # no time zone
        ({"start_at": 4_000_000_000}, "start_at"),  # more than a year ahead
        ({"options": {"route": 5}}, "options.route"),
        ({"default_region": "gb1"}, "default_region"),
    ],
)
def test_settings_dependent_values_name_the_field(
    cfg: Settings, change: dict[str, object], field: str
) -> None:
    campaign = Campaign("cloudaten", "hi", ["+447901614024"])
    for key, value in change.items():
        setattr(campaign, key, value)
    with pytest.raises(CampaignError) as info:
        prepare(campaign, cfg)
    assert info.value.field == field


def test_prepare_checks_fields_changed_after_construction(cfg: Settings) -> None:
    campaign = Campaign("cloudaten", "hi", ["+447901614024"])
    campaign.recipients = "+447911000001"
    with pytest.raises(CampaignError) as info:
        prepare(campaign, cfg)
    assert (info.value.field, info.value.message) == (
        "recipients",
        "must be a list of numbers, not one string",
    )


def test_a_builder_fed_in_pieces_prepares_what_prepare_does(cfg: Settings) -> None:
    numbers: list[Recipient | str] = [
        "+447901614024",
        "not a number",
        "+44 7901 614024",  # a duplicate of the first
        Recipient("+447911000001", {"name": "Ann"}),
        *(f"+4479110000{i:02d}" for i in range(2, 12)),
        "+44 12",  # invalid for the UK
        Recipient("07911000003", {"field1": "x"}),  # no region: invalid
        "+447911000005",  # a duplicate from an earlier piece
    ]
    expected, chunks, invalid = cut(Campaign("cloudaten", "hi", numbers), cfg)
    assert (expected.valid, expected.duplicates, expected.invalid) == (12, 2, 3)
    assert len(chunks) == expected.chunks == 4  # chunk_size 3
    for size in (1, 2, 4, 5, len(numbers)):
        builder = Builder(Campaign("cloudaten", "hi", []), cfg)
        batches = []
        for start in range(0, len(numbers), size):
            builder.add(numbers[start : start + size])
            batches.append(builder.take())
        got = builder.finish()
        batches.append(builder.take())
        assert [c for b in batches for c in b.chunks] == chunks, size
        assert [r for b in batches for r in b.invalid] == invalid
        cut_before = [sum(len(x.chunks) for x in batches[:i]) for i in range(len(batches))]
        assert [b.first for b in batches] == cut_before  # chunk numbers follow on
        assert got.invalid_indexes.tolist() == [r.index for r in invalid]
        assert (got.valid, got.duplicates, got.total) == (
            expected.valid,
            expected.duplicates,
            expected.total,
        )
        assert (got.options, got.start_ms, got.on_unknown) == (
            expected.options,
            expected.start_ms,
            expected.on_unknown,
        )


def test_a_builder_given_nothing_refuses_to_finish(cfg: Settings) -> None:
    builder = Builder(Campaign("cloudaten", "hi", []), cfg)
    builder.add([])
    with pytest.raises(CampaignError) as info:
        builder.finish()
    assert (info.value.field, info.value.message) == ("recipients", "must not be empty")


def test_a_builder_checks_the_campaign_before_any_recipient(cfg: Settings) -> None:
    with pytest.raises(CampaignError) as info:
        Builder(Campaign("cloudaten", "hi", [], account="nope"), cfg)
    assert info.value.field == "account"


def smpp_settings() -> Settings:
    from dispatcher.config import parse_with_codecs

    account = {
        "transport": "smpp", "smpp_host": "127.0.0.1", "smpp_port": 2775,
        "system_id": "U", "api_key": "pw", "sender_id": "MASMSJ",
    }  # fmt: skip
    return parse_with_codecs({"providers": {"smsclouds": {"accounts": {"smpp": account}}}})


def test_an_smpp_account_is_checked_by_its_own_codec_and_chunked_small() -> None:
    numbers = [f"+5255{i:08d}" for i in range(1200)]
    # No route or country: those are the HTTP API's; SMPP wants the Sender_ID (from the
    # account here) and chunks of at most 500 (of one size), one submit_sm each.
    p, chunks, _ = cut(Campaign("smsclouds", "hola", numbers, account="smpp"), smpp_settings())
    assert p.options == {"sender_id": "MASMSJ"}
    assert [len(chunkblob.decode(c)) for c in chunks] == [400, 400, 400]


def test_an_smpp_account_sends_no_other_kind_and_names_the_field() -> None:
    voice = {"type": 2, "remittent": "5570055780"}
    with pytest.raises(CampaignError) as err:
        campaign = Campaign("smsclouds", "-", ["+525512345678"], account="smpp", kind="blaster",
                            options=voice)  # fmt: skip
        prepare(campaign, smpp_settings())
    assert err.value.field == "kind" and "over smpp" in str(err.value)
    with pytest.raises(CampaignError) as err:
        prepare(Campaign("smsclouds", "hola", ["+525512345678"], account="smpp",
                         options={"route": 77}), smpp_settings())  # fmt: skip
    assert err.value.field == "options.route"


def test_on_unknown_is_the_campaigns_else_the_accounts_else_the_providers() -> None:
    from dispatcher.config import parse_with_codecs

    account = {
        "transport": "smpp", "smpp_host": "127.0.0.1", "smpp_port": 2775,
        "system_id": "U", "api_key": "pw", "sender_id": "MASMSJ", "on_unknown": "resend",
    }  # fmt: skip
    accounts = {"smpp": account, "default": {"api_key": "t", "route": 77}}
    settings = parse_with_codecs({"providers": {"smsclouds": {"accounts": accounts}}})
    smpp = Campaign("smsclouds", "hola", ["+525512345678"], account="smpp")
    assert prepare(smpp, settings).on_unknown == "resend"  # the account's
    smpp.on_unknown = "hold"
    assert prepare(smpp, settings).on_unknown == "hold"  # the campaign's
    http = Campaign("smsclouds", "hola", ["+525512345678"])
    assert prepare(http, settings).on_unknown == "hold"  # Smsclouds' own default


@pytest.mark.parametrize("signature", [None, "Shop"])
def test_plain_numbers_are_cut_as_the_same_recipients_are(
    cfg: Settings, monkeypatch: pytest.MonkeyPatch, signature: str | None
) -> None:
    """A list of plain strings takes the one-pass way (numbers.invalid_e164, and no step
    per recipient while none is a duplicate or refused); the same list as Recipients takes
    the step-by-step one. Both cut the same chunks and find the same invalid ones, across
    batch and chunk boundaries (BATCH 7, chunk_size 3), with Cloud Aten's +86 refused
    unless the campaign is signed."""
    monkeypatch.setattr(intake, "BATCH", 7)
    rnd = random.Random(3)
    unique = [f"+4479110{i:05d}" for i in range(40)]
    pool = [*unique, *(f"+861380013{i:04d}" for i in range(5)),
            "nope", "+44 7911 000001", "07911000002", "+4412"]  # fmt: skip
    lists = [unique, unique[:20] + unique[:2], [*unique[:10], *pool[40:45]],
             [rnd.choice(pool) for _ in range(120)]]  # fmt: skip

    def build(numbers: list[Any]) -> tuple[list[bytes], list[Result], tuple[int, ...]]:
        builder = Builder(Campaign("cloudaten", "hi", [], signature=signature), cfg)
        builder.add(numbers)
        got = builder.finish()
        batch = builder.take()
        return batch.chunks, batch.invalid, (got.valid, got.duplicates, got.invalid, got.chunks)

    for numbers in lists:
        plain, each = build(numbers), build([Recipient(n) for n in numbers])
        assert [chunkblob.decode(c) for c in plain[0]] == [chunkblob.decode(c) for c in each[0]]
        assert plain[1:] == each[1:]
        assert plain[2][0] > 0
    # A list of valid numbers only: every chunk is stored as a run (chunkblob.py).
    assert all(c[:1] == b"=" for c in build(unique)[0])
    assert build(lists[0])[2] == (40, 0, 0, 14)
    assert build(lists[1])[2] == (20, 2, 0, 7)
    assert build(lists[2])[2] == ((15, 0, 0, 5) if signature else (10, 0, 5, 4))


def test_a_listed_campaign_is_cut_into_chunks_of_one_size() -> None:
    """100 listed at chunk_size 30: four chunks of 25, not three of 30 and one of 10 (the
    campaign waits for its last answer). A list read as it comes, whose length is not
    known beforehand, is cut at chunk_size."""
    settings = make_settings("x:", chunk_size=30)
    numbers = [f"+4479110{i:05d}" for i in range(100)]
    _, chunks, _ = cut(Campaign("cloudaten", "hi", numbers), settings)
    assert [len(chunkblob.decode(c)) for c in chunks] == [25, 25, 25, 25]
    builder = Builder(Campaign("cloudaten", "hi", []), settings)
    builder.add(iter(numbers))
    builder.finish()
    assert [len(chunkblob.decode(c)) for c in builder.take().chunks] == [30, 30, 30, 10]
