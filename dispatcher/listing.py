"""Campaigns listed newest first, a page at a time, optionally only those in one state.

The cursor is opaque to callers: the creation time and id of the last campaign handed out,
so a page starts right after it however many campaigns were created meanwhile (new ones
are newer, so they never shift a page). A state filter reads each candidate's status, so
one call looks at no more than :data:`MAX_EXAMINED` campaigns and hands back a cursor to go
on from where it stopped, even when the page came out short.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from dispatcher.model import CampaignError, CampaignState, CampaignStatus
from dispatcher.store import Store, as_str

#: Campaigns one call reads the status of, at most.
MAX_EXAMINED = 1000
MAX_LIMIT = 500
STATES = frozenset(CampaignState)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[CampaignStatus]
    next_cursor: str | None  # None: nothing older is left


def encode_cursor(created_ms: int, cid: str) -> str:
    return base64.urlsafe_b64encode(f"{created_ms}:{cid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ms, _, cid = raw.partition(":")
        if not cid:
            raise ValueError(raw)
        return int(ms), cid
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise CampaignError("cursor", "not a cursor this server gave out") from None


async def list_campaigns(
    store: Store, limit: int = 20, *, state: str | None = None, cursor: str | None = None
) -> Page:
    """Up to ``limit`` campaigns older than ``cursor`` (newest first), in ``state`` if given.
    An id without a published campaign (one being enqueued, or whose enqueue crashed:
    staging.py) is skipped."""
    if not 1 <= limit <= MAX_LIMIT:
        raise CampaignError("limit", f"must be from 1 to {MAX_LIMIT}")
    if state is not None and state not in STATES:
        raise CampaignError("state", f"must be one of {', '.join(CampaignState)}")
    after = decode_cursor(cursor) if cursor else None
    items: list[CampaignStatus] = []
    examined = 0
    batch = limit if state is None else min(4 * limit, 200)
    while examined < MAX_EXAMINED:
        older = await _older(store, after, batch)
        if not older:
            return Page(items, None)
        for ms, cid in older:
            examined += 1
            after = (ms, cid)
            st = await store.status(cid)
            if st is not None and (state is None or st.state == state):
                items.append(st)
                if len(items) == limit:
                    return Page(items, encode_cursor(ms, cid))
            if examined >= MAX_EXAMINED:
                break
    assert after is not None
    return Page(items, encode_cursor(*after))


async def _older(store: Store, after: tuple[int, str] | None, count: int) -> list[tuple[int, str]]:
    """Up to ``count`` campaigns after ``after`` in newest-first order. Campaigns of one
    millisecond come in descending id order, so those of the cursor's millisecond with an
    id from the cursor's up were handed out already: skip them by offset."""
    key = store.keys.campaigns
    top: int | str = "+inf"
    skip = 0
    if after is not None:
        top = after[0]
        ties: Any = await store.redis.zrangebyscore(key, after[0], after[0])
        skip = sum(1 for member in ties if as_str(member) >= after[1])
    rows: Any = await store.redis.zrevrangebyscore(
        key, top, "-inf", start=skip, num=count, withscores=True
    )
    return [(int(score), as_str(member)) for member, score in rows]
