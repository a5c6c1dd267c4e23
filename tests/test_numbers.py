"""The fast E.164 check against phonenumbers itself: the same answers, number for number.

numbers.is_valid_e164 claims one thing: when it says True, ``numbers.normalise`` (parse +
is_valid_number) returns that very string as valid, whatever the default region. And it
should say True for every such number except where parse might strip a national prefix.
Both are checked over phonenumbers' example numbers for every region, type and non-geographic
code, random digit strings of every length behind every real country code, other spellings
(spaces, dashes, national format, IDD prefixes, Unicode digits), Italy's leading zeros and
the NANPA regions behind +1.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import phonenumbers
import pytest
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    PhoneMetadata,
    PhoneNumberFormat,
    PhoneNumberType,
    region_code_for_country_code,
)

from dispatcher import numbers
from dispatcher.numbers import is_valid_e164, normalise

REGIONS = (None, "GB", "US", "IT", "FR", "AR")
TYPES = [v for k, v in vars(PhoneNumberType).items() if k.isupper() and isinstance(v, int)]


def fast_then_slow(raw: str, region: str | None) -> tuple[str | None, str | None]:
    """What intake does: the fast check, else normalise."""
    return (raw, None) if is_valid_e164(raw) else normalise(raw, region)


def strippable(e164: str) -> bool:
    """Whether parse might strip a national prefix from this +digits number (the main
    region's prefix for parsing matches after the country code): the fast path's only
    deliberate gap."""
    digits = e164[1:]
    for size in (1, 2, 3):
        cc = int(digits[:size]) if digits[:size].isdigit() else 0
        if digits[:1] != "0" and cc in COUNTRY_CODE_TO_REGION_CODE:
            main = region_code_for_country_code(cc)
            meta = PhoneMetadata.metadata_for_region_or_calling_code(cc, main)
            prefix = meta.national_prefix_for_parsing if meta else None
            return prefix is not None and re.match(prefix, digits[size:]) is not None
    return False


def examples() -> Iterator[str]:
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in TYPES:
            found = phonenumbers.example_number_for_type(region, kind)
            if found is not None:
                yield phonenumbers.format_number(found, PhoneNumberFormat.E164)
        for invalid in (phonenumbers.invalid_example_number(region),):
            if invalid is not None:
                yield phonenumbers.format_number(invalid, PhoneNumberFormat.E164)
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        found = phonenumbers.example_number_for_non_geo_entity(cc)
        if found is not None:
            yield phonenumbers.format_number(found, PhoneNumberFormat.E164)


def randoms(seed: int = 14, per_length: int = 6) -> Iterator[str]:
    """Random digits of every length behind every country code, and a few fully random."""
    rnd = random.Random(seed)
    for cc in sorted(COUNTRY_CODE_TO_REGION_CODE):
        for length in range(0, 18):
            for _ in range(per_length):
                yield f"+{cc}" + "".join(rnd.choice("0123456789") for _ in range(length))
    for _ in range(3000):
        yield "+" + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, 20)))


def near_valid(seed: int = 15) -> Iterator[str]:
    """Valid numbers with one digit changed, added or dropped: the edges of the patterns."""
    rnd = random.Random(seed)
    for e164 in examples():
        for _ in range(4):
            at = rnd.randrange(2, len(e164))
            yield e164[:at] + rnd.choice("0123456789") + e164[at + 1 :]
        yield e164 + rnd.choice("0123456789")
        yield e164[:-1]


def spellings() -> Iterator[str]:
    """The same numbers written otherwise: never the fast path's, always normalise's."""
    for region in ("GB", "US", "IT", "FR", "DE", "AR", "BR", "IN", "CN", "JM", "IM"):
        found = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        assert found is not None
        e164 = phonenumbers.format_number(found, PhoneNumberFormat.E164)
        yield phonenumbers.format_number(found, PhoneNumberFormat.INTERNATIONAL)
        yield phonenumbers.format_number(found, PhoneNumberFormat.NATIONAL)
        yield phonenumbers.format_number(found, PhoneNumberFormat.RFC3966)
        yield e164.replace("+", "00", 1)
        yield e164.replace("+", "＋", 1)  # a full-width plus
        yield "+" + "".join(chr(0x0660 + int(d)) for d in e164[1:])  # Arabic-Indic digits
        yield f" {e164} "
        yield f"{e164[:4]}-{e164[4:8]}-{e164[8:]}"
        yield f"{e164} ext. 12"
        yield e164 + "x"
        yield e164[1:]
    yield from ("", "+", "++447911123456", "+44 (0) 7911 123456", "+4407911123456", "hello")
    yield from ("07911 123456", "(201) 555-0123", "+1-201-555-0123", "tel:+44-7911-123456")


def italy_and_nanpa(seed: int = 16) -> Iterator[str]:
    rnd = random.Random(seed)
    for _ in range(400):  # Italian numbers keep their leading zero; some have several
        yield "+390" + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(4, 11)))
        yield "+3900" + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(4, 9)))
        yield "+393" + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(7, 10)))
    yield from ("+390669812345", "+39066981234", "+3906698")  # Vatican City's range
    for region in COUNTRY_CODE_TO_REGION_CODE[1]:
        meta = PhoneMetadata.metadata_for_region(region)
        leading = meta.leading_digits if meta is not None else None
        areas = re.findall(r"\d{3}", leading or "") or ["201", "416", "800"]
        for area in areas:
            for _ in range(25):
                yield f"+1{area}" + "".join(rnd.choice("0123456789") for _ in range(7))
            yield f"+11{area}5550123"


CASES = {
    "examples": list(examples()),
    "randoms": list(randoms()),
    "near_valid": list(near_valid()),
    "spellings": list(spellings()),
    "italy_and_nanpa": list(italy_and_nanpa()),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_fast_path_answers_as_normalise_does(name: str) -> None:
    numbers = CASES[name]
    fast = 0
    for raw in numbers:
        if is_valid_e164(raw):
            fast += 1
            for region in REGIONS:  # whatever the default region, the very same answer
                assert normalise(raw, region) == (raw, None), (raw, region)
        for region in (None, "GB"):
            assert fast_then_slow(raw, region) == normalise(raw, region), (raw, region)
    if name == "spellings":
        assert fast == 0  # nothing but plain E.164 is the fast path's
    else:
        assert fast > 0


@pytest.mark.parametrize("name", ["examples", "randoms", "near_valid", "italy_and_nanpa"])
def test_the_fast_path_misses_only_numbers_parse_may_change(name: str) -> None:
    """Every plain E.164 number that normalise keeps as valid is the fast path's, unless
    the country's national prefix could be stripped from it (then parse decides)."""
    kept = 0
    for raw in CASES[name]:
        if normalise(raw, None) == (raw, None):
            kept += 1
            assert is_valid_e164(raw) or strippable(raw), raw
    assert kept > 50


def test_invalid_reasons_are_normalises_own() -> None:
    for raw in ("+4479", "+44791112345678", "+999123456", "+12015550", "+0441234"):
        assert not is_valid_e164(raw)
        assert fast_then_slow(raw, None) == normalise(raw, None)
        assert normalise(raw, None)[0] is None


def test_the_common_mobiles_are_fast() -> None:
    for raw in ("+447911123456", "+12015550123", "+33612345678", "+393123456789",
                "+390612345678", "+5491123456789", "+8613800138000"):  # fmt: skip
        assert is_valid_e164(raw), raw
        assert normalise(raw, None) == (raw, None)


def by_country_code(numbers: list[str]) -> dict[str, list[str]]:
    """The numbers grouped by the country code a plain E.164 one would have."""
    groups: dict[str, list[str]] = {}
    for raw in numbers:
        digits = raw[1:]
        size = next((n for n in (1, 2, 3) if digits[:n].isdigit() and digits[:1] != "0"
                     and int(digits[:n]) in COUNTRY_CODE_TO_REGION_CODE), 0)  # fmt: skip
        groups.setdefault(digits[:size] if raw[:1] == "+" and size else "", []).append(raw)
    return groups


def test_a_list_at_once_gets_the_answers_one_by_one_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """numbers.invalid_e164 names exactly the numbers is_valid_e164 refuses. Every country
    code's numbers (valid, near-valid, random digits of every length, other spellings and
    strings with a newline in them), shuffled, go through a fresh list expression twice:
    first it learns their (code, length) pairs, then it vouches for runs of them."""
    everything = [n for name, ns in CASES.items() for n in ns]
    odd = ["+447911123456\n+447911123457", "\n", "+33612345678\r", "+٤٤7911123456"]
    rnd = random.Random(17)
    vouched = 0
    for code, group in sorted(by_country_code(everything).items()):
        monkeypatch.setattr(numbers, "_LIST", numbers._ListExpression())
        batch = group + rnd.sample(odd, 2) + rnd.sample(everything, 20)
        rnd.shuffle(batch)
        expected = [i for i, raw in enumerate(batch) if not is_valid_e164(raw)]
        assert numbers.invalid_e164(batch) == expected, code  # learns
        if "\n" in "".join(batch):
            batch = [raw for raw in batch if "\n" not in raw]
            expected = [i for i, raw in enumerate(batch) if not is_valid_e164(raw)]
        assert numbers.invalid_e164(batch) == expected, code  # vouches
        if numbers._LIST.now[1].pattern:
            vouched += 1
    assert vouched > 150  # country codes whose numbers one expression vouched for


def test_a_list_past_the_pairs_it_names_is_still_checked() -> None:
    """Numbers of more (code, length) pairs than one expression names are asked one by
    one: the same answers."""
    mixed = [n for n in CASES["examples"] + CASES["near_valid"] if n[1:2] != "1"] * 2
    random.Random(18).shuffle(mixed)
    expected = [i for i, raw in enumerate(mixed) if not is_valid_e164(raw)]
    assert numbers.invalid_e164(mixed) == expected
    assert numbers.invalid_e164(mixed) == expected
    assert len(numbers._LIST.now[0]) == numbers.MOST_PAIRS


def test_a_newline_inside_a_number_shifts_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numbers, "_LIST", numbers._ListExpression())
    batch = [f"+4479111{i:05d}" for i in range(20)]
    assert numbers.invalid_e164(batch) == []  # learns the pair
    batch[5] = "+447911123456\n+447911123457"  # two valid lines, one invalid number
    assert numbers.invalid_e164(batch) == [5]


def test_a_general_pattern_of_one_length_is_asserted_with_the_line_length() -> None:
    """Where a country's general pattern at a length is only ever that many digits, the
    list expression asserts it in place of the bare length: one assertion where there were
    two. For every such (code, length), digit strings of that length, valid and not, get
    the same answer from the line with both assertions."""
    rnd = random.Random(19)
    pinned = 0
    for cc in COUNTRY_CODE_TO_REGION_CODE:
        for digits in range(numbers.MIN_NSN, numbers.MAX_NSN + 1):
            pin = numbers._general_pin(cc, digits)
            line = numbers._line(cc, 1 + len(str(cc)) + digits)
            if pin is None or line is None:
                continue
            pinned += 1
            both = numbers._expression(cc, 1 + len(str(cc)) + digits, "(?=\\n)")
            assert both is not None
            apart = re.compile(f"(?=\\+{cc}[0-9]{{{digits}}}\\n){both[0]}\\n", re.ASCII)
            folded = re.compile(line, re.ASCII)
            assert line.count("(?=") < apart.pattern.count("(?=")
            region = COUNTRY_CODE_TO_REGION_CODE[cc][0]
            examples = [
                str(n.national_number)
                for t in TYPES
                if (n := phonenumbers.example_number_for_type(region, t)) is not None
            ]
            for base in [*examples, *(["9" * digits] * 3)]:
                for _ in range(30):
                    national = "".join(
                        c if rnd.random() < 0.8 else rnd.choice("0123456789")
                        for c in base.ljust(digits, "0")[:digits]
                    )
                    text = f"+{cc}{national}\n"
                    assert bool(folded.fullmatch(text)) == bool(apart.fullmatch(text)), text
                    assert bool(folded.fullmatch(text)) == is_valid_e164(text[:-1]), text
    assert pinned > 100


def test_a_pattern_splits_at_its_top_level_bars_only() -> None:
    assert numbers._alternatives(r"[1-357-9]\d{9}|[18]\d{8}|8\d{6}") == [
        r"[1-357-9]\d{9}", r"[18]\d{8}", r"8\d{6}"
    ]  # fmt: skip
    assert numbers._alternatives(r"a(?:b|c)[|]\||d") == [r"a(?:b|c)[|]\|", "d"]
    assert numbers._general_pin(52, 10) == r"(?:[2-9]\d{9})"  # Mexico
    assert numbers._general_pin(44, 10) is None  # +44 is four regions': asked apart
    assert numbers._general_pin(49, 11) is None  # Germany's may be other lengths


def test_a_first_list_learns_its_pair_as_it_meets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first number of a (code, length) the expression does not name is asked alone;
    the rest of the list is read with the expression that names it, not one by one."""
    monkeypatch.setattr(numbers, "_LIST", numbers._ListExpression())
    asked: list[str] = []

    def counted(number: str) -> bool:
        asked.append(number)
        return is_valid_e164(number)

    monkeypatch.setattr(numbers, "is_valid_e164", counted)
    batch = [f"+5244980{i:05d}" for i in range(500)] + [f"+3361234{i:04d}" for i in range(500)]
    batch[700] = "+33012"  # invalid: asked, and named
    assert numbers.invalid_e164(batch) == [700]
    assert asked == ["+524498000000", "+33612340000", "+33012"]
    assert numbers._LIST.now[0] == {(52, 13), (33, 12)}
