"""Phone numbers validated at the speed of one regular expression, with phonenumbers' answers.

:func:`normalise` (``phonenumbers.parse`` then ``is_valid_number``) costs about 30 µs a
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
holds the two to identical answers over many numbers. :func:`invalid_e164` gives its
answers for a whole list at once, faster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from re import _constants as _op  # type: ignore[attr-defined]
from re import _parser as _sre  # type: ignore[attr-defined]
from typing import Any

import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    region_code_for_country_code,
)

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}


#: A number's shortest and longest national part, as parse allows (phonenumberutil).
MIN_NSN, MAX_NSN = 2, 17
#: The descriptions whose match makes a number valid (phonenumbers' _number_type_helper).
#: Mobile and fixed line first: most numbers sent to are one of them, and the first
#: alternative that matches ends the search (the order changes no answer).
TYPES = ("mobile", "fixed_line", "premium_rate", "toll_free", "shared_cost", "voip",
         "personal_number", "pager", "uan", "voicemail")  # fmt: skip
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


def _valid_pattern(metadata: Any, length: int, end: str, *, general: bool = True) -> str | None:
    """An expression for "valid in this region" at a national length, up to ``end``: the
    general pattern (unless the caller checks it: ``general`` False) and one of the types'
    (mobile only where it differs from fixed line), or None."""
    general_pattern = _desc_matches_at(metadata.general_desc, length)
    if general_pattern is None:
        return None
    names = TYPES[1:] if metadata.same_mobile_and_fixed_line_pattern else TYPES
    types = [p for p in (_desc_matches_at(getattr(metadata, n), length) for n in names) if p]
    if not types:
        return None
    alternatives = "|".join(f"(?:{p})" for p in types)
    if not general:
        return f"(?:{alternatives}){end}"
    return f"(?=(?:{general_pattern}){end})(?:{alternatives}){end}"


def _region_pattern(cc: int, length: int, end: str = "\\Z", *, general: bool = True) -> str | None:
    """The national part of a valid number of ``length`` digits for the country code, as
    region_code_for_number then is_valid_number_for_region decide it; None: never valid.
    ``general`` False leaves a one-region code's general pattern to the caller (_line)."""
    regions = COUNTRY_CODE_TO_REGION_CODE[cc]
    if len(regions) == 1:
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
        if metadata is None:
            return None
        return _valid_pattern(metadata, length, end, general=general)
    branches: list[str] = []
    claimed: list[str] = []  # leading digits of earlier regions: such a number is theirs
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region, None)
        if metadata is None:
            continue
        valid = _valid_pattern(metadata, length, end)
        not_earlier = f"(?!{'|'.join(claimed)})" if claimed else ""
        if metadata.leading_digits is not None:
            if valid is not None:
                branches.append(f"{not_earlier}(?=(?:{metadata.leading_digits})){valid}")
            claimed.append(f"(?:{metadata.leading_digits})")
        elif valid is not None:
            branches.append(f"{not_earlier}{valid}")
    return "|".join(f"(?:{b})" for b in branches) or None


def _expression(
    cc: int, total: int, end: str, *, general: bool = True
) -> tuple[str, re.Pattern[str] | None] | None:
    """The expression of a valid number of ``total`` characters with this country code,
    up to ``end``, and the national prefix parse would try on it when that prefix may match
    nothing at all (then the expression alone cannot decide); None: never valid here.
    ``general``: as for _region_pattern."""
    code = str(cc)
    length = total - 1 - len(code)
    if not MIN_NSN <= length <= MAX_NSN:
        return None
    national = _region_pattern(cc, length, end, general=general)
    if national is None:
        return None
    main = region_code_for_country_code(cc)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(cc, main)
    prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    if _UNSAFE.search(national) or (prefix and _UNSAFE.search(prefix)):
        return None
    if not prefix:
        return f"\\+{code}(?:{national})", None
    compiled_prefix = re.compile(prefix)
    if compiled_prefix.match("") is None:
        # Where the prefix matches, parse may strip it: those numbers go to normalise.
        return f"\\+{code}(?!{prefix})(?:{national})", None
    return f"\\+{code}(?:{national})", compiled_prefix


def _matcher(cc: int, total: int) -> Matcher | None:
    """The match function for numbers of ``total`` characters with this country code."""
    found = _expression(cc, total, "\\Z")
    if found is None:
        return None
    expression, runtime_prefix = found
    if runtime_prefix is None:
        return re.compile(expression).fullmatch
    return _with_runtime_prefix(re.compile(expression), runtime_prefix, str(cc))


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


# -- a whole list at once ------------------------------------------------------------------
#
# A call of is_valid_e164 costs about as much again as its regular expression: for a list,
# one expression over the numbers joined by newlines vouches for whole runs of them at the
# price of the matching alone. It names the (country code, length) pairs met before; a
# number it stops at is asked of is_valid_e164 as before, and its pair joins the next
# expression. The answers are is_valid_e164's, number for number (tests/test_numbers.py).

#: Most (country code, length) pairs one list expression names: past them, numbers are
#: checked one by one (each pair adds to the expression and to its compilation).
MOST_PAIRS = 12
#: What would read past a number's end into the next line, or anchor differently there:
#: a pair whose patterns hold one is left to is_valid_e164.
_CROSSES_LINES = re.compile(r"\.|\$|\\[ZzDSWsnbB]|\[\^")
_LINE_END = "(?=\\n)"

Pair = tuple[int, int]  # (country code, the number's length in characters)


def _line(cc: int, total: int) -> str | None:
    """The expression of one valid number and its newline, or None if it cannot be one.
    It starts by asserting the line's length (``[0-9]{digits}``); where the general
    pattern can only ever match that many digits, asserting it there says as much, and
    the general pattern's own assertion goes (each costs about a third of the matching)."""
    probe = _expression(cc, total, "")
    if probe is None or probe[1] is not None or _CROSSES_LINES.search(probe[0]):
        return None
    digits = total - 1 - len(str(cc))
    pin = _general_pin(cc, digits)
    found = _expression(cc, total, _LINE_END, general=pin is None)
    assert found is not None
    return f"(?=\\+{cc}(?:{pin or f'[0-9]{{{digits}}}'})\\n){found[0]}\\n"


def _general_pin(cc: int, digits: int) -> str | None:
    """A one-region country code's general pattern at ``digits`` digits, when what it
    matches there is always exactly that many ASCII digits: its top-level alternatives
    that can be that long, each of which is never another length. None otherwise (then
    _line asserts the length, and the general pattern is asserted apart)."""
    regions = COUNTRY_CODE_TO_REGION_CODE[cc]
    if len(regions) != 1:
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
    general = None if metadata is None else _desc_matches_at(metadata.general_desc, digits)
    if general is None or _UNSAFE.search(general):
        return None
    kept: list[str] = []
    for alternative in _alternatives(general):
        try:
            tree = _sre.parse(alternative, re.ASCII)
        except re.error:
            return None
        low, high = tree.getwidth()
        if not low <= digits <= high:
            continue  # never this long: it matches no number of this length
        if low != high or not _digits_only(tree):
            return None
        kept.append(alternative)
    return "|".join(f"(?:{a})" for a in kept) or None


def _alternatives(pattern: str) -> list[str]:
    """``pattern`` split at its top-level ``|`` (outside groups and classes)."""
    parts: list[str] = []
    depth = start = i = 0
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch in "()":
            depth += 1 if ch == "(" else -1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _digits_only(items: Any) -> bool:
    """Whether a parsed expression matches nothing but ASCII digits (and asserts nothing)."""
    for op, av in items:
        if op is _op.LITERAL:
            ok = 48 <= av <= 57
        elif op is _op.IN:
            ok = all(
                (o is _op.LITERAL and 48 <= a <= 57)
                or (o is _op.RANGE and a[0] >= 48 and a[1] <= 57)
                or (o is _op.CATEGORY and a is _op.CATEGORY_DIGIT)
                for o, a in av
            )
        elif op in (_op.MAX_REPEAT, _op.MIN_REPEAT, _op.POSSESSIVE_REPEAT):
            ok = _digits_only(av[2])
        elif op is _op.SUBPATTERN:
            ok = not av[1] and not av[2] and _digits_only(av[3])
        elif op is _op.BRANCH:
            ok = all(_digits_only(b) for b in av[1])
        else:
            return False
        if not ok:
            return False
    return True


def _compile(pairs: frozenset[Pair]) -> re.Pattern[str]:
    lines = [line for cc, total in sorted(pairs) if (line := _line(cc, total))]
    return re.compile(f"(?:{'|'.join(lines)})*+" if lines else "", re.ASCII)


class _ListExpression:
    """The pairs the list expression names, and it: replaced together, never changed in
    place, as a builder in another thread may be reading them."""

    def __init__(self) -> None:
        self.now: tuple[frozenset[Pair], re.Pattern[str]] = (frozenset(), re.compile(""))

    def learn(self, pairs: set[Pair]) -> None:
        known = self.now[0]
        wanted = frozenset(sorted(known | pairs)[:MOST_PAIRS])
        if wanted != known:
            self.now = (wanted, _compile(wanted))


_LIST = _ListExpression()


def invalid_e164(numbers: Sequence[str]) -> list[int]:
    """The positions of the strings :func:`is_valid_e164` says False to, in order. A valid
    number of a pair the expression does not name yet is learnt at once, and the list read
    on with the new expression: learnt only by the next list, a country's first list went
    one number at a time (16,384 Mexican mobiles: 17.9 ms, not 4.5)."""
    known, expression = _LIST.now
    joined = "\n".join(numbers) + "\n"
    if joined.count("\n") != len(numbers):  # a newline inside one: the lines do not tell
        return [i for i, number in enumerate(numbers) if not is_valid_e164(number)]
    found: list[int] = []
    pos = line = 0
    count, total = joined.count, len(numbers)
    while True:
        end = expression.match(joined, pos).end()  # type: ignore[union-attr]  # "" matches
        line += count("\n", pos, end)
        if line >= total:
            break
        number = numbers[line]
        if not is_valid_e164(number):
            found.append(line)
        elif len(known) < MOST_PAIRS:
            pair = (_COUNTRIES[number[1:4]].cc, len(number))
            if pair not in known:
                _LIST.learn({pair})
                known, expression = _LIST.now
                if pair in known:  # read this line again, with the expression that names it
                    pos = end
                    continue
        pos = end + len(number) + 1
        line += 1
    return found
