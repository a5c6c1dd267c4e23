"""The requests that create and steer campaigns, against a real aiohttp server over a real
Redis: JSON and multipart creation (CSV and JSON lines, read a piece at a time), idempotency,
the problems each mistake answers, listing with cursors, and pause, resume and cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from dispatcher import chunkblob
from dispatcher.keys import Keys
from tests.api.conftest import AUTH, Api, answer
from tests.conftest import eventually

NUMBERS = [f"+4479110{i:05d}" for i in range(25)]
CAMPAIGN: dict[str, Any] = {"provider": "cloudaten", "text": "Hi <+B+>"}


def form(
    campaign: Any,
    recipients: bytes | AsyncIterator[bytes],
    *,
    filename: str = "people.csv",
    content_type: str = "text/csv",
) -> aiohttp.FormData:
    data = aiohttp.FormData()
    raw = campaign if isinstance(campaign, bytes) else orjson.dumps(campaign)
    data.add_field("campaign", raw.decode(), content_type="application/json")
    data.add_field("recipients", recipients, filename=filename, content_type=content_type)
    return data


async def create(api: Api, body: Any, **headers: str) -> tuple[int, Any]:
    return await answer(await api.post("/v1/campaigns", json=body, headers={**AUTH, **headers}))


async def upload(api: Api, data: aiohttp.FormData, query: str = "") -> tuple[int, Any]:
    return await answer(await api.post(f"/v1/campaigns{query}", data=data, headers=AUTH))


async def listed(redis: Redis, prefix: str) -> list[str]:
    members: Any = await redis.zrange(Keys(prefix).campaigns, 0, -1)
    return [m.decode() for m in members]


async def get(api: Api, path: str) -> tuple[int, Any]:
    return await answer(await api.get(path, headers=AUTH))


async def post(api: Api, path: str, body: Any = None) -> tuple[int, Any]:
    return await answer(await api.post(path, json=body, headers=AUTH))


def assert_problem(status: int, body: Any, expected: int, field: str | None = None) -> None:
    assert status == expected, body
    assert body["status"] == expected
    assert body["type"].startswith("urn:dispatcher:problem:")
    assert body["title"] and body["detail"]
    if field is not None:
        assert body.get("field") == field, body


# --- JSON ---


async def test_a_json_campaign_is_created(api: Api, redis: Redis, prefix: str) -> None:
    status, body = await create(api, {**CAMPAIGN, "recipients": [*NUMBERS[:12], "nope"]})
    assert status == 201, body
    assert body == {
        "id": body["id"],
        "recipients": 13,
        "valid": 12,
        "invalid": 1,
        "duplicates": 0,
        "chunks": 2,  # ten a chunk in these settings
        "existing": False,
    }
    assert await listed(redis, prefix) == [body["id"]]
    status, st = await get(api, f"/v1/campaigns/{body['id']}")
    assert status == 200
    assert (st["id"], st["total"], st["counts"]) == (body["id"], 13, {"invalid": 1})


async def test_the_same_idempotency_key_answers_the_first_campaign(
    api: Api, redis: Redis, prefix: str
) -> None:
    first_status, first = await create(
        api, {**CAMPAIGN, "recipients": NUMBERS[:3]}, **{"Idempotency-Key": "order-7"}
    )
    assert first_status == 201
    # Another list with the same key: the first campaign, nothing new written.
    status, again = await create(
        api, {**CAMPAIGN, "recipients": NUMBERS[:5]}, **{"Idempotency-Key": "order-7"}
    )
    assert status == 200
    assert again == {**first, "existing": True}
    # The key in the body as well, the same: still the first.
    status, same = await create(
        api,
        {**CAMPAIGN, "recipients": NUMBERS[:1], "idempotency_key": "order-7"},
        **{"Idempotency-Key": "order-7"},
    )
    assert (status, same["id"]) == (200, first["id"])
    assert await listed(redis, prefix) == [first["id"]]


async def test_a_body_key_other_than_the_header_is_refused(
    api: Api, redis: Redis, prefix: str
) -> None:
    status, body = await create(
        api,
        {**CAMPAIGN, "recipients": NUMBERS[:1], "idempotency_key": "a"},
        **{"Idempotency-Key": "b"},
    )
    assert_problem(status, body, 422, "idempotency_key")
    assert await listed(redis, prefix) == []


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "campaign"),
        (b"", "campaign"),
        (b"[1, 2]", "campaign"),
        (b'{"provider": "cloudaten", "recipients": ["+447901614024"]}', "text"),
        (b'{"provider": "nosuch", "text": "hi", "recipients": ["+447901614024"]}', "provider"),
        (b'{"provider": "cloudaten", "text": "hi", "recipients": []}', "recipients"),
        (b'{"provider": "cloudaten", "text": "hi", "recipients": [5]}', "recipients[0]"),
    ],
)
async def test_a_bad_json_campaign_is_a_problem_naming_the_field(
    api: Api, redis: Redis, prefix: str, raw: bytes, field: str
) -> None:
    r = await api.post(
        "/v1/campaigns", data=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.content_type == "application/problem+json"
    status, body = await answer(r)
    assert_problem(status, body, 422, field)
    assert body["type"] == "urn:dispatcher:problem:invalid-field"
    assert await listed(redis, prefix) == []


async def test_nothing_valid_is_refused_unless_allowed(api: Api, redis: Redis, prefix: str) -> None:
    campaign = {**CAMPAIGN, "recipients": ["nope", "+44 12"]}
    status, body = await create(api, campaign)
    assert_problem(status, body, 422, "recipients")
    assert "none of the 2 is valid" in body["detail"]
    assert await listed(redis, prefix) == []
    r = await api.post("/v1/campaigns?allow_empty=true", json=campaign, headers=AUTH)
    status, body = await answer(r)
    assert (status, body["valid"], body["invalid"], body["chunks"]) == (201, 0, 2, 0)
    status, st = await get(api, f"/v1/campaigns/{body['id']}")
    assert st["state"] == "done"
    r = await api.post("/v1/campaigns?allow_empty=maybe", json=campaign, headers=AUTH)
    assert_problem(*await answer(r), 422, "allow_empty")


async def test_an_unsupported_content_type_is_415(api: Api, redis: Redis, prefix: str) -> None:
    r = await api.post(
        "/v1/campaigns", data=b"+447901614024\n", headers={**AUTH, "Content-Type": "text/csv"}
    )
    assert r.status == 415
    assert r.content_type == "application/problem+json"
    status, body = await answer(r)
    assert_problem(status, body, 415)
    assert "multipart/form-data" in body["detail"]
    assert await listed(redis, prefix) == []


async def test_a_wrong_method_is_a_problem_naming_the_allowed(api: Api) -> None:
    r = await api.get("/v1/estimate", headers=AUTH)
    assert r.status == 405
    assert r.content_type == "application/problem+json"
    assert "POST" in r.headers["Allow"]


# --- multipart ---


async def test_a_csv_upload_creates_the_campaign(api: Api) -> None:
    csv = "number,name\r\n" + "".join(f"{n},Ann{i}\r\n" for i, n in enumerate(NUMBERS))
    status, body = await upload(api, form(CAMPAIGN, (csv + "not a number,Bo\r\n").encode()))
    assert status == 201, body
    assert (body["recipients"], body["valid"], body["invalid"], body["chunks"]) == (26, 25, 1, 3)
    status, st = await get(api, f"/v1/campaigns/{body['id']}")
    assert (st["total"], st["counts"]) == (26, {"invalid": 1})


async def test_a_large_csv_upload_is_read_in_pieces(api: Api, redis: Redis, prefix: str) -> None:
    """Bigger than a piece the server reads, sent in pieces of its own that cut lines, and
    their ``\\r\\n``, anywhere: every row read once, quoted line breaks and all."""
    count = 12_000
    rows = "".join(
        f'+4479{i:08d},"Ann\r\n{i}"\r\n' if i % 1000 == 0 else f"+4479{i:08d},Bo{i}\r\n"
        for i in range(count)
    ).encode()
    data = b"number,name\r\n" + rows

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 4093):
            yield data[start : start + 4093]

    assert len(data) > 256 * 1024
    status, body = await upload(api, form(CAMPAIGN, pieces()))
    assert status == 201, body
    assert (body["recipients"], body["valid"], body["invalid"]) == (count, count, 0)
    assert body["chunks"] == count // 10
    # The quoted line breaks arrive as one, whatever the pieces cut.
    stored = await redis.hgetall(Keys(prefix).chunks(body["id"]))
    members = [m for n, blob in stored.items() if n != b"invalid" for m in chunkblob.decode(blob)]
    assert len(members) == count
    quoted = sorted((m.index, (m.fields or {})["name"]) for m in members if m.index % 1000 == 0)
    assert quoted == [(i, f"Ann\n{i}") for i in range(0, count, 1000)]


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("people.ndjson", "application/x-ndjson"),
        ("people.txt", "application/jsonl"),
        ("people.jsonl", "application/octet-stream"),
    ],
)
async def test_a_json_lines_upload_creates_the_campaign(
    api: Api, filename: str, content_type: str
) -> None:
    lines = [orjson.dumps(n) for n in NUMBERS[:4]]
    lines.append(orjson.dumps({"number": NUMBERS[4], "name": "Ann"}))
    data = b"\n".join(lines) + b"\n\n"
    status, body = await upload(
        api, form(CAMPAIGN, data, filename=filename, content_type=content_type)
    )
    assert status == 201, body
    assert (body["recipients"], body["valid"], body["chunks"]) == (5, 5, 1)


@pytest.mark.parametrize(
    "case",
    [
        (b"number,name\n+447901614024,Ann\n+447911000001,Bo,extra\n", "a.csv", 3, "3 columns"),
        (b'number,name\r\n+447901614024,Ann\r\n+447911000001,"Bo\r\n', "a.csv", 3, "malformed"),
        (b"+447901614024\n\xff\n", "a.csv", 2, "not valid UTF-8"),
        (b'"+447901614024"\n{"number": 5}\n', "a.ndjson", 2, "must be a string"),
    ],
)
async def test_a_bad_row_is_a_422_naming_its_line_and_nothing_is_written(
    api: Api, redis: Redis, prefix: str, case: tuple[bytes, str, int, str]
) -> None:
    data, filename, line, words = case
    status, body = await upload(api, form(CAMPAIGN, data, filename=filename))
    assert_problem(status, body, 422, "recipients")
    assert f"{filename} line {line}: " in body["detail"]
    assert words in body["detail"]
    assert await listed(redis, prefix) == []
    assert [k async for k in redis.scan_iter(match=f"{prefix}*")] == []


async def test_the_campaign_part_comes_first(api: Api) -> None:
    data = aiohttp.FormData()
    data.add_field("recipients", b"+447901614024\n", filename="a.csv", content_type="text/csv")
    data.add_field("campaign", orjson.dumps(CAMPAIGN).decode(), content_type="application/json")
    assert_problem(*await upload(api, data), 422, "campaign")


async def test_a_part_with_broken_headers_is_a_problem_naming_multipart(api: Api) -> None:
    # A part header with control bytes is not HTTP: aiohttp raises InvalidHeader for it.
    body = b'--xyz\r\nContent-Disposition: form-data; name="a\x02b"\r\n\r\nnull\r\n--xyz--\r\n'
    headers = {**AUTH, "Content-Type": "multipart/form-data; boundary=xyz"}
    status, problem = await answer(await api.post("/v1/campaigns", data=body, headers=headers))
    assert_problem(status, problem, 422, "multipart")


async def test_the_recipients_part_must_follow(api: Api) -> None:
    data = aiohttp.FormData()
    data.add_field("campaign", orjson.dumps(CAMPAIGN).decode(), content_type="application/json")
    data.add_field("people", b"+447901614024\n", filename="a.csv", content_type="text/csv")
    assert_problem(*await upload(api, data), 422, "recipients")
    only = aiohttp.FormData()
    only.add_field("campaign", orjson.dumps(CAMPAIGN).decode(), content_type="application/json")
    only.add_field("more", "x", content_type="text/plain")  # keep it multipart
    assert_problem(*await upload(api, only), 422, "recipients")


async def test_no_part_after_the_recipients(api: Api, redis: Redis, prefix: str) -> None:
    data = form(CAMPAIGN, b"+447901614024\n")
    data.add_field("extra", "x", content_type="text/plain")
    assert_problem(*await upload(api, data), 422, "multipart")
    assert await listed(redis, prefix) == []


@pytest.mark.parametrize(
    ("campaign", "field"),
    [
        (b"{oops", "campaign"),
        ({**CAMPAIGN, "recipients": ["+447901614024"]}, "recipients"),
        ({"provider": "cloudaten"}, "text"),
        ({**CAMPAIGN, "account": "nope"}, "account"),
    ],
)
async def test_a_bad_campaign_part_names_the_field(api: Api, campaign: Any, field: str) -> None:
    assert_problem(*await upload(api, form(campaign, b"+447901614024\n")), 422, field)


async def test_recipients_of_another_type_are_refused(api: Api) -> None:
    data = form(CAMPAIGN, b"%PDF", filename="people.pdf", content_type="application/pdf")
    status, body = await upload(api, data)
    assert_problem(status, body, 422, "recipients")
    assert "application/pdf" in body["detail"]


async def test_an_upload_of_a_header_only_is_empty(api: Api, redis: Redis, prefix: str) -> None:
    status, body = await upload(api, form(CAMPAIGN, b"number,name\n# nobody yet\n"))
    assert_problem(status, body, 422, "recipients")
    assert await listed(redis, prefix) == []


async def test_an_upload_takes_the_idempotency_key_header(api: Api) -> None:
    async def send() -> tuple[int, Any]:
        r = await api.post(
            "/v1/campaigns",
            data=form(CAMPAIGN, b"+447901614024\n"),
            headers={**AUTH, "Idempotency-Key": "upload-1"},
        )
        return await answer(r)

    first_status, first = await send()
    second_status, second = await send()
    assert (first_status, second_status) == (201, 200)
    assert second == {**first, "existing": True}


async def test_a_key_whose_upload_is_still_streaming_is_a_409(
    api: Api, redis: Redis, prefix: str
) -> None:
    """The first upload is staged as it streams; the same Idempotency-Key meanwhile is a
    conflict (ask again later), and once the first is published, its answer."""
    go_on = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        # The server reads ahead of what it hands out, and small writes wait in buffers:
        # a big second piece (repeats) gets it to the recipients part, and staging.
        yield "".join(f"{n}\n" for n in NUMBERS[:10]).encode()
        yield "".join(f"{n}\n" for n in NUMBERS[10:20]).encode() * 2000
        await go_on.wait()
        yield "".join(f"{n}\n" for n in NUMBERS[20:]).encode()

    headers = {**AUTH, "Idempotency-Key": "slow-1"}
    first = asyncio.ensure_future(
        api.post("/v1/campaigns", data=form(CAMPAIGN, slow()), headers=headers)
    )
    key = Keys(prefix).idempotency("slow-1")
    await eventually(lambda: redis.exists(key), what="the first upload staging")
    status, body = await create(
        api, {**CAMPAIGN, "recipients": NUMBERS}, **{"Idempotency-Key": "slow-1"}
    )
    assert_problem(status, body, 409)
    assert "in progress" in body["detail"]
    go_on.set()
    first_status, published = await answer(await first)
    assert (first_status, published["valid"], published["duplicates"]) == (201, 25, 19_990)
    status, again = await create(
        api, {**CAMPAIGN, "recipients": NUMBERS}, **{"Idempotency-Key": "slow-1"}
    )
    assert (status, again) == (200, {**published, "existing": True})


# --- listing and status ---


async def test_listing_pages_every_campaign_once_newest_first(api: Api) -> None:
    ids = []
    for i in range(7):
        status, body = await create(api, {**CAMPAIGN, "recipients": [NUMBERS[i]]})
        assert status == 201
        ids.append(body["id"])
    statuses = [(await get(api, f"/v1/campaigns/{cid}"))[1] for cid in ids]
    newest_first = [
        st["id"] for st in sorted(statuses, key=lambda s: (s["created_at"], s["id"]), reverse=True)
    ]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "/v1/campaigns?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, page = await get(api, query)
        assert status == 200, page
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == newest_first
    assert pages == 3


async def test_listing_filters_by_state(api: Api) -> None:
    ids = []
    for i in range(5):
        ids.append((await create(api, {**CAMPAIGN, "recipients": [NUMBERS[i]]}))[1]["id"])
    for cid in ids[1:3]:
        assert (await post(api, f"/v1/campaigns/{cid}/pause"))[0] == 200
    status, page = await get(api, "/v1/campaigns?state=paused&limit=10")
    assert status == 200
    assert {item["id"] for item in page["items"]} == set(ids[1:3])
    assert {item["state"] for item in page["items"]} == {"paused"}
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("cursor=%21%21", "cursor"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("state=running", "state"),
    ],
)
async def test_listing_refuses_bad_parameters(api: Api, query: str, field: str) -> None:
    assert_problem(*await get(api, f"/v1/campaigns?{query}"), 422, field)


async def test_an_unknown_campaign_is_a_404_problem(api: Api) -> None:
    r = await api.get("/v1/campaigns/0123456789abcdef", headers=AUTH)
    assert r.content_type == "application/problem+json"
    status, body = await answer(r)
    assert_problem(status, body, 404)
    assert body["type"] == "urn:dispatcher:problem:no-campaign"
    assert "0123456789abcdef" in body["detail"]


@pytest.mark.parametrize(
    ("method", "action"),
    [
        ("POST", "pause"),
        ("POST", "resume"),
        ("POST", "cancel"),
        ("POST", "retry"),
        ("GET", "dead"),
    ],
)
async def test_steering_an_unknown_campaign_is_404(api: Api, method: str, action: str) -> None:
    r = await api.request(method, f"/v1/campaigns/nosuch/{action}", headers=AUTH)
    status, body = await answer(r)
    assert_problem(status, body, 404)
    assert body["type"] == "urn:dispatcher:problem:no-campaign"


# --- pause, resume, cancel ---


async def test_pause_resume_and_cancel_answer_and_repeat(api: Api) -> None:
    _status, made = await create(api, {**CAMPAIGN, "recipients": NUMBERS})
    base = f"/v1/campaigns/{made['id']}"

    status, body = await post(api, f"{base}/pause", {"reason": "  checking the text  "})
    assert (status, body) == (
        200,
        {"id": made["id"], "state": "paused", "changed": True, "message": "paused"},
    )
    assert (await get(api, base))[1]["reason"] == "checking the text"
    status, body = await post(api, f"{base}/pause")
    assert (status, body["changed"], body["state"]) == (200, False, "paused")
    assert body["message"] == "already paused: nothing to do"

    status, body = await post(api, f"{base}/resume")
    assert (status, body["changed"], body["state"]) == (200, True, "queued")
    assert body["requeued"] >= 0 and body["message"].startswith("resumed")
    status, body = await post(api, f"{base}/resume")
    assert (status, body["changed"], body["requeued"]) == (200, False, 0)
    assert body["message"] == "not paused (queued)"

    status, body = await post(api, f"{base}/cancel")
    assert (status, body["changed"], body["state"]) == (200, True, "cancelled")
    assert body["provider_campaigns"] == {}
    status, body = await post(api, f"{base}/cancel")
    assert (status, body["changed"]) == (200, False)
    assert body["message"] == "already cancelled: nothing to do"

    status, body = await post(api, f"{base}/pause")
    assert (status, body["changed"], body["state"]) == (200, False, "cancelled")
    status, body = await post(api, f"{base}/resume")
    assert_problem(status, body, 409)
    assert body["type"] == "urn:dispatcher:problem:conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1]", "body"),
        (b'{"reason": ""}', "reason"),
        (b'{"reason": "   "}', "reason"),
        (b'{"reason": 5}', "reason"),
        (b'{"reason": "' + b"x" * 201 + b'"}', "reason"),
    ],
)
async def test_a_bad_pause_reason_is_refused(api: Api, body: bytes, field: str) -> None:
    _status, made = await create(api, {**CAMPAIGN, "recipients": NUMBERS[:2]})
    r = await api.post(
        f"/v1/campaigns/{made['id']}/pause",
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert_problem(*await answer(r), 422, field)
    assert (await get(api, f"/v1/campaigns/{made['id']}"))[1]["state"] == "queued"


async def test_dead_and_retry_of_a_campaign_with_none(api: Api) -> None:
    _status, made = await create(api, {**CAMPAIGN, "recipients": NUMBERS[:2]})
    assert await get(api, f"/v1/campaigns/{made['id']}/dead") == (200, {"items": []})
    assert await post(api, f"/v1/campaigns/{made['id']}/retry") == (
        200,
        {"id": made["id"], "requeued": 0},
    )


# --- estimate and inbound ---


async def test_an_estimate_writes_nothing(api: Api, redis: Redis, prefix: str) -> None:
    campaign = {**CAMPAIGN, "recipients": [*NUMBERS[:3], NUMBERS[0], "nope"]}
    status, body = await post(api, "/v1/estimate", campaign)
    assert status == 200, body
    assert body == {
        "provider": "cloudaten",
        "recipients": 3,
        "invalid": 1,
        "duplicates": 1,
        "segments": 3,
        "by_segments": {"1": 3},
        "price_per_segment": None,
        "cost": None,
    }
    assert await listed(redis, prefix) == []
    r = await api.post("/v1/estimate", data=b"x", headers={**AUTH, "Content-Type": "text/csv"})
    assert_problem(*await answer(r), 415)
    assert_problem(*await post(api, "/v1/estimate", {"provider": "cloudaten"}), 422, "text")


async def test_inbound_reads_the_latest_oldest_first(api: Api, redis: Redis, prefix: str) -> None:
    assert await get(api, "/v1/inbound") == (200, {"items": []})
    for i in range(3):
        await redis.xadd(Keys(prefix).inbound, {"from": f"+4479110000{i:02d}", "text": f"m{i}"})
    status, body = await get(api, "/v1/inbound?count=2")
    assert status == 200
    assert [(m["from"], m["text"]) for m in body["items"]] == [
        ("+447911000001", "m1"),
        ("+447911000002", "m2"),
    ]
    assert len((await get(api, "/v1/inbound?count=1000"))[1]["items"]) == 3
    assert len((await get(api, "/v1/inbound?count=1"))[1]["items"]) == 1


@pytest.mark.parametrize("count", ["0", "1001", "-1", "abc", "", "1.5"])
async def test_inbound_count_is_bounded(api: Api, count: str) -> None:
    assert_problem(*await get(api, f"/v1/inbound?count={count}"), 422, "count")


@pytest.mark.parametrize("path", ["/v1/campaigns?limit=%C2%B2", "/v1/inbound?count=%C2%B2"])
async def test_a_digit_that_is_no_number_is_refused_not_a_failure(api: Api, path: str) -> None:
    # "²" is a digit to str.isdigit, but int() cannot read it.
    status, body = await get(api, path)
    assert_problem(status, body, 422, "limit" if "limit" in path else "count")
