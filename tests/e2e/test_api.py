"""A whole campaign through the HTTP API only, with real processes: the API, a worker and
the mock provider. 20,000 recipients uploaded as a streamed CSV, progress followed over
server-sent events, a pause and a resume, then the results as JSON lines and as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from tests.e2e.conftest import API_TOKEN, System

#: Also run against a Redis Cluster by make test-cluster (tests/cluster.py).
pytestmark = pytest.mark.cluster

N = 20_000
FIRST = 85261230000  # Hong Kong mobiles, as CloudSMS's seed writes them
# Two names: personalised, and still a packet's worth of numbers per identical text
# (CloudSMS packs numbers whose rendered text is the same).
NAMES = ("Ann", "Bo")
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def csv_pieces() -> AsyncIterator[bytes]:
    """The upload, written as it goes: the client never holds the whole file either."""
    yield b"number,name\n"
    for first in range(0, N, 1000):
        rows = (f"+{FIRST + i},{NAMES[i % 2]}\n" for i in range(first, first + 1000))
        yield "".join(rows).encode()


async def sse(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """``(event, data)`` of a server-sent events stream, as they come."""
    event, data = "message", ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and data:
            yield event, orjson.loads(data)
            event, data = "message", ""


async def test_a_campaign_through_the_api_only(system: System) -> None:
    # 200 numbers a packet, 25 packets a second: about 4 s of sending, time to pause.
    system.write_config(cloudsms={"chunk_size": 1000, "rate_per_second": 25})
    api = system.api()
    system.worker()
    async with aiohttp.ClientSession(headers=AUTH) as http:
        form = aiohttp.FormData()
        campaign = {"provider": "cloudsms", "text": "Hi <+B+>, your code is ready"}
        form.add_field("campaign", orjson.dumps(campaign).decode(), content_type="application/json")
        form.add_field("recipients", csv_pieces(), filename="people.csv", content_type="text/csv")
        async with http.post(
            f"{api}/v1/campaigns", data=form, headers={"Idempotency-Key": "api-e2e-1"}
        ) as r:
            assert r.status == 201, await r.text()
            answer = await r.json()
        assert (answer["valid"], answer["invalid"], answer["chunks"]) == (N, 0, N // 1000)
        cid = answer["id"]

        seen: list[int] = []
        paused = resumed = False
        async with http.get(f"{api}/v1/campaigns/{cid}/events?until=sent") as stream:
            assert stream.status == 200
            assert stream.content_type == "text/event-stream"
            async for event, data in sse(stream):
                if event == "end":
                    assert data == {"id": cid, "state": "sent"}
                    break
                assert event == "status" and data["id"] == cid
                recorded = sum(data["counts"].values())
                seen.append(recorded)
                if not paused and recorded > 0:
                    async with http.post(
                        f"{api}/v1/campaigns/{cid}/pause", json={"reason": "checking"}
                    ) as r:
                        body = await r.json()
                        assert (r.status, body["changed"], body["state"]) == (200, True, "paused")
                    paused = True
                elif paused and not resumed and data["state"] == "paused":
                    assert data["reason"] == "checking"
                    # A repeat changes nothing and says so.
                    async with http.post(f"{api}/v1/campaigns/{cid}/pause") as r:
                        assert (await r.json())["changed"] is False
                    async with http.post(f"{api}/v1/campaigns/{cid}/resume") as r:
                        body = await r.json()
                        assert (r.status, body["changed"]) == (200, True), body
                    resumed = True
        assert paused and resumed
        assert seen == sorted(seen) and seen[-1] == N  # progress only moves forward
        assert 0 < seen[0] < N or len(seen) > 2

        async with http.get(f"{api}/v1/campaigns/{cid}") as r:
            status = await r.json()
        assert status["counts"] == {"accepted": N} and status["state"] in ("sent", "done")

        async with http.get(f"{api}/v1/campaigns/{cid}/results") as r:
            assert r.content_type == "application/x-ndjson"
            rows = [orjson.loads(line) async for line in r.content if line.strip()]
        assert [row["index"] for row in rows] == list(range(N))
        assert {row["status"] for row in rows} == {"accepted"}
        assert rows[7]["number"] == f"+{FIRST + 7}"

        # Resumable: the rest after the index a reader got to, as CSV without a header.
        async with http.get(f"{api}/v1/campaigns/{cid}/results?format=csv") as r:
            assert r.content_type == "text/csv"
            table = list(csv.reader(io.StringIO(await r.text())))
        assert table[0][:3] == ["index", "number", "status"] and len(table) == N + 1
        async with http.get(f"{api}/v1/campaigns/{cid}/results?format=csv&after=19989") as r:
            tail = list(csv.reader(io.StringIO(await r.text())))
        assert [int(row[0]) for row in tail] == list(range(19990, N))
        assert tail == table[-10:]

        # The same upload again with the same key: the first campaign, nothing new.
        async with http.post(
            f"{api}/v1/campaigns",
            json={**campaign, "recipients": [f"+{FIRST}"]},
            headers={"Idempotency-Key": "api-e2e-1"},
        ) as r:
            again = await r.json()
        assert (r.status, again["id"], again["existing"]) == (200, cid, True)
