"""SMPP 3.4 to a provider's SMSC: the transport of accounts with ``transport = "smpp"``.

It plays the part the HTTP connection pool (transport.py) plays for HTTP accounts: one
bound session per account and process (``bind_transceiver`` by default, so delivery
receipts come back on it), each request's PDUs numbered and sent, their responses matched
by sequence number. It knows SMPP, not any provider: the codec builds the ``submit_sm``
PDUs and reads the receipts.

* **Window.** At most ``window`` requests wait for their response at once, across every
  chunk the process sends through the account; the SMSC's own window is not overrun.
* **Keep-alive.** An idle session sends ``enquire_link`` every ``enquire_link_seconds``; one
  left unanswered ends the session.
* **Reconnect.** A lost session is bound again at the next send, with a backoff (0.5 s,
  doubling to 30 s) after failures so that a down SMSC is not hammered.
* **Unknown fate.** A PDU written to a session that is then lost, or whose response does
  not come within the timeout, may have been taken: that is TransportError with
  ``maybe_sent`` (the sender parks its recipients). One not written is ``maybe_sent=False``.
* **Throttling.** A part after the first refused with ESME_RTHROTTLED or ESME_RMSGQFUL is
  sent again here after a pause (the message's first parts are already with the SMSC, so
  it cannot go back whole); the first part's refusal goes to the codec, which slows the
  account down.
* **Receipts.** Each ``deliver_sm`` is handed to ``on_deliver`` (whole PDU); the
  ``deliver_sm_resp`` says ESME_ROK once it is stored, else ESME_RX_T_APPN so that the SMSC
  delivers it again later.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import time
from collections.abc import Awaitable, Callable

from aiosmpplib.protocol import (
    BindTransceiver,
    BindTransmitter,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Unbind,
    UnbindResp,
)
from aiosmpplib.state import SmppCommand, SmppCommandStatus

from dispatcher.config import SmppSettings
from dispatcher.providers.base import SmppRequest
from dispatcher.transport import TransportError

log = logging.getLogger("dispatcher.smpp")
HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence
MAX_PDU = 65_536
RESPONSE = 0x80000000
THROTTLED = (SmppCommandStatus.ESME_RTHROTTLED, SmppCommandStatus.ESME_RMSGQFUL)
PART_TRIES = 8
BACKOFF_S, BACKOFF_MAX_S = 0.5, 30.0

DeliverSink = Callable[[bytes], Awaitable[bool]]


class BindRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"bind refused: command_status 0x{status:08X}")
        self.status = status


class Lost(Exception):
    """The session ended; ``written``: the PDU had gone out on it."""

    def __init__(self, written: bool) -> None:
        super().__init__("the SMPP session was lost")
        self.written = written


class Session:
    """One bound TCP connection: sequence numbers, pending responses, the reader."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_deliver: DeliverSink | None,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.on_deliver = on_deliver
        self.pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.numbers = itertools.count(1)
        self.closed = asyncio.Event()
        self.last_heard = time.monotonic()
        self.tasks: set[asyncio.Task[None]] = set()
        self.reading: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.reading = asyncio.create_task(self._read())

    async def request(self, pdu: bytes, wait_s: float) -> tuple[int, bytes]:
        """Send ``pdu`` (its sequence number set here) and wait for its response:
        (command_status, body)."""
        if self.closed.is_set() or self.writer.is_closing():
            # The connection may be gone before the reader has seen it: nothing is written
            # (uvloop raises on a write to a closed transport rather than dropping it).
            self._end()
            raise Lost(written=False)
        seq = next(self.numbers)
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self.pending[seq] = future
        try:
            self.writer.write(pdu[:12] + seq.to_bytes(4, "big") + pdu[16:])
            async with asyncio.timeout(wait_s):
                return await future
        finally:
            self.pending.pop(seq, None)

    def _reply(self, pdu: bytes) -> None:
        if not (self.closed.is_set() or self.writer.is_closing()):
            self.writer.write(pdu)

    async def _read(self) -> None:
        try:
            while True:
                head = await self.reader.readexactly(HEADER.size)
                length, command, status, seq = HEADER.unpack(head)
                if not HEADER.size <= length <= MAX_PDU:
                    log.warning("SMPP PDU of %d bytes: closing the session", length)
                    return
                body = await self.reader.readexactly(length - HEADER.size)
                self.last_heard = time.monotonic()
                if command & RESPONSE:  # generic_nack included: it answers a request too
                    future = self.pending.get(seq)
                    if future is not None and not future.done():
                        future.set_result((status, body))
                elif command == SmppCommand.DELIVER_SM:
                    task = asyncio.create_task(self._deliver(seq, head + body))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
                elif command == SmppCommand.ENQUIRE_LINK:
                    self._reply(EnquireLinkResp(sequence_num=seq).pdu())
                elif command == SmppCommand.UNBIND:
                    self._reply(UnbindResp(sequence_num=seq).pdu())
                    return
                else:
                    nack = GenericNack(seq, SmppCommandStatus.ESME_RINVCMDID)
                    self._reply(nack.pdu())
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return
        finally:
            self._end()

    async def _deliver(self, seq: int, pdu: bytes) -> None:
        ok = True
        if self.on_deliver is not None:
            try:
                ok = await self.on_deliver(pdu)
            except Exception:
                log.exception("a delivery receipt could not be stored; the SMSC will retry")
                ok = False
        status = SmppCommandStatus.ESME_ROK if ok else SmppCommandStatus.ESME_RX_T_APPN
        self._reply(DeliverSmResp(sequence_num=seq, command_status=status).pdu())

    def _end(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(Lost(written=True))
        self.writer.close()

    async def close(self) -> None:
        """Unbind politely (briefly), then close."""
        if not self.closed.is_set():
            with contextlib.suppress(Lost, TimeoutError, OSError):
                await self.request(Unbind().pdu(), 1.0)
        self._end()
        for task in [self.reading, *self.tasks]:
            if task is not None:
                task.cancel()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class SmppTransport:
    """The account's session, bound on first use and again after it is lost."""

    def __init__(
        self,
        settings: SmppSettings,
        password: str,
        *,
        timeout: float,
        connect_timeout: float,
        on_deliver: DeliverSink | None = None,
    ) -> None:
        self.settings = settings
        self._password = password
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.on_deliver = on_deliver
        self._window = asyncio.Semaphore(settings.window)
        self._session: Session | None = None
        self._connecting = asyncio.Lock()
        self._keepalive: asyncio.Task[None] | None = None
        self.backoff_s = 0.0  # the pause before the next connect, after failures
        self._next_try = 0.0
        self.binds = 0  # sessions bound, for tests and metrics

    async def send(self, request: SmppRequest) -> tuple[int, bytes]:
        """The first non-zero command_status of the request's parts (or 0) and the message
        ids the SMSC gave, comma-separated; TransportError when no answer says."""
        try:
            session = await self._bound()
        except BindRefused as exc:
            return exc.status, b""
        ids: list[bytes] = []
        for pdu in request.pdus:
            for attempt in range(PART_TRIES):
                status, body = await self._exchange(session, pdu, written_before=bool(ids))
                if status == 0:
                    ids.append(body.rstrip(b"\0"))
                    break
                if not ids or status not in THROTTLED or attempt + 1 == PART_TRIES:
                    return status, b",".join(ids)
                await asyncio.sleep(BACKOFF_S * 2**attempt)
        return 0, b",".join(ids)

    async def _exchange(
        self, session: Session, pdu: bytes, written_before: bool
    ) -> tuple[int, bytes]:
        async with self._window:
            try:
                return await session.request(pdu, self.timeout)
            except Lost as exc:
                raise TransportError(
                    "CONNECTION",
                    "the SMPP session was lost",
                    maybe_sent=exc.written or written_before,
                ) from None
            except TimeoutError:
                raise TransportError("TIMEOUT", "no submit_sm_resp within the timeout") from None

    async def _bound(self) -> Session:
        session = self._session
        if session is not None and not session.closed.is_set():
            return session
        async with self._connecting:
            session = self._session
            if session is not None and not session.closed.is_set():
                return session
            wait = self._next_try - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                session = await self._connect()
            except (BindRefused, TransportError):
                self.backoff_s = min(BACKOFF_MAX_S, max(BACKOFF_S, self.backoff_s * 2))
                self._next_try = time.monotonic() + self.backoff_s
                raise
            self.backoff_s = 0.0
            self._session = session
            self.binds += 1
            if self._keepalive is None or self._keepalive.done():
                self._keepalive = asyncio.create_task(self._keep_alive())
            return session

    async def _connect(self) -> Session:
        s = self.settings
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(s.host, s.port)
        except (OSError, TimeoutError) as exc:
            raise TransportError(
                "CONNECTION", f"SMPP connect to {s.host}:{s.port}: {exc}", maybe_sent=False
            ) from None
        session = Session(reader, writer, self.on_deliver)
        session.start()
        kind = BindTransmitter if s.bind == "transmitter" else BindTransceiver
        bind = kind(system_id=s.system_id, password=self._password)
        try:
            status, _body = await session.request(bind.pdu(), self.connect_timeout)
        except (Lost, TimeoutError):
            await session.close()
            raise TransportError(
                "CONNECTION", f"SMPP bind to {s.host}:{s.port}: no answer", maybe_sent=False
            ) from None
        if status != 0:
            await session.close()
            log.warning("SMPP bind to %s:%d as %s refused: 0x%08X", s.host, s.port,
                        s.system_id, status)  # fmt: skip
            raise BindRefused(status)
        log.info("SMPP bound to %s:%d as %s (%s)", s.host, s.port, s.system_id, s.bind)
        return session

    async def _keep_alive(self) -> None:
        """enquire_link on an idle session; one unanswered ends it."""
        every = self.settings.enquire_link_seconds
        while True:
            await asyncio.sleep(every / 2)
            session = self._session
            if session is None or session.closed.is_set():
                continue
            if time.monotonic() - session.last_heard < every:
                continue
            try:
                await session.request(EnquireLink().pdu(), self.timeout)
            except (Lost, TimeoutError):
                log.warning("SMPP enquire_link unanswered: the session is closed")
                session._end()

    @staticmethod
    def outcome(status: int) -> str:
        """A command_status's name, for metrics: ``esme_rok``, ``esme_rthrottled``…"""
        try:
            return str(SmppCommandStatus(status).name).lower()
        except ValueError:
            return f"0x{status:08x}"

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
