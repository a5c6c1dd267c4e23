"""A Campaign checks its fields at construction: every bad value names its field. The status
ranks the Lua scripts use come from the one table here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dispatcher import lua
from dispatcher.model import FINAL, RANKS, Campaign, CampaignError, Rank, Recipient, Status, rank

GOOD: dict[str, Any] = {"provider": "cloudaten", "text": "hi", "recipients": ["+447911000001"]}

#: (field given, bad value, the field the error names)
BAD: list[tuple[str, Any, str]] = [
    ("provider", 5, "provider"),
    ("provider", None, "provider"),
    ("text", None, "text"),
    ("text", b"hi", "text"),
    ("recipients", "+447911000001", "recipients"),  # would be 13 one-character recipients
    ("recipients", b"+447911000001", "recipients"),
    ("recipients", {"+447911000001": "Ann"}, "recipients"),
    ("recipients", {"+447911000001"}, "recipients"),
    ("recipients", 447911000001, "recipients"),
    ("recipients", None, "recipients"),
    ("recipients", [123], "recipients[0]"),
    ("recipients", [None], "recipients[0]"),
    ("recipients", ["+447911000001", 1.5], "recipients[1]"),
    ("recipients", [Recipient(123)], "recipients[0].number"),  # type: ignore[arg-type]
    ("recipients", [Recipient("+447911000001", "Ann")], "recipients[0].fields"),  # type: ignore[arg-type]
    ("recipients", [Recipient("+447911000001", {"colour": "red"})], "recipients[0].colour"),
    ("recipients", [Recipient("+447911000001", {"name": 5})], "recipients[0].name"),  # type: ignore[dict-item]
    ("recipients", [{"number": 5}], "recipients[0].number"),
    ("recipients", [{"number": "+447911000001", "age": "3"}], "recipients[0].age"),
    ("account", None, "account"),
    ("account", 5, "account"),
    ("signature", 5, "signature"),
    ("signature", "   ", "signature"),
    ("signature", "AC\nME", "signature"),
    ("name", 5, "name"),
    ("name", "n" * 257, "name"),
    ("idempotency_key", 7, "idempotency_key"),
    ("idempotency_key", " ", "idempotency_key"),
    ("idempotency_key", "k" * 257, "idempotency_key"),
    ("default_region", 44, "default_region"),
    ("options", [1], "options"),
    ("options", "route=5", "options"),
    ("options", {1: "x"}, "options"),
    ("kind", None, "kind"),
    ("lane", "urgent", "lane"),
    ("lane", 1, "lane"),
    ("start_at", object(), "start_at"),
    ("start_at", True, "start_at"),
    ("start_at", [1], "start_at"),
    ("start_at", float("nan"), "start_at"),
    ("start_at", float("inf"), "start_at"),
    ("start_at", -1, "start_at"),
    ("start_at", 1_790_000_000_000, "start_at"),  # milliseconds, not seconds
    ("start_at", 10**400, "start_at"),
    ("on_unknown", "drop", "on_unknown"),
    ("on_unknown", 1, "on_unknown"),
    ("check_balance", "no", "check_balance"),
    ("check_balance", 1, "check_balance"),
    ("check_balance", None, "check_balance"),
    ("weight", 0, "weight"),
    ("weight", 101, "weight"),
    ("weight", 1.5, "weight"),
    ("weight", True, "weight"),
    ("weight", "3", "weight"),
]


def bad_id(case: tuple[str, Any, str]) -> str:
    return f"{case[0]}={case[1]!r:.20}"


@pytest.mark.parametrize(("key", "value", "field"), BAD, ids=[bad_id(c) for c in BAD])
def test_bad_values_name_the_field(key: str, value: Any, field: str) -> None:
    with pytest.raises(CampaignError) as info:
        Campaign(**{**GOOD, key: value})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(("key", "value", "field"), BAD, ids=[bad_id(c) for c in BAD])
def test_bad_values_set_later_are_caught_by_validate(key: str, value: Any, field: str) -> None:
    campaign = Campaign(**GOOD)
    setattr(campaign, key, value)
    with pytest.raises(CampaignError) as info:
        campaign.validate()
    assert info.value.field == field


def test_a_string_of_recipients_is_refused_clearly() -> None:
    with pytest.raises(CampaignError, match="not one string"):
        Campaign("cloudaten", "hi", "+447911000001")


def test_a_generator_of_recipients_is_read_into_a_list() -> None:
    def people() -> Iterator[Any]:
        yield "+447911000001"
        yield {"number": "+447911000002", "name": "Ann"}
        yield Recipient("+447911000003")

    c = Campaign("cloudaten", "hi", people())  # type: ignore[arg-type]  # typed as a Sequence
    assert c.recipients == [
        "+447911000001",
        Recipient("+447911000002", {"name": "Ann"}),
        Recipient("+447911000003"),
    ]
    c.validate()  # the list stays as it is: the generator is not read twice
    assert len(c.recipients) == 3


def test_good_lists_are_kept_as_given() -> None:
    numbers: list[Recipient | str] = ["+447911000001", Recipient("+447911000002", {"name": "Ann"})]
    assert Campaign("cloudaten", "hi", numbers).recipients is numbers
    assert Campaign("cloudaten", "hi", ("+447911000001",)).recipients == ("+447911000001",)


def test_empty_signature_means_none_and_numbers_start_at() -> None:
    c = Campaign("cloudaten", "hi", ["+447911000001"], signature="", start_at=1_790_000_000)
    assert c.signature is None and c.start_at == 1_790_000_000


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**GOOD, "check_balance": "no"}, "check_balance"),
        ({**GOOD, "weight": "3"}, "weight"),
        ({**GOOD, "signature": 5}, "signature"),
        ({**GOOD, "options": [1]}, "options"),
        ({**GOOD, "start_at": True}, "start_at"),
        ({**GOOD, "recipients": "+447911000001"}, "recipients"),
        ({**GOOD, "text": None}, "text"),
    ],
)
def test_campaign_files_are_checked_the_same_way(data: dict[str, Any], field: str) -> None:
    with pytest.raises(CampaignError) as info:
        Campaign.from_dict(data)
    assert info.value.field == field


def test_campaign_file_defaults_for_null_and_empty() -> None:
    c = Campaign.from_dict({**GOOD, "account": "", "weight": None, "options": None, "lane": ""})
    assert (c.account, c.weight, c.options, c.lane) == ("default", 1, {}, "transactional")


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_its_rank_in_the_table(status: Status) -> None:
    """The table covers every status, a final status ranks FINAL and nothing else does,
    and rank() gives a plain int (redis-py sends an IntEnum as its repr)."""
    assert status in RANKS
    assert (RANKS[status] is Rank.FINAL) == (status in FINAL)
    assert rank(status) == RANKS[status] and type(rank(status)) is int


def test_the_scripts_ranks_and_final_statuses_come_from_the_table() -> None:
    for r in Rank:
        assert lua.render(f"@RANK_{r.name}@") == str(int(r))
    table = lua.render("@FINAL@")
    assert sorted(table.strip("{}").split(", ")) == sorted(f"['{s.value}']=1" for s in FINAL)
    # the send result's rank in write_rows: FINAL for a final status, else ACCEPTED
    assert f"FINAL[word] and {Rank.FINAL:d} or {Rank.ACCEPTED:d}" in lua.WRITE_ROWS
