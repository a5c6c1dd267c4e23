"""Phone numbers validated at the speed of one regular expression, with phonenumbers' answers.

``intake.normalise`` (``phonenumbers.parse`` then ``is_valid_number``) costs about 30 µs a
number: too slow for lists of millions. For a number already written in E.164 (``+`` and
ASCII digits) the answer is a pure function of phonenumbers' own metadata, which this
module compiles, once per country code and length, into one expression over the whole
string:

* the country code is the first 1–3 digits that phonenumbers knows as one;
* ``parse`` leaves the digits after it alone unless the main region's national prefix for
  parsing matches there (then it may strip it): such numbers are left to ``normalise``;
* ``is_valid_number`` picks the region as ``region_code_for_number`` does (the only region,
  else the first whose leading digits match, else the first the number is valid in) and asks
  whether the national number matches the general pattern and one type's pattern, each only
  at the lengths that type allows.

:func:`is_valid_e164` says True only when ``normalise`` would return the very same string as
valid; False means "ask ``normalise``" (any other spelling, a strippable prefix, and every
invalid number, so that invalid reasons stay exactly ``normalise``'s). tests/test_numbers.py
holds the two to identical answers over many numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, region_code_for_country_code

#: A number's shortest and longest national part, as parse allows (phonenumberutil).
MIN_NSN, MAX_NSN = 2, 17
#: The descriptions whose match makes a number valid (phonenumbers' _number_type_helper).
TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
         "uan", "voicemail", "fixed_line", "mobile")  # fmt: skip
#: What cannot be embedded in a larger expression unchanged: anchors, back references,
#: named groups. None of phonenumbers' patterns has one today; such a country goes slow.
_UNSAFE = re.compile(r"\^|\\A|\\[1-9]|\(\?P")

Matcher = Callable[[str], Any]  # the whole number → a match (valid) or None


def _desc_matches_at(desc: Any, length: int) -> str | None:
    """The description's pattern if a national number of ``length`` digits may match it
    (phonenumbers' _is_number_matching_desc), else None."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and length not in desc.possible_length:
        return None
    return str(desc.national_number_pattern)


def _valid_pattern(metadata: Any, length: int) -> str | None:
    """An expression for "valid in this region" at a national length: the general pattern
    and one of the types' (mobile only where it differs from fixed line), or None."""
    general = _desc_matches_at(metadata.general_desc, length)
    if general is None:
        return None
    names = TYPES[:-1] if metadata.same_mobile_and_fixed_line_pattern else TYPES
    types = [p for p in (_desc_matches_at(getattr(metadata, n), length) for n in names) if p]
    if not types:
        return None
    alternatives = "|".join(f"(?:{p})" for p in types)
    return f"(?=(?:{general})\\Z)(?:{alternatives})\\Z"


def _region_pattern(cc: int, length: int) -> str | None:
    """The national part of a valid number of ``length`` digits for the country code, as
    region_code_for_number then is_valid_number_for_region decide it; None: never valid."""
    regions = COUNTRY_CODE_TO_REGION_CODE[cc]
    if len(regions) == 1:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
        return None if metadata is None else _valid_pattern(metadata, length)
    branches: list[str] = []
    claimed: list[str] = []  # leading digits of earlier regions: such a number is theirs
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region, None)
        if metadata is None:
            continue
        valid = _valid_pattern(metadata, length)
        not_earlier = f"(?!{'|'.join(claimed)})" if claimed else ""
        if metadata.leading_digits is not None:
            if valid is not None:
                branches.append(f"{not_earlier}(?=(?:{metadata.leading_digits})){valid}")
            claimed.append(f"(?:{metadata.leading_digits})")
        elif valid is not None:
            branches.append(f"{not_earlier}{valid}")
    return "|".join(f"(?:{b})" for b in branches) or None


def _matcher(cc: int, total: int) -> Matcher | None:
    """The match function for numbers of ``total`` characters with this country code."""
    code = str(cc)
    length = total - 1 - len(code)
    if not MIN_NSN <= length <= MAX_NSN:
        return None
    national = _region_pattern(cc, length)
    if national is None:
        return None
    main = region_code_for_country_code(cc)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(cc, main)
    prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    if _UNSAFE.search(national) or (prefix and _UNSAFE.search(prefix)):
        return None
    if not prefix:
        return re.compile(f"\\+{code}(?:{national})").fullmatch
    compiled_prefix = re.compile(prefix)
    if compiled_prefix.match("") is None:
        # Where the prefix matches, parse may strip it: those numbers go to normalise.
        return re.compile(f"\\+{code}(?!{prefix})(?:{national})").fullmatch
    return _with_runtime_prefix(re.compile(f"\\+{code}(?:{national})"), compiled_prefix, code)


def _with_runtime_prefix(whole: re.Pattern[str], prefix: re.Pattern[str], code: str) -> Matcher:
    """A prefix that may match nothing at all (Argentina's): parse changes the number only
    when it matches some digits or captures a group, so only then is normalise asked."""
    start = 1 + len(code)

    def match(number: str) -> Any:
        found = prefix.match(number[start:])
        if found is not None and (found.end() or any(g is not None for g in found.groups())):
            return None
        return whole.fullmatch(number)

    return match


class _ByLength(dict[int, Matcher | None]):
    """One country code's matchers by the number's length, each compiled when first needed."""

    def __init__(self, cc: int) -> None:
        super().__init__()
        self.cc = cc

    def __missing__(self, total: int) -> Matcher | None:
        matcher = _matcher(self.cc, total)
        self[total] = matcher
        return matcher


def _countries() -> dict[str, _ByLength]:
    """Every three digits after the ``+`` → its country code's matchers, found as parse
    finds the code: the first 1, 2 or 3 digits that are one."""
    by_code = {str(cc): _ByLength(cc) for cc in COUNTRY_CODE_TO_REGION_CODE if cc}
    table: dict[str, _ByLength] = {}
    for n in range(1000):
        digits = f"{n:03d}"
        for size in (1, 2, 3):
            country = by_code.get(digits[:size])
            if country is not None and digits[0] != "0":
                table[digits] = country
                break
    return table


_COUNTRIES = _countries()


def is_valid_e164(number: str) -> bool:
    """True when ``normalise(number, any region)`` would answer ``(number, None)``; False
    when it must be asked (not plain E.164, a strippable national prefix, or invalid)."""
    if number[:1] != "+" or not number.isascii() or not number[1:].isdigit():
        return False
    country = _COUNTRIES.get(number[1:4])
    if country is None:
        return False
    matcher = country[len(number)]
    return matcher is not None and matcher(number) is not None
