"""The SMPP transport against the mock SMSC on loopback: binding, the window, lost sessions
(unknown fate) and reconnecting, receipts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dispatcher.config import SmppSettings
from dispatcher.mock.server import SMSC
from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob, SmppRequest
from dispatcher.providers.smsclouds_smpp import SmscloudsSmppCodec
from dispatcher.smpp import SmppTransport
from dispatcher.transport import TransportError
from tests.conftest import PASSWORD, SYSTEM_ID, Smsc, eventually

codec = SmscloudsSmppCodec()


def request(number: str, text: str = "hola", serial: int = 1) -> SmppRequest:
    job = SendJob("cid", 0, text, options={"sender_id": "MASMSJ"})
    ctx = BuildContext("", serial=lambda: serial)
    built = codec.build(job, [ChunkRecipient(0, number)], ctx)
    return built.requests[0]


def transport(port: int, password: str = PASSWORD, **kw: Any) -> SmppTransport:
    settings = SmppSettings("127.0.0.1", port, SYSTEM_ID, window=kw.pop("window", 10))
    return SmppTransport(settings, password, timeout=5, connect_timeout=5, **kw)


async def test_a_message_is_answered_with_its_id_and_arrives_whole(smsc: Smsc) -> None:
    t = transport(smsc.port)
    try:
        text = "Hola € " * 40  # three GSM parts with extension characters
        status, ids = await t.send(request("+525512345678", text))
        assert status == 0 and len(ids.split(b",")) == 3
    finally:
        await t.close()
    [message] = await smsc.messages()
    assert (message["mobile"], message["text"], message["parts"]) == ("+525512345678", text, 3)
    assert message["message_ids"] == ids.decode().split(",")


async def test_requests_never_overrun_the_window(smsc: Smsc) -> None:
    await smsc.call("POST", "/_mock/settings", {"smpp_latency_ms": 5, "smpp_window": 4})
    t = transport(smsc.port, window=4)
    try:
        answers = await asyncio.gather(*(t.send(request(f"+5255100000{i:02d}")) for i in range(60)))
    finally:
        await t.close()
    assert [s for s, _ in answers] == [0] * 60
    stats = await smsc.stats()
    assert stats["window_overflows"] == 0 and stats["window_max"] == 4
    assert stats["messages"] == 60 and stats["duplicates"] == 0


async def test_a_refused_bind_is_answered_with_its_status_and_sends_nothing(smsc: Smsc) -> None:
    t = transport(smsc.port, password="wrong")
    try:
        assert await t.send(request("+525512345678")) == (0x0E, b"")  # ESME_RINVPASWD
    finally:
        await t.close()
    assert await smsc.messages() == []


async def test_no_smsc_is_a_connection_error_that_sent_nothing(unused_tcp_port: int) -> None:
    t = transport(unused_tcp_port)
    with pytest.raises(TransportError) as err:
        await t.send(request("+525512345678"))
    assert err.value.maybe_sent is False
    await t.close()


async def test_a_lost_session_leaves_its_outstanding_requests_unknown_then_rebinds(
    smsc: Smsc,
) -> None:
    # The SMSC takes the 5th submit_sm and drops the connection without answering: the
    # requests waiting then may have been taken (unknown fate); the next one binds again.
    await smsc.call("POST", "/_mock/settings", {"smpp_latency_ms": 20, "smpp_drop_after": 5})
    t = transport(smsc.port, window=10)
    try:
        answers = await asyncio.gather(
            *(t.send(request(f"+5255200000{i:02d}")) for i in range(8)), return_exceptions=True
        )
        lost = [a for a in answers if isinstance(a, TransportError)]
        assert lost and all(e.maybe_sent for e in lost)
        assert all(isinstance(a, tuple) and a[0] == 0 for a in answers if a not in lost)
        assert await t.send(request("+525530000000")) == (0, (await _last_id(smsc)).encode())
        assert t.binds == 2
    finally:
        await t.close()
    stats = await smsc.stats()
    assert stats["disconnects"] == 1 and stats["binds"] == 2


async def _last_id(smsc: Smsc) -> str:
    messages = await smsc.messages()
    ids: list[str] = messages[-1]["message_ids"]
    return ids[0]


async def test_receipts_are_handed_over_and_acknowledged(smsc: Smsc) -> None:
    await smsc.call("POST", "/_mock/settings", {"smpp_receipt_delay_ms": 0})
    got: list[bytes] = []
    arrived = asyncio.Event()

    async def store(pdu: bytes) -> bool:
        got.append(pdu)
        arrived.set()
        return True

    t = transport(smsc.port, on_deliver=store)
    try:
        status, ids = await t.send(request("+525512345678"))
        assert status == 0
        async with asyncio.timeout(10):
            await arrived.wait()
    finally:
        await t.close()
    report = codec.parse_deliver(got[0])
    assert report is not None and report.message_id == ids.decode()
    assert (await smsc.stats())["receipts_acked"] == 1


def test_answers_are_counted_by_their_command_status_name() -> None:
    assert SmppTransport.outcome(0) == "esme_rok"
    assert SmppTransport.outcome(0x58) == "esme_rthrottled"
    assert SmppTransport.outcome(0x0400) == "0x00000400"  # vendor-specific


async def test_an_idle_session_is_kept_alive_with_enquire_link(smsc: Smsc) -> None:
    settings = SmppSettings("127.0.0.1", smsc.port, SYSTEM_ID, enquire_link_seconds=0.1)
    t = SmppTransport(settings, PASSWORD, timeout=5, connect_timeout=5)
    try:
        assert (await t.send(request("+525512345678")))[0] == 0
        await eventually(smsc.stats, lambda s: s["enquire_links"] >= 2, what="enquire_link")
        assert t.binds == 1  # the same session all along
    finally:
        await t.close()


async def test_a_down_smsc_is_tried_again_after_a_growing_pause(unused_tcp_port: int) -> None:
    t = transport(unused_tcp_port)
    try:
        for _ in range(3):
            with pytest.raises(TransportError):
                await t.send(request("+525512345678"))
        assert t.backoff_s == 2.0  # 0.5, 1, 2: nothing hammers an SMSC that is down
    finally:
        await t.close()


def test_a_session_closed_under_it_is_lost_before_anything_is_written_on_uvloop() -> None:
    # The worker runs on uvloop, which raises on a write to a closed transport where asyncio
    # only logs: a connection gone before the reader noticed must be a TransportError that
    # sent nothing, not a crash of the chunk.
    import uvloop

    from dispatcher.mock import MockSettings, start

    async def scenario() -> None:
        settings = MockSettings(port=0, smpp_port=0, smpp_accounts=((SYSTEM_ID, PASSWORD),))
        runner, _port = await start(settings)
        smsc_port = runner.app[SMSC].port
        t = transport(smsc_port)
        try:
            assert (await t.send(request("+525512345678")))[0] == 0
            session = t._session
            assert session is not None
            session.writer.transport.abort()  # gone; the reader has not run since
            with pytest.raises(TransportError) as err:
                await t.send(request("+525512345679"))
            assert err.value.maybe_sent is False
            assert (await t.send(request("+525512345670")))[0] == 0  # bound again
            assert t.binds == 2
        finally:
            await t.close()
            await runner.cleanup()

    uvloop.run(scenario())
