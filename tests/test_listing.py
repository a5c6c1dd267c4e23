"""Campaigns listed newest first a page at a time, against a real Redis: every campaign
exactly once whatever the page size, ties of the same millisecond included, and a state
filter that reads a bounded number of campaigns per call."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from dispatcher import listing
from dispatcher.client import Client
from dispatcher.keys import Keys
from dispatcher.listing import MAX_LIMIT, decode_cursor, encode_cursor, list_campaigns
from dispatcher.model import Campaign, CampaignError
from tests.conftest import make_settings

EPOCH_MS = 1_767_225_600_000  # scores the tests give campaigns: 2026-01-01


@pytest.fixture
async def client(redis: Redis, prefix: str) -> Client:
    return Client(settings=make_settings(prefix), redis=redis)


async def create(client: Client, scores: list[int]) -> list[tuple[int, str]]:
    """A campaign per score, listed at that creation time; ``(score, id)`` newest first,
    the order the listing promises (same-millisecond ones by descending id)."""
    made: list[tuple[int, str]] = []
    for score in scores:
        answer = await client.enqueue(Campaign("cloudaten", "hi", ["+447901614024"]))
        await client.redis.zadd(Keys(client.settings.prefix).campaigns, {answer.id: score})
        made.append((score, answer.id))
    return sorted(made, reverse=True)


async def every_page(
    client: Client, limit: int, state: str | None = None
) -> tuple[list[str], list[list[str]]]:
    """Follow the cursors to the end: the ids in order, and each page's ids."""
    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(200):
        page = await list_campaigns(client.store, limit, state=state, cursor=cursor)
        pages.append([st.id for st in page.items])
        assert len(page.items) <= limit
        cursor = page.next_cursor
        if cursor is None:
            return [cid for ids in pages for cid in ids], pages
    raise AssertionError("the cursors never ended")


async def test_pages_go_newest_first_and_hand_out_each_campaign_once(client: Client) -> None:
    made = await create(client, [EPOCH_MS + i for i in range(12)])
    ids, pages = await every_page(client, 5)
    assert ids == [cid for _ms, cid in made]
    assert [len(p) for p in pages] == [5, 5, 2]
    first = await list_campaigns(client.store, 5)
    assert first.next_cursor == encode_cursor(*made[4])
    assert [st.id for st in first.items] == [cid for _ms, cid in made[:5]]


async def test_new_campaigns_do_not_shift_the_next_page(client: Client) -> None:
    made = await create(client, [EPOCH_MS + i for i in range(6)])
    first = await list_campaigns(client.store, 3)
    await create(client, [EPOCH_MS + 100, EPOCH_MS + 5])  # newer, and a tie with the newest
    second = await list_campaigns(client.store, 3, cursor=first.next_cursor)
    assert [st.id for st in second.items] == [cid for _ms, cid in made[3:]]


async def test_same_millisecond_campaigns_page_in_descending_id_order(client: Client) -> None:
    # Clusters of four created in the same millisecond, pages of three: cursors land inside.
    made = await create(client, [EPOCH_MS + i // 4 for i in range(12)])
    for limit in (1, 3, 5):
        ids, _pages = await every_page(client, limit)
        assert ids == [cid for _ms, cid in made], limit


async def test_many_campaigns_of_one_millisecond_are_all_listed(client: Client) -> None:
    made = await create(client, [EPOCH_MS] * 20)
    ids, _pages = await every_page(client, 2)
    assert ids == [cid for _ms, cid in made]


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1])
async def test_the_limit_is_bounded(client: Client, limit: int) -> None:
    with pytest.raises(CampaignError) as info:
        await list_campaigns(client.store, limit)
    assert info.value.field == "limit"


async def test_the_limit_bounds_themselves_are_allowed(client: Client) -> None:
    made = await create(client, [EPOCH_MS, EPOCH_MS + 1])
    assert [st.id for st in (await list_campaigns(client.store, 1)).items] == [made[0][1]]
    everything = await list_campaigns(client.store, MAX_LIMIT)
    assert [st.id for st in everything.items] == [cid for _ms, cid in made]
    assert everything.next_cursor is None


async def test_an_unknown_state_is_refused(client: Client) -> None:
    with pytest.raises(CampaignError) as info:
        await list_campaigns(client.store, 5, state="running")
    assert info.value.field == "state"


@pytest.mark.parametrize(
    "cursor", ["!!!", "x", encode_cursor(5, ""), "bm8tY29sb24", "YWJjOmRlZg", "w6k"]
)
async def test_a_cursor_not_given_out_is_refused(client: Client, cursor: str) -> None:
    with pytest.raises(CampaignError) as info:
        await list_campaigns(client.store, 5, cursor=cursor)
    assert info.value.field == "cursor"


def test_a_cursor_round_trips() -> None:
    assert decode_cursor(encode_cursor(EPOCH_MS, "0123abcd")) == (EPOCH_MS, "0123abcd")


async def test_the_state_filter_lists_only_that_state(client: Client) -> None:
    made = await create(client, [EPOCH_MS + i for i in range(9)])
    paused = [cid for i, (_ms, cid) in enumerate(made) if i % 3 == 0]
    for cid in paused:
        assert await client.pause(cid)
    ids, _pages = await every_page(client, 2, state="paused")
    assert ids == paused
    queued, _pages = await every_page(client, 4, state="queued")
    assert queued == [cid for _ms, cid in made if cid not in paused]


async def test_the_state_filter_reads_a_bounded_number_then_hands_back_a_cursor(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A smaller bound than the real one, so that a test need not create a thousand campaigns.
    monkeypatch.setattr(listing, "MAX_EXAMINED", 10)
    made = await create(client, [EPOCH_MS + i for i in range(25)])
    oldest = made[-1][1]
    assert await client.pause(oldest)
    first = await list_campaigns(client.store, 5, state="paused")
    # Ten read, none paused: an empty page, but a cursor right after the tenth.
    assert first.items == []
    assert first.next_cursor is not None
    assert decode_cursor(first.next_cursor) == made[9]
    second = await list_campaigns(client.store, 5, state="paused", cursor=first.next_cursor)
    assert second.items == [] and second.next_cursor is not None
    assert decode_cursor(second.next_cursor) == made[19]
    third = await list_campaigns(client.store, 5, state="paused", cursor=second.next_cursor)
    assert [st.id for st in third.items] == [oldest]
    assert third.next_cursor is None
