"""A bare SMPP client for the benchmark's ceiling: no queue, no Redis, no fencing.

It binds one transceiver session, keeps ``window`` ``submit_sm`` outstanding (as the
dispatcher's SMPP transport does), matches responses by sequence number and acknowledges
delivery receipts, with aiosmpplib's PDU classes over plain asyncio streams. The PDUs sent
are the ones the dispatcher's codec builds, so both sides send the very same bytes.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time

from aiosmpplib.protocol import BindTransceiver, DeliverSmResp, EnquireLinkResp

from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob
from dispatcher.providers.smsclouds_smpp import SmscloudsSmppCodec

HEADER = struct.Struct(">IIII")
DELIVER_SM, ENQUIRE_LINK, RESPONSE = 0x05, 0x15, 0x80000000


async def ceiling(
    host: str, port: int, system_id: str, password: str, numbers: list[str], *,
    text: str, window: int, sender_id: str,
) -> float:  # fmt: skip
    """Recipients per second of a bare client sending one submit_sm per number."""
    codec = SmscloudsSmppCodec()
    serials = itertools.cycle(range(1, 65536))
    ctx = BuildContext("", lambda: next(serials), time.time())
    job = SendJob("bare", 0, text, options={"sender_id": sender_id})
    built = codec.build(job, [ChunkRecipient(i, n) for i, n in enumerate(numbers)], ctx)
    pdus = [pdu for request in built.requests for pdu in request.pdus]
    reader, writer = await asyncio.open_connection(host, port)
    waiting: dict[int, asyncio.Future[int]] = {}
    sequence = itertools.count(1)

    async def read() -> None:
        while True:
            head = await reader.readexactly(HEADER.size)
            length, command, status, seq = HEADER.unpack(head)
            await reader.readexactly(length - HEADER.size)
            if command & RESPONSE:
                future = waiting.pop(seq, None)
                if future is not None:
                    future.set_result(status)
            elif command == DELIVER_SM:
                writer.write(DeliverSmResp(sequence_num=seq).pdu())
            elif command == ENQUIRE_LINK:
                writer.write(EnquireLinkResp(sequence_num=seq).pdu())

    async def call(pdu: bytes) -> int:
        seq = next(sequence)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiting[seq] = future
        writer.write(pdu[:12] + seq.to_bytes(4, "big") + pdu[16:])
        return await future

    reading = asyncio.create_task(read())
    try:
        bind = BindTransceiver(system_id=system_id, password=password)
        if await call(bind.pdu()) != 0:
            raise SystemExit("bare SMPP client: bind refused")
        todo = iter(pdus)

        async def lane() -> None:
            for pdu in todo:
                status = await call(pdu)
                assert status == 0, f"submit_sm refused: 0x{status:08X}"

        started = time.monotonic()
        await asyncio.gather(*(lane() for _ in range(window)))
        elapsed = time.monotonic() - started
    finally:
        reading.cancel()
        writer.close()
    return len(numbers) / elapsed
