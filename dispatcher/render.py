"""Personalised text: Smsclouds' ``<+B+>``…``<+F+>`` tokens, filled per recipient.

Smsclouds fills the tokens itself from each recipient's ``name`` and ``field1``…``field4``;
for the other providers dispatcher renders the text before sending. A token whose field a
recipient lacks is replaced by nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

TOKENS = {"B": "name", "C": "field1", "D": "field2", "E": "field3", "F": "field4"}
_TOKEN = re.compile(r"<\+([BCDEF])\+>")


def has_tokens(text: str) -> bool:
    return _TOKEN.search(text) is not None


def render(text: str, fields: Mapping[str, str] | None) -> str:
    if not fields:
        return _TOKEN.sub("", text) if "<+" in text else text
    return _TOKEN.sub(lambda m: fields.get(TOKENS[m.group(1)], ""), text)
