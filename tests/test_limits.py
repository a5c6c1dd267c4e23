"""Each provider's length and signature rules at enqueue (limits.py), from the seeds."""

from __future__ import annotations

import pytest

from dispatcher.config import Settings
from dispatcher.intake import cut, prepare
from dispatcher.limits import SIGNATURE_REQUIRED, TEXT_TOO_LONG
from dispatcher.model import Campaign, CampaignError, Recipient, Status
from dispatcher.segments import measure
from tests.conftest import all_providers

NUMBER = {
    "cloudaten": "+447911000001",
    "ycloud": "+447911000001",
    "cloudsms": "+85261230000",
    "smsclouds": "+524498987282",
}
CHINA = "+8613800138000"
#: The finding's text: 1,449 characters, 174 of them accented (1,623 bytes in UTF-8). Every
#: character is GSM 7-bit, so by the slicing table it is ten segments, within the rule.
ACCENTED = ("é" + "a" * 7) * 174 + "a" * 57


@pytest.fixture(scope="module")
def cfg() -> Settings:
    return all_providers("x:", "http://127.0.0.1:9")


def refusal(cfg: Settings, campaign: Campaign) -> CampaignError:
    with pytest.raises(CampaignError) as info:
        prepare(campaign, cfg)
    return info.value


@pytest.mark.parametrize("provider", ["cloudaten", "ycloud", "cloudsms"])
def test_ten_segments_at_most(cfg: Settings, provider: str) -> None:
    most = prepare(Campaign(provider, "a" * 1530, [NUMBER[provider]]), cfg)
    assert most.valid == 1
    err = refusal(cfg, Campaign(provider, "a" * 1531, [NUMBER[provider]]))
    assert err.field == "text" and "11 segments" in err.message
    ucs2 = refusal(cfg, Campaign(provider, "你" * 671, [NUMBER[provider]]))
    assert ucs2.field == "text" and "11 segments" in ucs2.message


@pytest.mark.parametrize("provider", ["cloudaten", "ycloud"])
def test_a_100000_character_text_is_refused(cfg: Settings, provider: str) -> None:
    err = refusal(cfg, Campaign(provider, "a" * 100_000, [NUMBER[provider]]))
    assert err.field == "text"
    assert err.message.startswith(f"654 segments; {provider} sends at most 10")


def test_smsclouds_follows_its_seed_not_ten_segments(cfg: Settings) -> None:
    """Seed 004: long_message is "1 – 306 Characters (2 messages)"; encode_3 192."""
    assert prepare(Campaign("smsclouds", "a" * 306, [NUMBER["smsclouds"]]), cfg).valid == 1
    assert refusal(cfg, Campaign("smsclouds", "a" * 307, [NUMBER["smsclouds"]])).field == "text"
    assert refusal(cfg, Campaign("smsclouds", "á" * 193, [NUMBER["smsclouds"]])).field == "text"


def test_cloud_aten_counts_its_signature(cfg: Settings) -> None:
    # 【AB】 makes the text UCS-2 (670 in ten parts): 4 + 666 fits, 4 + 667 does not.
    signed = Campaign("cloudaten", "a" * 666, [NUMBER["cloudaten"]], signature="AB")
    assert prepare(signed, cfg).valid == 1
    signed.text += "a"
    err = refusal(cfg, signed)
    assert err.field == "text" and "11 segments with the signature" in err.message


def test_signature_lengths(cfg: Settings) -> None:
    ok = Campaign("cloudaten", "hi", [NUMBER["cloudaten"]], signature="S" * 20)
    assert prepare(ok, cfg).valid == 1
    for signature in ("S" * 21, "S" * 10_000):
        err = refusal(cfg, Campaign("cloudaten", "hi", [NUMBER["cloudaten"]], signature=signature))
        assert (err.field, err.message) == ("signature", "longer than cloudaten's 20 characters")
    options = {"route_id": "r"}
    cloudsms = Campaign("cloudsms", "hi", [NUMBER["cloudsms"]], options=options)
    cloudsms.signature = "é" * 32  # 64 bytes: seed 002's LMAX
    assert prepare(cloudsms, cfg).valid == 1
    cloudsms.signature = "é" * 32 + "x"
    assert refusal(cfg, cloudsms).field == "signature"
    for provider in ("ycloud", "smsclouds"):  # no signature field at all
        err = refusal(cfg, Campaign(provider, "hi", [NUMBER[provider]], signature="ACME"))
        assert err.field == "signature"


def test_cloudsms_content_bytes_by_its_rule(cfg: Settings) -> None:
    assert (len(ACCENTED), len(ACCENTED.encode()), measure(ACCENTED).segments) == (1449, 1623, 10)
    err = refusal(cfg, Campaign("cloudsms", ACCENTED, [NUMBER["cloudsms"]]))
    assert err.field == "text"
    assert err.message.startswith("2898 bytes as CloudSMS counts them")
    assert "at most 1530" in err.message
    # Any non-ASCII character makes every character two bytes: 765 fit, 766 do not (both
    # are well within ten GSM 7-bit segments).
    assert prepare(Campaign("cloudsms", "é" * 765, [NUMBER["cloudsms"]]), cfg).valid == 1
    assert refusal(cfg, Campaign("cloudsms", "é" * 766, [NUMBER["cloudsms"]])).field == "text"
    assert refusal(cfg, Campaign("cloudsms", "a" * 765 + "é", [NUMBER["cloudsms"]])).field == "text"
    # Cloud Aten has no byte rule: the same text is ten segments and goes.
    assert prepare(Campaign("cloudaten", ACCENTED, [NUMBER["cloudaten"]]), cfg).valid == 1


def test_a_personalised_text_too_long_for_one_recipient(cfg: Settings) -> None:
    people: list[Recipient | str] = [
        Recipient("+85261230000", {"name": "Ann"}),
        Recipient("+85261230001", {"name": "é" * 800}),  # 1,606 bytes with "Hi "
        "+85261230002",
    ]
    p, _, invalid = cut(Campaign("cloudsms", "Hi <+B+>", people), cfg)
    assert p.valid == 2
    [bad] = invalid
    assert (bad.index, bad.number, bad.status, bad.error_code) == (
        1,
        "+85261230001",
        Status.INVALID,
        TEXT_TOO_LONG,
    )
    assert bad.error is not None and "1606 bytes" in bad.error
    long = [Recipient("+447911000001", {"name": "a" * 1600})]
    err = refusal(cfg, Campaign("cloudaten", "Hi <+B+>", long))
    assert err.field == "text" and "too long for all 1" in err.message


def test_cloud_aten_requires_a_signature_for_mainland_china(cfg: Settings) -> None:
    """Seed 000 §2.1: signature "is required for Chinese mainland SMS"."""
    err = refusal(cfg, Campaign("cloudaten", "hi", [CHINA, "not a number"]))
    assert err.field == "signature"
    assert "requires one for mainland China (+86) numbers" in err.message
    signed = prepare(Campaign("cloudaten", "hi", [CHINA], signature="ACME"), cfg)
    assert signed.valid == 1 and not signed.invalid
    # In a mixed list only the mainland numbers are left out, each with the rule.
    mixed, _, invalid = cut(Campaign("cloudaten", "hi", ["+447911000001", CHINA, "+85261230000"]),
                            cfg)  # fmt: skip
    assert mixed.valid == 2
    [china] = invalid
    assert (china.index, china.number, china.status, china.error_code) == (
        1,
        CHINA,
        Status.INVALID,
        SIGNATURE_REQUIRED,
    )
    assert china.error == "cloudaten requires a signature for mainland China (+86) numbers"


def test_the_china_rule_is_cloud_aten_sms_only(cfg: Settings) -> None:
    assert prepare(Campaign("ycloud", "hi", [CHINA]), cfg).valid == 1
    voice = Campaign("cloudaten", "1234", [CHINA], kind="voice", options={"language": "en"})
    assert prepare(voice, cfg).valid == 1
