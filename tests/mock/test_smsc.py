"""The mock SMSC against SMPP 3.4, driven by a raw-struct ESME written here (not the
dispatcher's SMPP client, nor the mock's own codec), so each side checks the other."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import aiohttp
import pytest

from dispatcher.demo import start_mock, stop
from dispatcher.mock import MockSettings, start
from dispatcher.mock.server import SMSC
from tests.conftest import eventually, subprocess_env
from tests.mock.conftest import MockClient

HEADER = struct.Struct(">IIII")
BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER = 0x01, 0x02, 0x09
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x04, 0x05, 0x06, 0x15
GENERIC_NACK = RESP = 0x80000000
DATA_SM = 0x0103  # a command the SMSC does not take
NUMBER = "5215512345678"
TIMEOUT_S = 5.0


class Pdu(NamedTuple):
    command_id: int
    status: int
    sequence: int
    body: bytes


def cstr(value: str) -> bytes:
    return value.encode() + b"\0"


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


def submit_body(
    dest: str = NUMBER,
    short_message: bytes = b"Hola",
    *,
    data_coding: int = 0,
    esm_class: int = 0,
    registered_delivery: int = 0,
    source: str = "MOCK",
    tlvs: bytes = b"",
) -> bytes:
    """submit_sm (§4.4.1): every mandatory field in order, then TLVs."""
    return (
        cstr("")  # service_type
        + bytes([5, 0]) + cstr(source)  # alphanumeric sender
        + bytes([1, 1]) + cstr(dest)  # international, ISDN
        + bytes([esm_class, 0, 0])  # esm_class, protocol_id, priority_flag
        + cstr("") + cstr("")  # schedule_delivery_time, validity_period
        + bytes([registered_delivery, 0, data_coding, 0, len(short_message)])
        + short_message
        + tlvs
    )  # fmt: skip


def parse_deliver(body: bytes) -> dict[str, Any]:
    """deliver_sm (§4.6.1), read field by field."""
    pos = 0

    def c_string() -> str:
        nonlocal pos
        end = body.index(b"\0", pos)
        value = body[pos:end].decode()
        pos = end + 1
        return value

    def octet() -> int:
        nonlocal pos
        pos += 1
        return body[pos - 1]

    out: dict[str, Any] = {"service_type": c_string()}
    out["source"] = (octet(), octet(), c_string())
    out["dest"] = (octet(), octet(), c_string())
    out["esm_class"], _, _ = octet(), octet(), octet()
    c_string(), c_string()
    _, _, out["data_coding"], _, length = (octet() for _ in range(5))
    out["short_message"] = body[pos : pos + length]
    pos += length
    tlvs: dict[int, bytes] = {}
    while pos < len(body):
        tag, size = struct.unpack_from(">HH", body, pos)
        tlvs[tag] = body[pos + 4 : pos + 4 + size]
        pos += 4 + size
    out["tlvs"] = tlvs
    return out


class Esme:
    """A minimal ESME: requests matched to responses by sequence number, requests from the
    SMSC (deliver_sm) queued, and acknowledged unless ``ack`` is False."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ack: bool
    ) -> None:
        self.reader, self.writer, self.ack = reader, writer, ack
        self.delivered: asyncio.Queue[Pdu] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._sequence = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                length, command_id, status, seq = HEADER.unpack(await self.reader.readexactly(16))
                pdu = Pdu(command_id, status, seq, await self.reader.readexactly(length - 16))
                if command_id & RESP:
                    waiting = self._waiting.pop(seq, None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(pdu)
                    continue
                if self.ack and command_id == DELIVER_SM:
                    self.write(DELIVER_SM | RESP, seq, b"\0")
                self.delivered.put_nowait(pdu)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()
            for waiting in self._waiting.values():
                if not waiting.done():
                    waiting.set_exception(EOFError("connection closed unanswered"))

    def write(self, command_id: int, seq: int, body: bytes = b"", status: int = 0) -> None:
        self.writer.write(HEADER.pack(16 + len(body), command_id, status, seq) + body)

    def send(self, command_id: int, body: bytes = b"") -> asyncio.Future[Pdu]:
        seq = next(self._sequence)
        answer: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = answer
        self.write(command_id, seq, body)
        return answer

    async def call(self, command_id: int, body: bytes = b"") -> Pdu:
        async with asyncio.timeout(TIMEOUT_S):
            return await self.send(command_id, body)

    async def bind(
        self,
        command_id: int = BIND_TRANSCEIVER,
        system_id: str = "smsclouds",
        password: str = "smpppass",
    ) -> Pdu:
        body = cstr(system_id) + cstr(password) + cstr("") + bytes([0x34, 0, 0]) + cstr("")
        return await self.call(command_id, body)

    async def submit(self, *args: Any, **kwargs: Any) -> Pdu:
        return await self.call(SUBMIT_SM, submit_body(*args, **kwargs))

    async def next_delivered(self) -> Pdu:
        async with asyncio.timeout(TIMEOUT_S):
            return await self.delivered.get()

    async def wait_closed(self) -> None:
        async with asyncio.timeout(TIMEOUT_S):
            await self.closed.wait()

    async def close(self) -> None:
        self.writer.close()
        await self._task


class Smsc:
    def __init__(self, http: MockClient, port: int) -> None:
        self.http = http
        self.port = port
        self.esmes: list[Esme] = []

    async def esme(self, bind: int | None = BIND_TRANSCEIVER, ack: bool = True) -> Esme:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        esme = Esme(reader, writer, ack)
        self.esmes.append(esme)
        if bind is not None:
            assert (await esme.bind(bind)).status == 0
        return esme

    async def stats(self) -> dict[str, int]:
        _, data = await self.http.call("GET", "/_mock/stats")
        stats: dict[str, int] = data["smsc"]
        return stats

    async def messages(self) -> list[dict[str, Any]]:
        return await self.http.messages("smpp")

    async def settings(self, **changes: Any) -> dict[str, Any]:
        status, data = await self.http.call("POST", "/_mock/settings", changes)
        assert status == 200, data
        settings: dict[str, Any] = data
        return settings


@pytest.fixture
async def open_smsc() -> AsyncIterator[Callable[..., Awaitable[Smsc]]]:
    """Starts the mock with its SMSC on free ports, with these settings."""
    runners: list[Any] = []
    smscs: list[Smsc] = []
    async with aiohttp.ClientSession() as session:

        async def make(**settings: Any) -> Smsc:
            runner, port = await start(MockSettings(port=0, smpp_port=0, **settings))
            runners.append(runner)
            smsc = Smsc(MockClient(session, f"http://127.0.0.1:{port}"), runner.app[SMSC].port)
            smscs.append(smsc)
            return smsc

        yield make
        for smsc in smscs:
            for esme in smsc.esmes:
                await esme.close()
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
async def smsc(open_smsc: Callable[..., Awaitable[Smsc]]) -> Smsc:
    return await open_smsc()


def message_id(pdu: Pdu) -> str:
    assert pdu.status == 0, hex(pdu.status)
    assert pdu.body.endswith(b"\0") and pdu.body.count(b"\0") == 1
    return pdu.body[:-1].decode()


async def test_binds_ok_and_refused(smsc: Smsc) -> None:
    esme = await smsc.esme(bind=None)
    answer = await esme.call(SUBMIT_SM, submit_body())
    assert (answer.command_id, answer.status) == (SUBMIT_SM | RESP, 0x04)  # not bound yet
    answer = await esme.bind(BIND_TRANSMITTER, password="wrong")
    assert (answer.command_id, answer.status) == (BIND_TRANSMITTER | RESP, 0x0E)
    assert (await esme.bind(BIND_TRANSMITTER, system_id="nobody")).status == 0x0F
    answer = await esme.bind(BIND_TRANSMITTER)
    assert (answer.command_id, answer.status) == (BIND_TRANSMITTER | RESP, 0)
    assert answer.body.startswith(b"MOCKSMSC\0")
    assert (await esme.bind(BIND_TRANSCEIVER)).status == 0x05  # already bound
    receiver = await smsc.esme(bind=None)
    answer = await receiver.bind(BIND_RECEIVER)
    assert (answer.command_id, answer.status) == (BIND_RECEIVER | RESP, 0)
    assert (await receiver.submit()).status == 0x04  # a receiver does not submit
    stats = await smsc.stats()
    assert (stats["binds"], stats["bind_refused"], stats["sessions"]) == (2, 2, 2)


async def test_submit_answered_with_a_fresh_decimal_id(smsc: Smsc) -> None:
    esme = await smsc.esme(BIND_TRANSMITTER)
    first = message_id(await esme.submit(short_message=b"Hola"))
    second = message_id(await esme.submit("+447901614024", b"Adios", source="Brand"))
    assert first.isdigit() and second.isdigit() and first != second
    assert await smsc.messages() == [
        {"provider": "smpp", "mobile": f"+{NUMBER}", "text": "Hola", "parts": 1,
         "data_coding": 0, "message_ids": [first], "source": "MOCK", "system_id": "smsclouds"},
        {"provider": "smpp", "mobile": "+447901614024", "text": "Adios", "parts": 1,
         "data_coding": 0, "message_ids": [second], "source": "Brand",
         "system_id": "smsclouds"},
    ]  # fmt: skip


# Hand-written GSM 03.38 septets: the escapes (1B xx) and the non-ASCII positions.
GSM = (
    b"A\x1be\x1b<\x1b>\x1b(\x1b)\x1b/\x1b\x14\x1b=\x1b@"  # €[]{}\^~|
    b"\x00\x01\x02\x11 \x04\x5d\x60\x10\nok"  # @£$_ èÑ¿Δ LF
)


@pytest.mark.parametrize(
    ("data_coding", "raw", "text"),
    [
        (0, GSM, "A€[]{}\\^~|@£$_ èÑ¿Δ\nok"),
        (3, "Canción ñandú ¿sí?".encode("latin-1"), "Canción ñandú ¿sí?"),
        (8, "Hola 👋 ñ".encode("utf-16-be"), "Hola 👋 ñ"),
    ],
)
async def test_text_decoded_by_data_coding(
    smsc: Smsc, data_coding: int, raw: bytes, text: str
) -> None:
    esme = await smsc.esme()
    message_id(await esme.submit(short_message=raw, data_coding=data_coding))
    [message] = await smsc.messages()
    assert (message["text"], message["data_coding"]) == (text, data_coding)


async def test_undecodable_text_and_bad_numbers_are_rejected(smsc: Smsc) -> None:
    esme = await smsc.esme()
    assert (await esme.submit(short_message=b"caf\xe9")).status == 0x45  # not a septet
    assert (await esme.submit(short_message=b"\xd8\x3d", data_coding=8)).status == 0x45
    assert (await esme.submit("12345")).status == 0x0B
    assert (await esme.submit("52155abc5678")).status == 0x0B
    stats = await smsc.stats()
    assert (stats["submits"], stats["rejected"], stats["parts"]) == (4, 4, 0)
    assert await smsc.messages() == []


def udh8(seq: int) -> bytes:
    return bytes([5, 0x00, 3, 0xA7, 3, seq])


def udh16(seq: int) -> bytes:
    return bytes([6, 0x08, 4, 0x12, 0x34, 3, seq])


@pytest.mark.parametrize("concat", ["udh8", "udh16", "sar"])
async def test_three_parts_reassembled_whole(smsc: Smsc, concat: str) -> None:
    esme = await smsc.esme()
    texts = {1: b"Part one, ", 2: b"part two, ", 3: b"part three."}
    ids: dict[int, str] = {}
    for seq in (2, 3, 1):  # out of order on purpose
        if concat == "sar":
            sar = tlv(0x020C, b"\x00\x2a") + tlv(0x020E, b"\x03") + tlv(0x020F, bytes([seq]))
            answer = await esme.submit(short_message=texts[seq], tlvs=sar)
        else:
            udh = udh8(seq) if concat == "udh8" else udh16(seq)
            answer = await esme.submit(short_message=udh + texts[seq], esm_class=0x40)
        ids[seq] = message_id(answer)
        if seq != 1:
            assert await smsc.messages() == []  # not whole yet
    [message] = await smsc.messages()
    assert message["text"] == "Part one, part two, part three."
    assert (message["parts"], message["message_ids"]) == (3, [ids[1], ids[2], ids[3]])
    stats = await smsc.stats()
    assert (stats["parts"], stats["messages"]) == (3, 1)


async def test_message_payload_tlv(smsc: Smsc) -> None:
    esme = await smsc.esme()
    text = "Largo " * 50
    body = tlv(0x0424, text.encode("latin-1"))
    message_id(await esme.submit(short_message=b"", data_coding=3, tlvs=body))
    assert [m["text"] for m in await smsc.messages()] == [text]
    both = await esme.submit(short_message=b"x", data_coding=3, tlvs=body)
    assert both.status == 0xC4  # short_message and message_payload together


async def test_window_overflow_answered_queue_full(smsc: Smsc) -> None:
    esme = await smsc.esme()
    await smsc.settings(smpp_window=2, smpp_latency_ms=400)  # live, after the bind
    first, second = esme.send(SUBMIT_SM, submit_body()), esme.send(SUBMIT_SM, submit_body())
    third = await esme.call(SUBMIT_SM, submit_body())
    assert third.status == 0x14
    assert not first.done() and not second.done()  # still outstanding: the window was full
    async with asyncio.timeout(TIMEOUT_S):
        assert [(await first).status, (await second).status] == [0, 0]
    stats = await smsc.stats()
    assert (stats["window_overflows"], stats["window_max"], stats["parts"]) == (1, 2, 2)


async def test_throttled_above_the_rate(open_smsc: Callable[..., Awaitable[Smsc]]) -> None:
    smsc = await open_smsc(smpp_rate_per_second=0.5, smpp_burst=2)
    esme = await smsc.esme()
    assert [(await esme.submit()).status for _ in range(3)] == [0, 0, 0x58]
    stats = await smsc.stats()
    assert (stats["throttled"], stats["parts"], stats["submits"]) == (1, 2, 3)


async def test_every_nth_submit_queue_full(open_smsc: Callable[..., Awaitable[Smsc]]) -> None:
    smsc = await open_smsc(smpp_queue_full_every=2)
    esme = await smsc.esme()
    assert [(await esme.submit()).status for _ in range(4)] == [0, 0x14, 0, 0x14]
    assert (await smsc.stats())["queue_full"] == 2


RECEIPT = re.compile(
    r"id:(\d+) sub:001 dlvrd:(\d{3}) submit date:\d{10} done date:\d{10} "
    r"stat:([A-Z]{7}) err:(\d{3}) text:(.*)",
    re.S,
)


@pytest.mark.parametrize(
    ("outcome", "stat", "state"),
    [("delivered", "DELIVRD", 2), ("rejected", "REJECTD", 8), ("expired", "EXPIRED", 3)],
)
async def test_receipt_to_the_submitting_transceiver(
    open_smsc: Callable[..., Awaitable[Smsc]], outcome: str, stat: str, state: int
) -> None:
    smsc = await open_smsc(smpp_receipt_delay_ms=0, dlr_mix=((outcome, 1),))
    other = await smsc.esme(BIND_RECEIVER)
    esme = await smsc.esme()
    sent = message_id(await esme.submit(short_message=b"Hello receipt text that goes on",
                                        registered_delivery=1))  # fmt: skip
    receipt = await esme.next_delivered()
    assert receipt.command_id == DELIVER_SM
    fields = parse_deliver(receipt.body)
    assert fields["esm_class"] == 0x04 and fields["data_coding"] == 0
    assert fields["source"] == (1, 1, NUMBER) and fields["dest"] == (5, 0, "MOCK")
    found = RECEIPT.fullmatch(fields["short_message"].decode("ascii"))
    assert found is not None, fields["short_message"]
    dlvrd = "001" if state == 2 else "000"
    assert found.group(1, 2, 3, 5) == (sent, dlvrd, stat, "Hello receipt text t")
    assert fields["tlvs"] == {0x001E: sent.encode() + b"\0", 0x0427: bytes([state])}
    assert (await esme.call(ENQUIRE_LINK)).status == 0  # the SMSC has read the ack by now
    stats = await smsc.stats()
    assert (stats["receipts_sent"], stats["receipts_acked"], stats["enquire_links"]) == (1, 1, 1)
    assert other.delivered.empty()  # the submitting session got it


async def test_receipt_waits_for_a_bind_and_outlives_a_lost_session(
    open_smsc: Callable[..., Awaitable[Smsc]],
) -> None:
    smsc = await open_smsc(smpp_receipt_delay_ms=0)
    sender = await smsc.esme(BIND_TRANSMITTER)  # cannot take receipts
    sent = message_id(await sender.submit(registered_delivery=1))
    await eventually(smsc.stats, lambda s: s["receipts_pending"] == 1, what="pending receipt",
                     seconds=TIMEOUT_S)  # fmt: skip
    assert (await smsc.stats())["receipts_sent"] == 0
    careless = await smsc.esme(BIND_TRANSCEIVER, ack=False)
    first = parse_deliver((await careless.next_delivered()).body)
    assert first["tlvs"][0x001E] == sent.encode() + b"\0"
    await careless.close()  # gone without deliver_sm_resp
    await eventually(smsc.stats, lambda s: s["receipts_pending"] == 1, what="receipt kept",
                     seconds=TIMEOUT_S)  # fmt: skip
    receiver = await smsc.esme(BIND_RECEIVER)
    again = parse_deliver((await receiver.next_delivered()).body)
    assert again["tlvs"][0x001E] == sent.encode() + b"\0"
    assert (await receiver.call(ENQUIRE_LINK)).status == 0
    stats = await smsc.stats()
    assert (stats["receipts_sent"], stats["receipts_acked"], stats["receipts_pending"]) == (2, 1, 0)


async def test_drop_after_closes_unanswered_and_keeps_the_messages(smsc: Smsc) -> None:
    esme = await smsc.esme()
    await smsc.settings(smpp_drop_after=3)
    message_id(await esme.submit(short_message=b"one"))
    await smsc.settings(smpp_latency_ms=60_000)  # what follows stays outstanding
    two = esme.send(SUBMIT_SM, submit_body(short_message=b"two"))
    three = esme.send(SUBMIT_SM, submit_body(short_message=b"three"))
    await esme.wait_closed()
    for lost in (two, three):
        assert isinstance(lost.exception(), EOFError)  # never answered
    assert [m["text"] for m in await smsc.messages()] == ["one", "two", "three"]
    stats = await smsc.stats()
    assert (stats["disconnects"], stats["submits"], stats["parts"]) == (1, 3, 3)
    settings = await smsc.settings()
    assert settings["smpp_drop_after"] == 0  # once
    assert "smpp_accounts" not in settings  # passwords stay private


async def test_enquire_link_unknown_command_and_unbind(smsc: Smsc) -> None:
    esme = await smsc.esme(bind=None)
    assert (await esme.call(ENQUIRE_LINK)).status == 0x04  # not bound
    assert (await esme.bind()).status == 0
    answer = await esme.call(ENQUIRE_LINK)
    assert (answer.command_id, answer.status) == (ENQUIRE_LINK | RESP, 0)
    answer = await esme.call(DATA_SM, b"")
    assert (answer.command_id, answer.status) == (GENERIC_NACK, 0x03)
    answer = await esme.call(UNBIND)
    assert (answer.command_id, answer.status) == (UNBIND | RESP, 0)
    await esme.wait_closed()
    assert (await smsc.stats())["enquire_links"] == 1


async def test_disconnect_closes_every_session(smsc: Smsc) -> None:
    esmes = [await smsc.esme(), await smsc.esme(BIND_TRANSMITTER)]
    status, data = await smsc.http.call("POST", "/_mock/smsc/disconnect")
    assert (status, data) == (200, {"disconnected": 2})
    for esme in esmes:
        await esme.wait_closed()
    stats = await smsc.stats()
    assert (stats["disconnects"], stats["sessions"]) == (2, 0)


async def test_duplicates_listing_and_reset(smsc: Smsc) -> None:
    esme = await smsc.esme()
    for text in (b"same", b"same", b"other"):
        message_id(await esme.submit(short_message=text))
    stats = await smsc.stats()
    assert (stats["messages"], stats["duplicates"]) == (3, 1)
    _, everything = await smsc.http.call("GET", "/_mock/messages")
    assert [m["text"] for m in everything if m["provider"] == "smpp"] == ["same", "same", "other"]
    assert (await smsc.http.call("POST", "/_mock/reset"))[0] == 200
    assert await smsc.messages() == []
    assert (await smsc.stats())["messages"] == 0


async def test_no_smsc_without_a_port(mock_client: MockClient) -> None:
    _, data = await mock_client.call("GET", "/_mock/stats")
    assert "smsc" not in data
    assert (await mock_client.call("POST", "/_mock/smsc/disconnect"))[0] == 404
    assert (await mock_client.call("GET", "/_mock/messages?provider=smpp"))[0] == 404


async def test_cli_prints_the_smpp_line_and_takes_accounts() -> None:
    args = ["--smpp-port", "0", "--smpp-account", "acct:pw:with:colons"]
    proc, url = start_mock(args, subprocess_env())  # waits for the HTTP line
    try:
        assert url.startswith("http://127.0.0.1:")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(r"mock smpp listening on 127\.0\.0\.1:\d+\n", line), line
        reader, writer = await asyncio.open_connection("127.0.0.1", int(line.split(":")[-1]))
        esme = Esme(reader, writer, ack=True)
        assert (await esme.bind(system_id="smsclouds")).status == 0x0F  # default replaced
        assert (await esme.bind(system_id="acct", password="pw:with:colons")).status == 0
        await esme.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()
