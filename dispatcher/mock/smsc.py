"""A mock SMSC for Smsclouds' "SMPP Connections" (seed 004): SMPP 3.4 MT over TCP.

Binds with system_id and password, takes submit_sm one by one, answers each with a decimal
message id (the seed's example answer is "97569696 / 0 / OK"), reassembles concatenated
messages, and sends delivery receipts as deliver_sm. Window, throttling, queue-full and
connection drops can be switched on through the settings, which are read live so
``POST /_mock/settings`` reaches open sessions.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import random
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from dispatcher.mock import smsc_pdu as smpp
from dispatcher.mock.reports import decide
from dispatcher.mock.state import MockState

SMSC_ID = "MOCKSMSC"
#: The SMSC's system_id, and sc_interface_version 3.4 so the ESME knows TLVs are understood.
BIND_RESP_BODY = smpp.cstring(SMSC_ID) + smpp.tlv(smpp.SC_INTERFACE_VERSION, b"\x34")
FIRST_MESSAGE_ID = 97569696  # the seed's example id
RECEIPT_ESM_CLASS = 0x04  # "SMSC Delivery Receipt" (§5.2.12)
#: dlr_mix outcome → (receipt stat, message_state TLV, err).
FINAL = {
    "delivered": ("DELIVRD", 2, "000"), "undelivered": ("UNDELIV", 5, "001"),
    "expired": ("EXPIRED", 3, "000"), "rejected": ("REJECTD", 8, "002"),
}  # fmt: skip


@dataclass
class SmscStats:
    binds: int = 0
    bind_refused: int = 0
    submits: int = 0  # every submit_sm received
    parts: int = 0  # submit_sm accepted
    messages: int = 0  # complete messages (every part arrived)
    rejected: int = 0  # submit_sm refused for what they said (bad address, coding, PDU)
    window_overflows: int = 0  # submit_sm beyond smpp_window, answered 0x14
    window_max: int = 0  # most submit_sm outstanding at once on one session
    throttled: int = 0  # above smpp_rate_per_second, answered 0x58
    queue_full: int = 0  # every smpp_queue_full_every-th submit_sm, answered 0x14
    duplicates: int = 0  # complete messages with the same text to the same number again
    disconnects: int = 0  # sessions the SMSC closed: smpp_drop_after, or disconnect_all
    enquire_links: int = 0
    receipts_sent: int = 0  # deliver_sm sent (a receipt sent again after a lost session too)
    receipts_acked: int = 0  # deliver_sm_resp with status 0
    receipts_refused: int = 0  # deliver_sm_resp (or generic_nack) with another status


@dataclass
class Receipt:
    system_id: str
    origin: Session
    message_id: str
    submitter: smpp.Address  # the submit_sm's source: the receipt's destination
    handset: smpp.Address  # the submit_sm's destination: the receipt's source
    text: str
    submitted: float
    outcome: str

    def pdu(self, sequence: int) -> bytes:
        stat, state, err = FINAL.get(self.outcome, FINAL["undelivered"])
        short_message, tlvs = smpp.receipt(
            self.message_id, stat=stat, state=state, err=err, submitted=self.submitted,
            done=time.time(), text=self.text,
        )  # fmt: skip
        return smpp.deliver_sm(
            sequence, source=self.handset, dest=self.submitter, esm_class=RECEIPT_ESM_CLASS,
            short_message=short_message, tlvs=tlvs,
        )  # fmt: skip


class Session:
    """One ESME connection: its bind, its outstanding answers and unacknowledged receipts."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.system_id: str | None = None
        self.mode = 0
        self.answers: set[asyncio.Task[None]] = set()
        self.receipts: dict[int, Receipt] = {}  # deliver_sm sent, by sequence
        self.closed = False
        self._sequence = itertools.count(1)

    @property
    def receives(self) -> bool:
        return not self.closed and self.mode in (smpp.BIND_RECEIVER, smpp.BIND_TRANSCEIVER)

    def send(self, data: bytes) -> None:
        # The peer may be gone before the reader has seen it: uvloop raises on a write to a
        # closed transport, so look at the transport too.
        if not (self.closed or self.writer.is_closing()):
            self.writer.write(data)

    def next_sequence(self) -> int:
        return next(self._sequence)

    def close(self) -> None:
        """Close at once: answers not yet sent are never sent."""
        self.closed = True
        for task in self.answers:
            task.cancel()
        self.writer.close()


class Smsc:
    """The SMSC: ``await start()``, then ``port``; ``await close()`` when done."""

    def __init__(self, state: MockState) -> None:
        self.state = state
        self.port = 0
        self.stats = SmscStats()
        self.messages: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None
        self._sessions: set[Session] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.Task[None]] = set()
        self._pending: dict[str, collections.deque[Receipt]] = {}
        self._partial: dict[tuple[str, str, str, int], dict[int, tuple[str, str]]] = {}
        self._seen: set[tuple[str, str, str]] = set()
        self._buckets: dict[str, tuple[float, float]] = {}  # system_id → (tokens, at)
        self._drop: tuple[int, int] | None = None  # (smpp_drop_after armed, submits left)
        self._ids = itertools.count(FIRST_MESSAGE_ID)

    async def start(self) -> None:
        s = self.state.settings
        port = s.smpp_port or 0
        self._server = await asyncio.start_server(self._serve, s.host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.close()
        for timer in self._timers:
            timer.cancel()
        await asyncio.gather(*self._handlers, *self._timers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def disconnect_all(self) -> int:
        """Close every session now, as a network failure would; returns how many."""
        sessions = [s for s in self._sessions if not s.closed]
        for session in sessions:
            session.close()
        self.stats.disconnects += len(sessions)
        return len(sessions)

    def reset(self) -> None:
        """Forget messages, counters and receipts not yet sent; sessions stay."""
        self.stats = SmscStats()
        self.messages.clear()
        self._partial.clear()
        self._seen.clear()
        self._buckets.clear()
        self._pending.clear()
        self._drop = None
        for timer in self._timers:
            timer.cancel()

    def as_dict(self) -> dict[str, int]:
        counters = asdict(self.stats)
        counters["sessions"] = sum(1 for s in self._sessions if s.system_id and not s.closed)
        counters["receipts_pending"] = sum(len(q) for q in self._pending.values())
        return counters

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        self._sessions.add(session)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while not session.closed:
                length, command_id, status, sequence = smpp.HEADER.unpack(
                    await reader.readexactly(16)
                )
                if not smpp.HEADER.size <= length <= smpp.MAX_PDU:
                    session.send(smpp.pdu(smpp.GENERIC_NACK, smpp.ESME_RINVCMDLEN, sequence))
                    break
                body = await reader.readexactly(length - smpp.HEADER.size)
                if not await self._on_pdu(session, command_id, status, sequence, body):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._end(session)
            self._handlers.discard(task)
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def _end(self, session: Session) -> None:
        """A session is gone: its unacknowledged receipts wait for the next bind."""
        if not session.closed:
            session.close()
        self._sessions.discard(session)
        if session.system_id is None:
            return
        queue = self._pending.setdefault(session.system_id, collections.deque())
        queue.extendleft(reversed(list(session.receipts.values())))
        session.receipts.clear()
        self._flush(session.system_id)

    async def _on_pdu(
        self, s: Session, command_id: int, status: int, seq: int, body: bytes
    ) -> bool:
        """Handle one PDU; False ends the session."""
        if command_id & smpp.RESP:
            found = s.receipts.pop(seq, None)
            if found is not None:
                if status == smpp.ESME_ROK:
                    self.stats.receipts_acked += 1
                else:
                    self.stats.receipts_refused += 1
            return True
        if command_id in smpp.BINDS:
            self._bind(s, command_id, seq, body)
        elif command_id not in (smpp.SUBMIT_SM, smpp.UNBIND, smpp.ENQUIRE_LINK):
            s.send(smpp.pdu(smpp.GENERIC_NACK, smpp.ESME_RINVCMDID, seq))
        elif s.system_id is None or (command_id == smpp.SUBMIT_SM and s.mode == smpp.BIND_RECEIVER):
            s.send(smpp.pdu(command_id | smpp.RESP, smpp.ESME_RINVBNDSTS, seq))
        elif command_id == smpp.ENQUIRE_LINK:
            self.stats.enquire_links += 1
            s.send(smpp.pdu(smpp.ENQUIRE_LINK | smpp.RESP, smpp.ESME_ROK, seq))
        elif command_id == smpp.UNBIND:
            # Answer what was taken before saying goodbye (§4.2).
            await asyncio.gather(*s.answers, return_exceptions=True)
            s.send(smpp.pdu(smpp.UNBIND | smpp.RESP, smpp.ESME_ROK, seq))
            return False
        else:
            self._submit(s, seq, body)
        return True

    def _bind(self, s: Session, command_id: int, seq: int, body: bytes) -> None:
        resp = command_id | smpp.RESP
        if s.system_id is not None:
            s.send(smpp.pdu(resp, smpp.ESME_RALYBND, seq))
            return
        try:
            bind = smpp.parse_bind(body)
            expected = dict(self.state.settings.smpp_accounts).get(bind.system_id)
            if expected is None:
                raise smpp.PduError(smpp.ESME_RINVSYSID, "unknown system_id")
            if not secrets.compare_digest(expected.encode(), bind.password.encode()):
                raise smpp.PduError(smpp.ESME_RINVPASWD, "wrong password")
        except smpp.PduError as e:
            self.stats.bind_refused += 1
            s.send(smpp.pdu(resp, e.status, seq))
            return
        s.system_id, s.mode = bind.system_id, command_id
        self.stats.binds += 1
        s.send(smpp.pdu(resp, smpp.ESME_ROK, seq, BIND_RESP_BODY))
        self._flush(bind.system_id)

    def _submit(self, s: Session, seq: int, body: bytes) -> None:
        assert s.system_id is not None
        settings = self.state.settings
        self.stats.submits += 1
        drop = self._drop_due()
        status, message_id = self._refusal(s.system_id, len(s.answers)), ""
        if status == smpp.ESME_ROK:
            try:
                sm = smpp.parse_submit(body)
                part = smpp.message_part(sm)
                mobile = smpp.valid_mobile(sm.destination_addr)
            except smpp.PduError as e:
                self.stats.rejected += 1
                status = e.status
            else:
                message_id = self._accept(s, sm, part, mobile)
        if drop:
            # The provider took it (if it could), but the answer is lost with the connection.
            self.stats.disconnects += 1
            s.close()
        elif status != smpp.ESME_ROK:
            s.send(smpp.pdu(smpp.SUBMIT_SM | smpp.RESP, status, seq))
        else:
            jitter = random.uniform(-1, 1) * settings.smpp_latency_jitter_ms
            delay = max(0.0, settings.smpp_latency_ms + jitter) / 1000
            task = asyncio.create_task(self._answer(s, seq, message_id, delay))
            s.answers.add(task)
            task.add_done_callback(s.answers.discard)
            self.stats.window_max = max(self.stats.window_max, len(s.answers))

    async def _answer(self, s: Session, seq: int, message_id: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        s.send(smpp.pdu(smpp.SUBMIT_SM | smpp.RESP, smpp.ESME_ROK, seq, smpp.cstring(message_id)))

    def _refusal(self, system_id: str, outstanding: int) -> int:
        """Window, throttling and queue-full, before the PDU is even read."""
        settings = self.state.settings
        if 0 < settings.smpp_window <= outstanding:
            self.stats.window_overflows += 1
            return smpp.ESME_RMSGQFUL
        if self._throttled(system_id):
            self.stats.throttled += 1
            return smpp.ESME_RTHROTTLED
        every = settings.smpp_queue_full_every
        if every > 0 and self.stats.submits % every == 0:
            self.stats.queue_full += 1
            return smpp.ESME_RMSGQFUL
        return smpp.ESME_ROK

    def _throttled(self, system_id: str) -> bool:
        """A token bucket per system_id: smpp_burst tokens, refilled smpp_rate_per_second."""
        rate, burst = self.state.settings.smpp_rate_per_second, self.state.settings.smpp_burst
        if rate <= 0:
            return False
        burst = max(1, burst)
        now = time.monotonic()
        tokens, at = self._buckets.get(system_id, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        if tokens < 1:
            self._buckets[system_id] = (tokens, now)
            return True
        self._buckets[system_id] = (tokens - 1, now)
        return False

    def _drop_due(self) -> bool:
        """Is this the smpp_drop_after-th submit_sm since the setting was made? Then the
        setting goes back to 0."""
        after = self.state.settings.smpp_drop_after
        if after <= 0:
            self._drop = None
            return False
        if self._drop is None or self._drop[0] != after:
            self._drop = (after, after)
        left = self._drop[1] - 1
        if left > 0:
            self._drop = (after, left)
            return False
        self._drop = None
        self.state.settings = replace(self.state.settings, smpp_drop_after=0)
        return True

    def _accept(self, s: Session, sm: smpp.SubmitSm, part: smpp.Part, mobile: str) -> str:
        assert s.system_id is not None
        message_id = str(next(self._ids))
        self.stats.parts += 1
        if sm.registered_delivery & 1:
            self._schedule_receipt(s, sm, part, mobile, message_id)
        pieces = {1: (message_id, part.text)}
        if part.ref is not None and part.total > 1:
            key = (s.system_id, sm.source_addr, mobile, part.ref)
            pieces = self._partial.setdefault(key, {})
            pieces[part.seq] = (message_id, part.text)
            if any(i not in pieces for i in range(1, part.total + 1)):
                return message_id
            del self._partial[key]
        ordered = [pieces[i] for i in sorted(pieces)]
        text = "".join(t for _, t in ordered)
        if (s.system_id, mobile, text) in self._seen:
            self.stats.duplicates += 1
        self._seen.add((s.system_id, mobile, text))
        self.stats.messages += 1
        self.messages.append(
            {"mobile": mobile, "text": text, "parts": len(ordered),
             "data_coding": sm.data_coding, "message_ids": [i for i, _ in ordered],
             "source": sm.source_addr, "system_id": s.system_id}
        )  # fmt: skip
        return message_id

    def _schedule_receipt(
        self, s: Session, sm: smpp.SubmitSm, part: smpp.Part, mobile: str, message_id: str
    ) -> None:
        assert s.system_id is not None
        receipt = Receipt(
            s.system_id, s, message_id,
            (sm.source_addr_ton, sm.source_addr_npi, sm.source_addr),
            (sm.dest_addr_ton, sm.dest_addr_npi, sm.destination_addr),
            part.text, time.time(), decide(self.state, f"smpp:{mobile}"),
        )  # fmt: skip

        async def later() -> None:
            await asyncio.sleep(self.state.settings.smpp_receipt_delay_ms / 1000)
            self._pending.setdefault(receipt.system_id, collections.deque()).append(receipt)
            self._flush(receipt.system_id)

        timer = asyncio.create_task(later())
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)

    def _flush(self, system_id: str) -> None:
        """Send the receipts waiting for this system_id to a session that can take them:
        the one that submitted, else any other bound receiver or transceiver."""
        queue = self._pending.get(system_id)
        while queue:
            receipt = queue[0]
            session = receipt.origin if receipt.origin.receives else None
            if session is None:
                others = (x for x in self._sessions if x.receives and x.system_id == system_id)
                session = next(others, None)
            if session is None:
                return
            queue.popleft()
            sequence = session.next_sequence()
            session.receipts[sequence] = receipt
            session.send(receipt.pdu(sequence))
            self.stats.receipts_sent += 1
