"""Answers that stream, on a real server over a real Redis: results as JSON lines and CSV
(resumable with ``after``, cut with ``limit``), and progress as server-sent events while a
real worker sends the campaign to the in-process mock provider."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.export import CSV_HEADER
from tests.api.conftest import AUTH, Api, ApiFactory, answer
from tests.conftest import RunningWorker, make_settings

NUMBERS = [f"+4479110{i:05d}" for i in range(30)]
#: Recipients as sent: 30 numbers, one invalid at index 3, one duplicate at index 31.
RECIPIENTS: list[Any] = [
    *NUMBERS[:3],
    "nope",
    *NUMBERS[3:],
    NUMBERS[0],
]
INDEXES = [i for i in range(len(RECIPIENTS)) if i != len(RECIPIENTS) - 1]  # not the duplicate


async def create(api: Api, recipients: list[Any], query: str = "") -> str:
    body = {"provider": "cloudaten", "text": "Hi", "recipients": recipients}
    status, made = await answer(await api.post(f"/v1/campaigns{query}", json=body, headers=AUTH))
    assert status == 201, made
    return str(made["id"])


async def lines(api: Api, path: str, **headers: str) -> tuple[aiohttp.ClientResponse, bytes]:
    r = await api.get(path, headers={**AUTH, **headers})
    return r, await r.read()


def ndjson(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


def table(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode())))


# --- results ---


async def test_results_as_json_lines_in_index_order(api: Api) -> None:
    cid = await create(api, RECIPIENTS)
    r, raw = await lines(api, f"/v1/campaigns/{cid}/results")
    assert r.status == 200
    assert r.content_type == "application/x-ndjson"
    rows = ndjson(raw)
    assert [row["index"] for row in rows] == INDEXES
    assert rows[3]["status"] == "invalid" and rows[3]["number"] == "nope"
    assert {row["status"] for i, row in enumerate(rows) if i != 3} == {"pending"}
    assert rows[0]["number"] == NUMBERS[0]
    assert list(rows[0]) == ["index", *CSV_HEADER[1:]]


async def test_results_as_csv_have_a_header_only_on_a_first_request(api: Api) -> None:
    cid = await create(api, RECIPIENTS)
    r, raw = await lines(api, f"/v1/campaigns/{cid}/results?format=csv")
    assert r.status == 200
    assert r.content_type == "text/csv" and r.charset == "utf-8"
    rows = table(raw)
    assert rows[0] == list(CSV_HEADER)
    assert [int(row[0]) for row in rows[1:]] == INDEXES
    assert rows[4][:3] == ["3", "nope", "invalid"]
    # Resumed after the index a reader got to: no header, the rest only.
    _r, tail = await lines(api, f"/v1/campaigns/{cid}/results?format=csv&after=20")
    assert table(tail) == rows[1:][21:]
    # Accept asks for CSV when no format is given.
    r, accepted = await lines(api, f"/v1/campaigns/{cid}/results", Accept="text/csv")
    assert r.content_type == "text/csv" and accepted == raw


async def test_after_and_limit_cut_the_results(api: Api) -> None:
    cid = await create(api, RECIPIENTS)
    base = f"/v1/campaigns/{cid}/results"
    assert [row["index"] for row in ndjson((await lines(api, f"{base}?limit=5"))[1])] == [
        0,
        1,
        2,
        3,
        4,
    ]
    got = ndjson((await lines(api, f"{base}?after=2&limit=3"))[1])
    assert [row["index"] for row in got] == [3, 4, 5]
    assert ndjson((await lines(api, f"{base}?after=-1"))[1]) == ndjson((await lines(api, base))[1])
    assert ndjson((await lines(api, f"{base}?after=30"))[1]) == []
    # A page bigger than a write: still every row, once.
    many = await create(api, [f"+4479120{i:05d}" for i in range(1200)])
    rows = table((await lines(api, f"/v1/campaigns/{many}/results?format=csv&limit=1100"))[1])
    assert [int(row[0]) for row in rows[1:]] == list(range(1100))
    rows = table((await lines(api, f"/v1/campaigns/{many}/results?format=csv&after=99"))[1])
    assert [int(row[0]) for row in rows] == list(range(100, 1200))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("format=xml", "format"),
        ("format=", "format"),
        ("after=abc", "after"),
        ("after=-2", "after"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
    ],
)
async def test_bad_result_parameters_are_refused(api: Api, query: str, field: str) -> None:
    cid = await create(api, NUMBERS[:2])
    r = await api.get(f"/v1/campaigns/{cid}/results?{query}", headers=AUTH)
    assert r.content_type == "application/problem+json"
    status, body = await answer(r)
    assert (status, body["field"]) == (422, field)


@pytest.mark.parametrize("path", ["results", "results?format=csv", "events"])
async def test_an_unknown_campaign_is_404_before_streaming(api: Api, path: str) -> None:
    r = await api.get(f"/v1/campaigns/0123456789abcdef/{path}", headers=AUTH)
    assert r.status == 404
    assert r.content_type == "application/problem+json"
    assert (await r.json(content_type=None))["type"] == "urn:dispatcher:problem:no-campaign"


# --- events ---


async def sse(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, int, Any]]:
    """``(event, id, data)`` of a server-sent events stream, as they come."""
    event, number, data = "message", 0, ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("id: "):
            number = int(line[4:])
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and data:
            yield event, number, orjson.loads(data)
            event, data = "message", ""


async def test_events_follow_a_campaign_until_it_is_sent(
    api_for: ApiFactory, redis: Redis, prefix: str, mock: str
) -> None:
    settings = make_settings(prefix, f"{mock}/cloudaten")
    async with api_for(settings) as api:
        cid = await create(api, RECIPIENTS)
        events: list[tuple[str, int, Any]] = []
        async with asyncio.timeout(60):
            r = await api.get(f"/v1/campaigns/{cid}/events?until=sent", headers=AUTH)
            assert r.status == 200
            assert r.content_type == "text/event-stream"
            assert r.headers["Cache-Control"] == "no-cache"
            stream = sse(r)
            events.append(await anext(stream))
            # The first event is the status as it stands: nothing sent yet, no worker.
            first_event, first_id, first = events[0]
            assert (first_event, first_id) == ("status", 1)
            assert (first["id"], first["state"], first["total"]) == (cid, "queued", 31)
            assert first["counts"] == {"invalid": 1} and first["pending"] == 30
            async with RunningWorker(redis, settings):
                async for event in stream:
                    events.append(event)
                    if event[0] == "end":
                        break
            r.close()
        *statuses, (end, _end_id, ended) = events
        assert end == "end"
        assert ended == {"id": cid, "state": "sent"}
        assert [e[0] for e in statuses] == ["status"] * len(statuses)
        assert [e[1] for e in events] == list(range(1, len(events) + 1))
        recorded = [sum(e[2]["counts"].values()) for e in statuses]
        assert recorded == sorted(recorded) and recorded[-1] == 31
        assert statuses[-1][2]["counts"] == {"accepted": 30, "invalid": 1}
        # What the stream ended on is what the results say.
        rows = ndjson((await lines(api, f"/v1/campaigns/{cid}/results"))[1])
        assert sorted({row["status"] for row in rows}) == ["accepted", "invalid"]
        assert all(row["message_id"] for row in rows if row["status"] == "accepted")
        table_rows = table((await lines(api, f"/v1/campaigns/{cid}/results?format=csv"))[1])
        sent_at = table_rows[1][CSV_HEADER.index("sent_at")]
        assert sent_at.endswith("Z") and "T" in sent_at  # ISO 8601 UTC in the CSV


async def test_a_finished_campaign_ends_its_stream_at_once(api: Api) -> None:
    cid = await create(api, ["nope", "+44 12"], "?allow_empty=true")
    async with asyncio.timeout(10):
        r = await api.get(f"/v1/campaigns/{cid}/events", headers=AUTH)
        got = [event async for event in sse(r)]
    assert [(e[0], e[1]) for e in got] == [("status", 1), ("end", 2)]
    assert got[0][2]["state"] == "done" and got[0][2]["done"] is True
    assert got[1][2] == {"id": cid, "state": "done"}


async def test_a_cancel_ends_the_stream(api: Api) -> None:
    cid = await create(api, NUMBERS)
    async with asyncio.timeout(30):
        r = await api.get(f"/v1/campaigns/{cid}/events", headers=AUTH)
        stream = sse(r)
        first = await anext(stream)
        assert first[0] == "status" and first[2]["state"] == "queued"
        status, _body = await answer(await api.post(f"/v1/campaigns/{cid}/cancel", headers=AUTH))
        assert status == 200
        rest = [event async for event in stream]
    assert rest[-1][0] == "end"
    assert rest[-1][2] == {"id": cid, "state": "cancelled"}


async def test_a_bad_until_is_refused(api: Api) -> None:
    cid = await create(api, NUMBERS[:1])
    status, body = await answer(
        await api.get(f"/v1/campaigns/{cid}/events?until=later", headers=AUTH)
    )
    assert (status, body["field"]) == (422, "until")
