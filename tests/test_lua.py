"""Every script gets its shared constants one way (lua.render) and its KEYS by name: no
placeholder is left, no events length is written by hand, and every script compiles."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from dispatcher import control, fencing, lua, queue, settle, tracking, unknown
from dispatcher.settle import RecordArgs, RecordKeys, Settle
from dispatcher.store import EVENTS_MAXLEN, PAUSED

SCRIPTS = {
    "record": settle.RECORD,
    "promote": queue._PROMOTE,
    "extend": queue._EXTEND,
    "apply": tracking._APPLY,
    "found": unknown._FOUND,
    "send_again": unknown._SEND_AGAIN,
    "hold": unknown._HOLD,
    "rescore": unknown._RESCORE,
    "resume": control._RESUME,
    "pause": control._PAUSE,
    "cancel": control._CANCEL,
    "retry": control._RETRY,
    "takeover": fencing._TAKEOVER,
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_constant_is_rendered_and_the_events_length_is_the_one(name: str) -> None:
    text = SCRIPTS[name]
    assert "@" not in text
    for length in re.findall(r"'MAXLEN', '~', ([^,]+),", text):
        assert length == str(EVENTS_MAXLEN)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
async def test_every_script_compiles(redis: Redis, name: str) -> None:
    assert await redis.script_load(SCRIPTS[name])


def test_render_fills_shared_and_own_constants_and_refuses_unknown_ones() -> None:
    assert lua.render("x = @MAXLEN@ + @PAUSED@ + @N@", N=7) == f"x = {EVENTS_MAXLEN} + {PAUSED} + 7"
    with pytest.raises(KeyError, match="@MAXLENGTH@"):
        lua.render("x = @MAXLENGTH@")


def test_script_names_keys_and_args_in_order() -> None:
    text = lua.script("return {a, b, c}", keys=("a", "b"), argv=("c",))
    assert text.splitlines()[:3] == ["local a = KEYS[1]", "local b = KEYS[2]", "local c = ARGV[1]"]
    with pytest.raises(ValueError, match="twice"):
        lua.script("", keys=("a",), argv=("a",))
    with pytest.raises(ValueError, match="cannot name"):
        lua.script("", keys=("end",))


def test_the_record_script_names_its_keys_and_args_from_the_tuples() -> None:
    for i, name in enumerate(RecordKeys._fields, 1):
        assert f"\nlocal {name} = KEYS[{i}]\n" in settle.RECORD
    for i, name in enumerate(RecordArgs._fields, 1):
        assert f"\nlocal {name} = ARGV[{i}]\n" in settle.RECORD
    last = f"local {RecordArgs._fields[-1]} = ARGV[{len(RecordArgs._fields)}]\n"
    body = settle.RECORD.split(last, 1)[1]
    assert "KEYS[" not in body and "ARGV[" not in body  # only the names are used


def test_the_record_script_knows_exactly_the_settle_modes() -> None:
    compared = set(re.findall(r"mode [~=]= '(\w+)'", settle.RECORD))
    assigned = set(re.findall(r"mode(?:, lost)? = '(\w+)'", settle.RECORD))
    assert compared | assigned <= {m.value for m in Settle}
    assert {Settle.KEEP, Settle.HOLD, Settle.REQUEUE, Settle.DELAY} <= compared
