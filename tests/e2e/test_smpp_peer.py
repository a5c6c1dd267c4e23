"""The independent SMSC (node-smpp as a server, tests/e2e/smpp_peer) works: driven by a
minimal ESME made of aiosmpplib's PDU classes over plain asyncio streams, and nothing of
the dispatcher's."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmpplib import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    OptionalParam,
    PhoneNumber,
    SmppCommand,
    SmppCommandStatus,
    SmppMessage,
    SubmitSm,
    Unbind,
    UnbindResp,
)
from aiosmpplib.protocol import MESSAGE_TYPE_MAP, PDU_HEADER_LENGTH
from aiosmpplib.state import (
    MESSAGE_STATE,
    RECEIPTED_MESSAGE_ID,
    SAR_MSG_REF_NUM,
    SAR_SEGMENT_SEQNUM,
    SAR_TOTAL_SEGMENTS,
)
from aiosmpplib.utils import split_sms_udh

from tests.conftest import eventually
from tests.e2e.smpp_peer import Peer, install_once, running_peer

SYSTEM_ID = "e2e-esme"
PASSWORD = "s3cret"
SOURCE = "DISPATCH"
WAIT_S = 10.0


@pytest.fixture(scope="session")
def smpp_peer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_once(tmp_path_factory)


class Esme:
    """Just enough of an ESME: numbered requests, their responses, and the deliver_sm
    (acknowledged at once) in a queue."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.sequence = 0
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.delivered: asyncio.Queue[Any] = asyncio.Queue()
        self.enquire_links = 0
        self.closed = asyncio.Event()
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, peer: Peer) -> Esme:
        reader, writer = await asyncio.open_connection(peer.host, peer.smpp_port)
        return cls(reader, writer)

    def number(self, message: Any) -> asyncio.Future[Any]:
        """Give ``message`` the next sequence number; the future of its response."""
        self.sequence += 1
        message.sequence_num = self.sequence
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[self.sequence] = future
        return future

    async def request(self, message: Any) -> Any:
        future = self.number(message)
        self.writer.write(message.pdu())
        await self.writer.drain()
        return await asyncio.wait_for(future, WAIT_S)

    async def bind(self, kind: Any = BindTransceiver, **fields: Any) -> Any:
        values = {"system_id": SYSTEM_ID, "password": PASSWORD, **fields}
        return await self.request(kind(**values))

    async def next_delivery(self) -> Any:
        return await asyncio.wait_for(self.delivered.get(), WAIT_S)

    async def wait_closed(self) -> None:
        await asyncio.wait_for(self.closed.wait(), WAIT_S)

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def _reply(self, message: Any) -> None:
        self.writer.write(message.pdu())

    async def _read(self) -> None:
        try:
            while True:
                try:
                    head = await self.reader.readexactly(PDU_HEADER_LENGTH)
                    (length,) = struct.unpack("!I", head[:4])
                    pdu = head + await self.reader.readexactly(length - PDU_HEADER_LENGTH)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                message = parse(pdu)
                command = message.smpp_command
                if command & 0x80000000:
                    future = self.waiting.pop(message.sequence_num, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                elif command == SmppCommand.DELIVER_SM:
                    self._reply(DeliverSmResp(sequence_num=message.sequence_num))
                    self.delivered.put_nowait(message)
                elif command == SmppCommand.ENQUIRE_LINK:
                    self.enquire_links += 1
                    self._reply(EnquireLinkResp(sequence_num=message.sequence_num))
                elif command == SmppCommand.UNBIND:
                    self._reply(UnbindResp(sequence_num=message.sequence_num))
        finally:
            self.closed.set()
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("the SMSC closed the session"))


def parse(pdu: bytes) -> Any:
    header = SmppMessage.parse_header(pdu)
    kind: Any = MESSAGE_TYPE_MAP[header.smpp_command]
    if len(pdu) == PDU_HEADER_LENGTH:
        # node-smpp sends an error response as a bare header (no system_id / message_id).
        return kind(sequence_num=header.sequence_num, command_status=header.command_status)
    return kind.from_pdu(pdu, header, default_encoding="gsm0338")


@asynccontextmanager
async def esme(peer: Peer) -> AsyncIterator[Esme]:
    client = await Esme.connect(peer)
    try:
        yield client
    finally:
        await client.close()


def submit(to: str, text: str = "", receipt: bool = False, **fields: Any) -> Any:
    return SubmitSm(
        short_message=text,
        source=PhoneNumber(SOURCE),
        destination=PhoneNumber(to),
        registered_delivery=1 if receipt else 0,
        **fields,
    )


def udh_parts(to: str, text: str, encoding: str, ref: int) -> list[Any]:
    """``text`` as concatenated parts, each a UDH (IE 0x00 for ref < 256, else 0x08)."""
    parts = []
    for raw in split_sms_udh(text, encoding, csms_ref=ref):
        part = submit(to, "(set below)", esm_class=0x40, encoding=encoding)
        part.set_encoded_message(raw)
        parts.append(part)
    return parts


def sar_parts(to: str, chunks: list[str], ref: int) -> list[Any]:
    """One part per chunk, numbered by the SAR TLVs instead of a UDH."""
    return [
        submit(
            to,
            chunk,
            optional_params=[
                OptionalParam(SAR_MSG_REF_NUM, ref),
                OptionalParam(SAR_TOTAL_SEGMENTS, len(chunks)),
                OptionalParam(SAR_SEGMENT_SEQNUM, seq),
            ],
        )
        for seq, chunk in enumerate(chunks, 1)
    ]


def tlv(message: Any, tag: int) -> Any:
    values = [p.value for p in message.optional_params if p.tag == tag]
    assert len(values) == 1, (hex(tag), message.optional_params)
    return values[0]


def ok(responses: Iterable[Any]) -> list[str]:
    """The message ids of submit_sm_resp that all say ESME_ROK."""
    responses = list(responses)
    assert [r.command_status for r in responses] == [SmppCommandStatus.ESME_ROK] * len(responses)
    return [r.message_id for r in responses]


async def test_bind_ok_and_refused(smpp_peer_dir: Path) -> None:
    async with running_peer(smpp_peer_dir, SYSTEM_ID, PASSWORD) as peer:
        async with esme(peer) as good:
            resp = await good.request(submit("15550000", "too early"))
            assert resp.command_status == SmppCommandStatus.ESME_RINVBNDSTS
            resp = await good.bind()
            assert resp.command_status == SmppCommandStatus.ESME_ROK
            assert resp.system_id == "node-smpp"
            assert resp.sc_interface_version == 0x34
            again = await good.bind()
            assert again.command_status == SmppCommandStatus.ESME_RALYBND
        async with esme(peer) as wrong_password:
            resp = await wrong_password.bind(password="nope")
            assert resp.command_status == SmppCommandStatus.ESME_RINVPASWD
            await wrong_password.wait_closed()
        async with esme(peer) as stranger:
            resp = await stranger.bind(BindTransmitter, system_id="intruder")
            assert resp.command_status == SmppCommandStatus.ESME_RBINDFAIL
            await stranger.wait_closed()
        stats = await peer.stats()
    assert stats["binds"] == 1
    assert stats["bind_refused"] == 3
    assert stats["submits"] == 1
    assert stats["parts"] == 0


async def test_enquire_link_unbind_and_disconnect(smpp_peer_dir: Path) -> None:
    async with running_peer(smpp_peer_dir, SYSTEM_ID, PASSWORD, enquire_link_ms=50) as peer:
        async with esme(peer) as client:
            assert (await client.bind()).command_status == SmppCommandStatus.ESME_ROK
            resp = await client.request(EnquireLink())
            assert isinstance(resp, EnquireLinkResp)
            assert resp.command_status == SmppCommandStatus.ESME_ROK
            # The peer's own enquire_link every 50 ms, answered by this ESME.
            await eventually(peer.stats, lambda s: s["enquire_links_acked"] >= 2,
                             what="the peer's enquire_link answered", seconds=WAIT_S)  # fmt: skip
            assert client.enquire_links >= 2
            resp = await client.request(Unbind())
            assert isinstance(resp, UnbindResp)
            await client.wait_closed()
        async with esme(peer) as a, esme(peer) as b:
            assert (await a.bind()).command_status == SmppCommandStatus.ESME_ROK
            assert (await b.bind(BindReceiver)).command_status == SmppCommandStatus.ESME_ROK
            assert (await peer.stats())["bound"] == 2
            assert await peer.disconnect() == 2
            await a.wait_closed()
            await b.wait_closed()
        stats = await peer.stats()
    assert stats["enquire_links"] == 1
    assert stats["unbinds"] == 1
    assert stats["disconnects"] == 2
    assert stats["sessions"] == stats["bound"] == 0


async def test_texts_arrive_whole(smpp_peer_dir: Path) -> None:
    gsm = "Hello @home: £5 or €5, {braces} [brackets] ~tilde^ |pipe| \\ ÄÖÑÜ§¿äöñüà"
    ucs2 = "Привет, мир! 你好 😀 ✓"
    latin1 = "Grüße, señor! ¿Qué tal? ©®"
    long_gsm = " ".join(f"Part-of-a-long-text number {i:03d} [ok] €." for i in range(10))
    long_ucs2 = "".join(f"Часть {i}: 你好 😀 " for i in range(11))
    sar = ["The first third, ", "the second third, ", "and the last third {done}."]
    payload = "message_payload " * 20
    assert len(split_sms_udh(long_gsm, "gsm0338", csms_ref=0x42)) == 3
    assert len(split_sms_udh(long_ucs2, "ucs2", csms_ref=0x1234)) == 3
    async with running_peer(smpp_peer_dir, SYSTEM_ID, PASSWORD) as peer, esme(peer) as client:
        assert (await client.bind()).command_status == SmppCommandStatus.ESME_ROK
        messages = [
            submit("15550001", gsm),
            submit("15550002", ucs2, encoding="ucs2"),
            submit("15550003", latin1, encoding="latin_1"),
            *udh_parts("15550004", long_gsm, "gsm0338", ref=0x42),
            *udh_parts("15550005", long_ucs2, "ucs2", ref=0x1234),
            *sar_parts("15550006", sar, ref=0x0BCD),
            submit("15550008", message_payload=payload),
        ]
        ids = ok([await client.request(m) for m in messages])
        stats = await peer.stats()
    assert len(set(ids)) == len(ids) == 13 and all(ids)
    assert stats["texts"] == {
        "15550001": [gsm],
        "15550002": [ucs2],
        "15550003": [latin1],
        "15550004": [long_gsm],
        "15550005": [long_ucs2],
        "15550006": ["".join(sar)],
        "15550008": [payload],
    }
    assert (stats["submits"], stats["parts"], stats["messages"]) == (13, 13, 7)
    assert stats["incomplete"] == stats["duplicates"] == 0


async def test_receipts_name_the_message_id(smpp_peer_dir: Path) -> None:
    async with running_peer(smpp_peer_dir, SYSTEM_ID, PASSWORD) as peer, esme(peer) as client:
        assert (await client.bind()).command_status == SmppCommandStatus.ESME_ROK
        delivered_to, undeliverable = "15550001", "15550007"
        (ok_id, failed_id) = ok(
            [
                await client.request(submit(delivered_to, "Your code is 1234, valid 5 min", True)),
                await client.request(submit(undeliverable, "Never arrives", True)),
            ]
        )
        receipts = {}
        for _ in range(2):
            receipt = await client.next_delivery()
            assert isinstance(receipt, DeliverSm) and receipt.is_receipt()
            receipts[tlv(receipt, RECEIPTED_MESSAGE_ID)] = receipt
        await eventually(peer.stats, lambda s: s["receipts_acked"] == 2,
                         what="two receipts acknowledged", seconds=WAIT_S)  # fmt: skip
    assert set(receipts) == {ok_id, failed_id}
    delivered = receipts[ok_id]
    assert delivered.esm_class == 4
    assert delivered.source.number == delivered_to
    assert delivered.destination.number == SOURCE
    assert tlv(delivered, MESSAGE_STATE) == 2
    fields = delivered.parse_receipt()
    assert fields["id"] == ok_id
    assert fields["stat"] == "DELIVRD"
    assert (fields["sub"], fields["dlvrd"], fields["err"]) == (1, 1, 0)
    assert fields["text"] == "Your code is 1234, v"
    assert f"id:{ok_id} " in delivered.short_message
    failed = receipts[failed_id]
    assert failed.source.number == undeliverable
    assert tlv(failed, MESSAGE_STATE) == 5
    assert failed.parse_receipt()["stat"] == "UNDELIV"
    assert failed.parse_receipt()["id"] == failed_id


async def test_receipt_waits_for_a_receiver(smpp_peer_dir: Path) -> None:
    async with running_peer(smpp_peer_dir, SYSTEM_ID, PASSWORD, receipt_delay_ms=0) as peer:
        async with esme(peer) as transmitter:
            assert (await transmitter.bind(BindTransmitter)).command_status == 0
            (message_id,) = ok([await transmitter.request(submit("15550001", "later", True))])
            await eventually(peer.stats, lambda s: s["receipts_pending"] == 1,
                             what="the receipt kept for a receiver", seconds=WAIT_S)  # fmt: skip
            async with esme(peer) as receiver:
                assert (await receiver.bind(BindReceiver)).command_status == 0
                receipt = await receiver.next_delivery()
            assert transmitter.delivered.empty()
        stats = await peer.stats()
    assert tlv(receipt, RECEIPTED_MESSAGE_ID) == message_id
    assert receipt.parse_receipt()["id"] == message_id
    assert stats["receipts_sent"] == 1
    assert stats["receipts_pending"] == 0


async def test_same_text_to_same_number_counts_a_duplicate(smpp_peer_dir: Path) -> None:
    async with running_peer(smpp_peer_dir, SYSTEM_ID, PASSWORD) as peer, esme(peer) as client:
        assert (await client.bind()).command_status == SmppCommandStatus.ESME_ROK
        ok([await client.request(submit("15550001", "Same text"))])
        assert (await peer.stats())["duplicates"] == 0
        ok([await client.request(submit("15550002", "Same text"))])
        ok([await client.request(submit("15550001", "Other text"))])
        assert (await peer.stats())["duplicates"] == 0
        ok([await client.request(submit("15550001", "Same text"))])
        stats = await peer.stats()
    assert stats["duplicates"] == 1
    assert stats["messages"] == 4
    assert stats["texts"]["15550001"] == ["Same text", "Other text", "Same text"]


async def test_window_overflow_is_refused_and_counted(smpp_peer_dir: Path) -> None:
    async with (
        running_peer(smpp_peer_dir, SYSTEM_ID, PASSWORD, window=10, latency_ms=300) as peer,
        esme(peer) as client,
    ):
        assert (await client.bind()).command_status == SmppCommandStatus.ESME_ROK
        messages = [submit(f"1555000{i % 10}", f"window {i}") for i in range(12)]
        futures = [client.number(m) for m in messages]
        client.writer.write(b"".join(m.pdu() for m in messages))  # all 12 unanswered at once
        responses = await asyncio.wait_for(asyncio.gather(*futures), WAIT_S)
        stats = await peer.stats()
    statuses = [r.command_status for r in responses]
    assert statuses == [SmppCommandStatus.ESME_ROK] * 10 + [SmppCommandStatus.ESME_RMSGQFUL] * 2
    assert len({r.message_id for r in responses[:10]}) == 10
    assert stats["window_overflows"] == 2
    assert stats["window_max"] == 11  # the 11th was answered before the 12th came
    assert (stats["submits"], stats["parts"], stats["messages"]) == (12, 10, 10)
