"""Message length and segments, exactly by the CloudSMS slicing tables (seed 002, Appendix).

A text is GSM 7-bit if every character is in the GSM 03.38 default alphabet or its extension
table (extension characters take two septets); otherwise Latin-1 (ISO-8859-1, 8-bit) if it
encodes there; otherwise UCS-2, counted in UTF-16 code units. Each encoding has one single-SMS
size, a per-part size once split, and at most ten parts:

========  ======  ========  =====================================================
encoding  single  per part  table rows
========  ======  ========  =====================================================
GSM 7     160     153       1–160, 161–306, 307–459, … 1378–1530
Latin-1   140     134       1–140, 141–268, 269–402, … 1207–1340
UCS-2     70      67        1–70, 71–134, 135–201, … 604–670
========  ======  ========  =====================================================

(The seed's Latin-1 table gives "938 - 1072" for 8 parts; 938 = 7 × 134 is already the last
length of 7 parts, so 8 parts start at 939, as in every other row.)

CloudSMS also bounds ``SMS_CONTENT`` in bytes by its own rule (:func:`cloudsms_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
MAX_SEGMENTS = 10


class Encoding(StrEnum):
    GSM7 = "gsm7"
    LATIN1 = "latin1"
    UCS2 = "ucs2"


#: single-SMS size and per-part size, in the encoding's units
SIZES = {Encoding.GSM7: (160, 153), Encoding.LATIN1: (140, 134), Encoding.UCS2: (70, 67)}


@dataclass(frozen=True, slots=True)
class Length:
    encoding: Encoding
    units: int  # septets, bytes or UTF-16 code units
    segments: int

    @property
    def max_units(self) -> int:
        """The most units this encoding carries in MAX_SEGMENTS parts."""
        return SIZES[self.encoding][1] * MAX_SEGMENTS

    @property
    def too_long(self) -> bool:
        return self.segments > MAX_SEGMENTS


def encoding_of(text: str) -> Encoding:
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        return Encoding.GSM7
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return Encoding.UCS2
    return Encoding.LATIN1


def units(text: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return len(text) + sum(1 for c in text if c in GSM7_EXTENSION)
    if encoding is Encoding.UCS2:
        return len(text.encode("utf-16-le")) // 2
    return len(text)


def segments_for(count: int, encoding: Encoding) -> int:
    single, part = SIZES[encoding]
    if count <= single:
        return 1 if count else 0
    return -(-count // part)


def measure(text: str) -> Length:
    enc = encoding_of(text)
    n = units(text, enc)
    return Length(enc, n, segments_for(n, enc))


def split(text: str, encoding: Encoding) -> list[str]:
    """The parts a long text is sent as, by the sizes above: never more units in a part
    than it carries, an extension character (two septets) or a surrogate pair (two UTF-16
    units) never cut in two. A text that fits one SMS is one part."""
    single, size = SIZES[encoding]
    if units(text, encoding) <= single:
        return [text]
    parts: list[str] = []
    start, used = 0, 0
    for i, char in enumerate(text):
        need = units(char, encoding)
        if used + need > size:
            parts.append(text[start:i])
            start, used = i, 0
        used += need
    parts.append(text[start:])
    return parts


def cloudsms_bytes(text: str) -> int:
    """``SMS_CONTENT``'s length by seed 002's rule: "In English (punctuation marks are all
    half corners), one character and one byte are used. The rest is calculated as one
    character and two bytes (mixed Chinese and English, and English is also two bytes)."

    So a text of ASCII characters only counts one byte each; any other text counts two
    bytes for every character, its English ones too, a character being a UTF-16 code unit
    as on the wire (UCS-2), so one outside the BMP (an emoji) counts four.
    """
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le"))
