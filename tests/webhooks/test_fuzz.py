"""Every push route fuzzed with hypothesis against a real receiver and a real Redis: raw
garbage, and valid pushes for a real recipient with one field made wrong (another
provider's campaign, another recipient's number or message id, non-ASCII digits, an
implausible time, a wrong type). Each must be answered 4xx or with the provider's own
success answer (a message we do not know), never 5xx, and leave every key of the test
exactly as it was before the first example."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from dispatcher.providers.common import EARLIEST_MS, same_number
from dispatcher.providers.ycloud import INBOUND_ID
from tests.webhooks.support import (
    NUMBERS,
    Hooks,
    cloudsms_packet,
    now_ms,
    one_mobile_report,
    sent_campaign,
    sid,
    smsclouds_mo,
    snapshot,
)

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
INT64 = st.integers(-(2**63), 2**63 - 1)
JSONISH = st.recursive(
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=12,
)
NOT_STR = st.none() | st.booleans() | INT64 | st.lists(INT64, max_size=2)
#: Digits ``int()`` reads but that are not ASCII: ², ١, １, ०, …
UNICODE_DIGITS = st.text(
    st.characters(categories=["Nd", "No"]).filter(lambda c: not c.isascii()), min_size=1
)
DAY_MS = 24 * 3600 * 1000
BAD_TIMES = st.one_of(
    st.integers(-(2**63), EARLIEST_MS - 1),
    st.integers(now_ms() + 2 * DAY_MS, 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.booleans(),
)
BAD_DATES = st.one_of(
    st.sampled_from(["1999-12-31 23:59:59", "2021-02-30 10:00:00", "2999-01-01 00:00:00",
                     "2021-1-1 1:1:1", "2021-01-01T00:00:00", "2021-01-01 00:00:00\n"]),
    st.builds(lambda d: f"{d}021-01-01 00:00:00", UNICODE_DIGITS),
    st.text(max_size=25),
)  # fmt: skip


def spoil(number: str) -> st.SearchStrategy[str]:
    """``number`` with some digits replaced by non-ASCII digits."""
    return st.builds(lambda d, at: number[:at] + d + number[at + 1 :], UNICODE_DIGITS,
                     st.integers(1, len(number) - 1))  # fmt: skip


@dataclass
class Scene:
    hooks: Hooks
    redis: Redis
    cids: dict[str, str]
    before: dict[bytes, Any]

    def others(self, provider: str) -> list[str]:
        return [cid for p, cid in self.cids.items() if p != provider]

    async def unchanged(self, status: int, body: bytes, success: bytes | None) -> None:
        """A 4xx, or the provider's success answer; and not one key changed."""
        event(f"HTTP {status}")
        assert status < 500, body
        assert 400 <= status < 500 or (success is not None and body == success), (status, body)
        assert await snapshot(self.redis, self.hooks.settings.prefix) == self.before


@pytest.fixture
async def scene(hooks: Hooks, redis: Redis) -> Scene:
    cids = {p: await sent_campaign(redis, hooks.settings, p) for p in NUMBERS}
    return Scene(hooks, redis, cids, await snapshot(redis, hooks.settings.prefix))


#: Fields a push may leave out and still be ours (a report is then found by its message id).
OPTIONAL = frozenset({"uid", "CUSTOMER_BODY", "REPORT_TIME"})


def mutate(data: Any, base: dict[str, Any], bad: dict[str, Any]) -> dict[str, Any]:
    """``base`` with one field made wrong (a value drawn from ``bad[field]``) or, if the
    field is required, dropped."""
    field = data.draw(st.sampled_from(sorted(bad)), label="field")
    out = dict(base)
    if field not in OPTIONAL and data.draw(st.integers(0, 5), label="drop") == 0:
        del out[field]
    else:
        out[field] = data.draw(bad[field], label=field)
    return out


def garbage_or(data: Any, garbage: st.SearchStrategy[Any], *mutants: Callable[[], Any]) -> Any:
    """Raw garbage, or one of the ``mutants`` of a valid push, in equal shares."""
    which = data.draw(st.integers(0, len(mutants)), label="kind of input")
    return data.draw(garbage, label="garbage") if which == 0 else mutants[which - 1]()


@pytest.mark.parametrize(("provider", "kind"), [("cloudaten", "dlr"), ("cloudaten", "voice"),
                                                ("ycloud", "dlr")])  # fmt: skip
@FUZZ
@given(data=st.data())
async def test_one_mobile_reports(scene: Scene, provider: str, kind: str, data: Any) -> None:
    i = data.draw(st.integers(0, 3), label="recipient")
    cid, own = scene.cids[provider], NUMBERS[provider][i]
    time_field = "status_timestamp" if provider == "cloudaten" else "push_timestamp"
    others = [n for p in NUMBERS.values() for n in p if n != own]
    bad: dict[str, Any] = {
        "uid": st.one_of(
            st.sampled_from([f"{c}.{j}" for c in scene.others(provider) for j in range(4)]),
            st.sampled_from([f"{cid}.{j}" for j in range(8) if j != i]),
            st.builds(lambda d: f"{cid}.{d}", UNICODE_DIGITS),
            st.just(f"{cid}.0{i}"),
            st.text(min_size=1).filter(lambda u: u != f"{cid}.{i}"),
            NOT_STR.filter(lambda v: v is not None),
        ),
        "mobile": st.one_of(st.sampled_from(others), spoil(own), st.text(), NOT_STR).filter(
            lambda m: not (isinstance(m, str) and same_number(m, own))
        ),
        "sid": st.one_of(
            st.sampled_from([sid(provider, j) for j in range(4) if j != i]),
            st.text().filter(lambda s: s != sid(provider, i)),
            NOT_STR,
        ),
        time_field: BAD_TIMES,
        "status": NOT_STR | st.text(min_size=33),
    }
    garbage = st.one_of(
        st.binary(max_size=200),
        JSONISH.map(orjson.dumps),
        st.fixed_dictionaries({}, optional=dict.fromkeys(bad, JSONISH)).map(orjson.dumps),
    )
    base = one_mobile_report(provider, cid, i)
    if data.draw(st.booleans(), label="drop uid"):  # without uid, found by sid: still ours
        del base["uid"]
    swaps = {  # what the fuzzer found: another provider's or recipient's, well-formed
        "uid": st.sampled_from([f"{c}.{i}" for c in scene.others(provider)]
                               + [f"{cid}.{j}" for j in range(4) if j != i]),
        "mobile": st.sampled_from(others),
        "sid": st.sampled_from([sid(p, j) for p in NUMBERS for j in range(4)
                                if sid(p, j) != sid(provider, i)]),
    }  # fmt: skip
    body = garbage_or(
        data, garbage,
        lambda: orjson.dumps(mutate(data, base, bad)),
        lambda: orjson.dumps(mutate(data, base, swaps)),
    )  # fmt: skip
    status, answer = await scene.hooks.post(provider, kind, body)
    await scene.unchanged(status, answer, b"ok")


@FUZZ
@given(data=st.data())
async def test_cloudsms_reports(scene: Scene, data: Any) -> None:
    i = data.draw(st.integers(0, 3), label="recipient")
    cid, own = scene.cids["cloudsms"], NUMBERS["cloudsms"][i][4:]
    entry = {"COUNTRY_CODE": 852, "DEST_MSISDN": own, "SMS_STATE": 2, "RESULT_DESC": "OK"}
    bad_entry: dict[str, Any] = {
        "DEST_MSISDN": st.one_of(
            st.sampled_from([n[4:] for n in NUMBERS["cloudsms"] if n[4:] != own]),
            spoil(own), st.text().filter(lambda d: d != own), NOT_STR,
        ),
        "COUNTRY_CODE": st.one_of(INT64.filter(lambda c: c != 852), st.text(),
                                  st.booleans()),
        "SMS_STATE": st.one_of(st.text(), st.booleans(), st.floats(), st.none()),
    }  # fmt: skip
    bad: dict[str, Any] = {
        "SMS_UID": st.one_of(
            st.sampled_from([sid("cloudsms", j) for j in range(4) if j != i]),
            st.text().filter(lambda u: u.strip("*") != sid("cloudsms", i)),
            NOT_STR,
        ),
        "CUSTOMER_BODY": st.one_of(
            st.fixed_dictionaries({"campaign": st.sampled_from(scene.others("cloudsms")),
                                   "chunk": st.just(0)}),
            st.fixed_dictionaries({"campaign": st.just(cid),
                                   "chunk": st.integers(1, 2**40) | st.text() | st.booleans()}),
            st.fixed_dictionaries({"campaign": st.builds(lambda d: cid[:-1] + d, UNICODE_DIGITS),
                                   "chunk": st.just(0)}),
            st.lists(INT64, min_size=1) | st.text(min_size=1) | INT64,
        ),
        "SMS_RESULT_LIST": st.one_of(st.lists(JSONISH, max_size=3), NOT_STR),
        "TIME": BAD_DATES, "REPORT_TIME": BAD_DATES,
        "SERIAL": st.one_of(INT64.filter(lambda s: not 1 <= s <= 65535), st.text(),
                            st.booleans()),
        "METHOD": st.text().filter(lambda m: m.strip() != "SMS_PUSH_REPORT"),
        "TYPE": st.text().filter(lambda t: t.strip() != "REQUEST"),
    }  # fmt: skip

    def entry_mutant() -> bytes:
        spoilt = [mutate(data, entry, bad_entry)]
        return orjson.dumps(cloudsms_packet(cid, i, SMS_RESULT_LIST=spoilt))

    def swap() -> bytes:  # another provider's campaign, another recipient's number or id
        packet = cloudsms_packet(cid, i)
        what = data.draw(st.sampled_from(["campaign", "number", "uid"]), label="swap")
        j = data.draw(st.sampled_from([j for j in range(4) if j != i]), label="other")
        if what == "campaign":
            other = data.draw(st.sampled_from(scene.others("cloudsms")), label="campaign")
            packet["CUSTOMER_BODY"] = {"campaign": other, "chunk": 0}
        elif what == "number":
            packet["SMS_RESULT_LIST"][0]["DEST_MSISDN"] = NUMBERS["cloudsms"][j][4:]
        else:
            packet["SMS_UID"] = sid("cloudsms", j)
        return orjson.dumps(packet)

    garbage = st.one_of(st.binary(max_size=200), JSONISH.map(orjson.dumps))
    body = garbage_or(
        data, garbage,
        lambda: orjson.dumps(mutate(data, cloudsms_packet(cid, i), bad)), entry_mutant, swap,
    )  # fmt: skip
    status, raw = await scene.hooks.post("cloudsms", "dlr", body)
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if status == 200:  # a packet about a message we do not know: the success ANSWER
        assert isinstance(answer, dict) and answer["RESULT_CODE"] == 1
        raw = b"ok"
    elif isinstance(answer, dict) and "RESULT_CODE" in answer:
        assert answer["RESULT_CODE"] != 1 and answer["TYPE"] == "ANSWER"
    await scene.unchanged(status, raw, b"ok")


@FUZZ
@given(data=st.data())
async def test_ycloud_inbound(scene: Scene, data: Any) -> None:
    mobile = "+8615355498966"
    base = {"id": "a1s1we1111", "mobile": mobile, "text": "Thank you",
            "inbound_timestamp": now_ms()}  # fmt: skip
    bad: dict[str, Any] = {
        "id": st.one_of(st.text(min_size=1), UNICODE_DIGITS, st.text(min_size=129), NOT_STR
                        ).filter(lambda v: not (isinstance(v, str) and INBOUND_ID.fullmatch(v))),
        "mobile": st.one_of(spoil(mobile), st.text(st.characters(categories=["L"])),
                            st.just("+12"), NOT_STR),
        "text": NOT_STR,
        "inbound_timestamp": BAD_TIMES,
    }  # fmt: skip
    # Garbage never carries a time: a random message that happened to be valid would be
    # stored, rightly.
    keys = {k: JSONISH for k in ("id", "mobile", "text")}
    garbage = st.one_of(
        st.binary(max_size=200),
        JSONISH.map(orjson.dumps),
        st.fixed_dictionaries({}, optional=keys).map(orjson.dumps),
    )
    body = garbage_or(data, garbage, lambda: orjson.dumps(mutate(data, base, bad)))
    status, answer = await scene.hooks.post("ycloud", "inbound", body)
    await scene.unchanged(status, answer, None)


@pytest.mark.parametrize("kind", ["mo", "keyword"])
@FUZZ
@given(data=st.data())
async def test_smsclouds_pushes(scene: Scene, kind: str, data: Any) -> None:
    i = data.draw(st.integers(0, 3), label="recipient")
    own = NUMBERS["smsclouds"][i][3:]
    base = smsclouds_mo(i)
    bad: dict[str, Any] = {
        "cellphone": st.one_of(spoil(own), st.text(st.characters(categories=["L", "P"]),
                                                   min_size=1), st.just("")),
        "date": BAD_DATES,
        "response": st.one_of(st.just(""), st.text(min_size=161)),
    }  # fmt: skip
    if kind == "mo":  # another recipient's message, or its number answering this one
        bad["message_id"] = st.one_of(
            st.sampled_from([sid("smsclouds", j) for j in range(4) if j != i]),
            spoil(base["message_id"]),
            st.text(st.characters(categories=["L"]), min_size=1),
        )
        bad["cellphone"] |= st.sampled_from([n[3:] for n in NUMBERS["smsclouds"] if n[3:] != own])
    else:
        base["keyword"] = base.pop("message_id")[:0] + "chema"
        bad["keyword"] = st.one_of(
            st.text(st.characters(categories=["Cc"]), min_size=1), st.text(min_size=65)
        )
    names = st.sampled_from(["response", "cellphone", "message_id", "keyword"])
    garbage = st.dictionaries(names | st.text(max_size=8), st.text(max_size=30)).map(
        lambda q: {**q, "date": "yesterday"}
    )
    status, answer = await scene.hooks.get(
        "smsclouds", kind, garbage_or(data, garbage, lambda: mutate(data, base, bad))
    )
    await scene.unchanged(status, answer.encode(), None)
