"""A campaign's meta hash as a chunk needs it: decoded once, when the chunk is loaded.

The hash (written by store.py at enqueue) holds strings; the worker, the sender and the
fencing all want the same few fields typed, with the same defaults (an old campaign has
no ``kind``: it is SMS; no ``account``: the default one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from dispatcher.model import CampaignState

DEFAULT_ACCOUNT = "default"
DEFAULT_KIND = "sms"


@dataclass(frozen=True, slots=True)
class CampaignMeta:
    provider: str
    account: str
    kind: str
    state: CampaignState
    text: str
    signature: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # as the codec checked them

    @classmethod
    def decode(cls, raw: Mapping[str, str]) -> CampaignMeta:
        return cls(
            provider=raw["provider"],
            account=raw.get("account") or DEFAULT_ACCOUNT,
            kind=raw.get("kind") or DEFAULT_KIND,
            state=CampaignState(raw.get("state") or CampaignState.QUEUED),
            text=raw.get("text", ""),
            signature=raw.get("signature") or None,
            options=orjson.loads(raw.get("options") or "{}"),
        )
