"""The few SMPP 3.4 PDUs the mock SMSC speaks, coded by hand with ``struct``, and the GSM 03.38
default alphabet.

Written from the SMPP 3.4 specification (and 3GPP TS 23.038 / 23.040 for the alphabet and the
user data header), not with an SMPP library nor the dispatcher's own client, so that the two
implementations check each other.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence_number
MAX_PDU = 64 * 1024  # far above any submit_sm; longer is a broken stream, not a message

RESP = 0x80000000  # the bit that makes a command id its response's
GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
BINDS = (BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER)

ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RINVDSTADR = 0x0B
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RINVSCHED = 0x61
ESME_RINVEXPIRY = 0x62
ESME_RINVOPTPARSTREAM = 0xC0
ESME_RINVPARLEN = 0xC2
ESME_RMISSINGOPTPARAM = 0xC3
ESME_RINVOPTPARAMVAL = 0xC4

RECEIPTED_MESSAGE_ID = 0x001E
SAR_MSG_REF_NUM = 0x020C
SAR_TOTAL_SEGMENTS = 0x020E
SAR_SEGMENT_SEQNUM = 0x020F
SC_INTERFACE_VERSION = 0x0210
MESSAGE_PAYLOAD = 0x0424
MESSAGE_STATE = 0x0427

UDHI = 0x40  # esm_class: short_message starts with a user data header

# 3GPP TS 23.038 §6.2.1: the default alphabet, septet value = index (0x1B is the escape).
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
assert len(GSM_BASIC) == 128
# §6.2.1.1: the extension table, reached by 0x1B then one of these septets.
GSM_EXTENSION = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}  # fmt: skip
_GSM_ENCODE = {ch: bytes([i]) for i, ch in enumerate(GSM_BASIC) if i != 0x1B}
_GSM_ENCODE.update({ch: bytes([0x1B, i]) for i, ch in GSM_EXTENSION.items()})


class PduError(Exception):
    """A PDU the SMSC refuses, with the command_status that says why."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return HEADER.pack(HEADER.size + len(body), command_id, status, sequence) + body


def cstring(value: str) -> bytes:
    return value.encode("ascii") + b"\0"


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


class Cursor:
    """Reads a PDU body front to back; running out of bytes is the PDU's fault."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def cstring(self, limit: int, name: str) -> str:
        """A C-Octet String of at most ``limit`` octets, the NUL included (§3.1)."""
        end = self.body.find(b"\0", self.pos, self.pos + limit)
        if end < 0:
            raise PduError(ESME_RINVCMDLEN, f"{name}: no NUL within {limit} octets")
        raw = self.body[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise PduError(ESME_RINVCMDLEN, f"{name}: not ASCII") from None

    def octets(self, size: int, name: str) -> bytes:
        if self.pos + size > len(self.body):
            raise PduError(ESME_RINVCMDLEN, f"{name}: body ends early")
        raw = self.body[self.pos : self.pos + size]
        self.pos += size
        return raw

    def byte(self, name: str) -> int:
        return self.octets(1, name)[0]

    def tlvs(self) -> dict[int, bytes]:
        """The optional parameters after the mandatory ones (§3.2.4, §5.3)."""
        found: dict[int, bytes] = {}
        while self.pos < len(self.body):
            if self.pos + 4 > len(self.body):
                raise PduError(ESME_RINVOPTPARSTREAM, "truncated TLV header")
            tag, size = struct.unpack_from(">HH", self.body, self.pos)
            self.pos += 4
            if self.pos + size > len(self.body):
                raise PduError(ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04X} runs past the PDU")
            found[tag] = self.body[self.pos : self.pos + size]
            self.pos += size
        return found


@dataclass(frozen=True)
class Bind:
    system_id: str
    password: str
    system_type: str
    interface_version: int
    addr_ton: int
    addr_npi: int
    address_range: str


def parse_bind(body: bytes) -> Bind:
    """§4.1.1. The password limit is looser than the specification's 9 octets: the mock's
    default account password is longer, and refusing it would test nothing."""
    c = Cursor(body)
    return Bind(
        system_id=c.cstring(16, "system_id"),
        password=c.cstring(65, "password"),
        system_type=c.cstring(13, "system_type"),
        interface_version=c.byte("interface_version"),
        addr_ton=c.byte("addr_ton"),
        addr_npi=c.byte("addr_npi"),
        address_range=c.cstring(41, "address_range"),
    )


@dataclass(frozen=True)
class SubmitSm:
    service_type: str
    source_addr_ton: int
    source_addr_npi: int
    source_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    esm_class: int
    protocol_id: int
    priority_flag: int
    schedule_delivery_time: str
    validity_period: str
    registered_delivery: int
    replace_if_present_flag: int
    data_coding: int
    sm_default_msg_id: int
    short_message: bytes
    tlvs: dict[int, bytes] = field(default_factory=dict)


def parse_submit(body: bytes) -> SubmitSm:
    """§4.4.1, every mandatory field in order, then the TLVs."""
    c = Cursor(body)
    service_type = c.cstring(6, "service_type")
    source = (c.byte("source_addr_ton"), c.byte("source_addr_npi"), c.cstring(21, "source_addr"))
    dest = (c.byte("dest_addr_ton"), c.byte("dest_addr_npi"), c.cstring(21, "destination_addr"))
    esm_class, protocol_id, priority_flag = c.byte("esm_class"), c.byte("pid"), c.byte("priority")
    schedule = c.cstring(17, "schedule_delivery_time")
    validity = c.cstring(17, "validity_period")
    if schedule and len(schedule) != 16:
        raise PduError(ESME_RINVSCHED, "schedule_delivery_time is not 16 characters")
    if validity and len(validity) != 16:
        raise PduError(ESME_RINVEXPIRY, "validity_period is not 16 characters")
    registered, replace = c.byte("registered_delivery"), c.byte("replace_if_present_flag")
    data_coding, default_msg_id = c.byte("data_coding"), c.byte("sm_default_msg_id")
    sm_length = c.byte("sm_length")
    if c.pos + sm_length > len(body):
        raise PduError(ESME_RINVMSGLEN, "sm_length runs past the PDU")
    short_message = c.octets(sm_length, "short_message")
    return SubmitSm(
        service_type, *source, *dest, esm_class, protocol_id, priority_flag, schedule, validity,
        registered, replace, data_coding, default_msg_id, short_message, c.tlvs(),
    )  # fmt: skip


@dataclass(frozen=True)
class Part:
    """One submit_sm's share of a message: ``ref`` None for a message in one part."""

    text: str
    ref: int | None = None
    total: int = 1
    seq: int = 1


def message_part(sm: SubmitSm) -> Part:
    """The text of a submit_sm and where it belongs: UDH concatenation (IE 0x00 or 0x08,
    TS 23.040 §9.2.3.24.1/.8) or the SAR TLVs (§5.3.2.22-24)."""
    data = sm.short_message
    payload = sm.tlvs.get(MESSAGE_PAYLOAD)
    if payload is not None:
        if data:
            raise PduError(ESME_RINVOPTPARAMVAL, "short_message and message_payload both set")
        data = payload
    ref: int | None = None
    total = seq = 1
    if sm.esm_class & UDHI:
        concat, data = split_udh(data)
        if concat is not None:
            ref, total, seq = concat
    sar = [sm.tlvs.get(t) for t in (SAR_MSG_REF_NUM, SAR_TOTAL_SEGMENTS, SAR_SEGMENT_SEQNUM)]
    if ref is None and any(v is not None for v in sar):
        ref_raw, total_raw, seq_raw = sar
        if ref_raw is None or total_raw is None or seq_raw is None:
            raise PduError(ESME_RMISSINGOPTPARAM, "SAR needs all three sar_* TLVs")
        if len(ref_raw) != 2 or len(total_raw) != 1 or len(seq_raw) != 1:
            raise PduError(ESME_RINVPARLEN, "sar_* TLV of the wrong length")
        ref, total, seq = int.from_bytes(ref_raw, "big"), total_raw[0], seq_raw[0]
    if not 1 <= seq <= total:
        raise PduError(ESME_RINVOPTPARAMVAL, f"segment {seq} of {total}")
    return Part(decode_text(data, sm.data_coding), ref, total, seq)


def split_udh(data: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """The concatenation (ref, total, seq) in a user data header, if any, and the text
    after the header."""
    if not data or data[0] + 1 > len(data):
        raise PduError(ESME_RSUBMITFAIL, "UDHI set but no whole user data header")
    end = data[0] + 1
    pos, concat = 1, None
    while pos + 2 <= end:
        iei, size = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + size]
        if pos + 2 + size > end:
            raise PduError(ESME_RSUBMITFAIL, "information element runs past the UDH")
        if iei == 0x00 and size == 3:
            concat = (value[0], value[1], value[2])
        elif iei == 0x08 and size == 4:
            concat = (int.from_bytes(value[:2], "big"), value[2], value[3])
        pos += 2 + size
    return concat, data[end:]


def decode_text(data: bytes, data_coding: int) -> str:
    """§5.2.19: 0 the GSM default alphabet (one septet an octet), 1 IA5 (ASCII),
    3 Latin-1, 8 UCS-2 (UTF-16 surrogate pairs taken). Anything else is refused."""
    try:
        if data_coding == 0:
            return decode_gsm(data)
        if data_coding == 1:
            return data.decode("ascii")
        if data_coding == 3:
            return data.decode("latin-1")
        if data_coding == 8:
            return data.decode("utf-16-be")
    except UnicodeDecodeError as e:
        raise PduError(ESME_RSUBMITFAIL, f"data_coding {data_coding}: {e.reason}") from None
    raise PduError(ESME_RSUBMITFAIL, f"data_coding {data_coding} not supported")


def decode_gsm(data: bytes) -> str:
    out: list[str] = []
    escaped = False
    for octet in data:
        if octet > 0x7F:
            raise PduError(ESME_RSUBMITFAIL, f"octet 0x{octet:02X} is not a GSM septet")
        if escaped:
            # TS 23.038: an unknown extension shows as the default character (space for 1B 1B).
            out.append(GSM_EXTENSION.get(octet, " " if octet == 0x1B else GSM_BASIC[octet]))
            escaped = False
        elif octet == 0x1B:
            escaped = True
        else:
            out.append(GSM_BASIC[octet])
    if escaped:
        raise PduError(ESME_RSUBMITFAIL, "text ends in the middle of an escape")
    return "".join(out)


def encode_gsm(text: str) -> bytes:
    """Unpacked GSM 03.38; a character the alphabet lacks becomes ``?``."""
    return b"".join(_GSM_ENCODE.get(ch, b"?") for ch in text)


def valid_mobile(address: str) -> str:
    """7 to 15 digits, an optional leading +; the number as +digits."""
    digits = address.removeprefix("+")
    if not (digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15):
        raise PduError(ESME_RINVDSTADR, f"destination {address!r}")
    return "+" + digits


Address = tuple[int, int, str]  # ton, npi, address


def deliver_sm(
    sequence: int, *, source: Address, dest: Address, esm_class: int, short_message: bytes,
    tlvs: bytes = b"",
) -> bytes:  # fmt: skip
    """§4.6.1 with data_coding 0 and no scheduling, as for a delivery receipt."""
    body = (
        b"\0"  # service_type
        + bytes(source[:2]) + cstring(source[2])
        + bytes(dest[:2]) + cstring(dest[2])
        + bytes([esm_class, 0, 0])  # esm_class, protocol_id, priority_flag
        + b"\0\0"  # schedule_delivery_time, validity_period
        + bytes([0, 0, 0, 0, len(short_message)])  # registered, replace, dc, default id, length
        + short_message
        + tlvs
    )  # fmt: skip
    return pdu(DELIVER_SM, ESME_ROK, sequence, body)


def receipt(
    message_id: str, *, stat: str, state: int, err: str, submitted: float, done: float, text: str
) -> tuple[bytes, bytes]:
    """A delivery receipt's short_message (appendix B) and its TLVs receipted_message_id
    and message_state (§5.3.2.12, .35)."""
    stamp = "%y%m%d%H%M"
    body = (
        f"id:{message_id} sub:001 dlvrd:{'001' if state == 2 else '000'} "
        f"submit date:{time.strftime(stamp, time.gmtime(submitted))} "
        f"done date:{time.strftime(stamp, time.gmtime(done))} "
        f"stat:{stat} err:{err} text:{text[:20]}"
    )
    tlvs = tlv(RECEIPTED_MESSAGE_ID, cstring(message_id)) + tlv(MESSAGE_STATE, bytes([state]))
    return encode_gsm(body), tlvs
