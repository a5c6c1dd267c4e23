"""Smsclouds SMPP 3.4 MT wire format (seed 004, "SMPP Connections").

The seed sends "messages one by one" over SMPP 3.4 with the account's User_ID, Password and
Sender_ID, answered with a message id and status 0, in "gsm-iso8859 or similar" coding.
So each recipient is one ``submit_sm`` (one per part for a long text):

* the text in the GSM 03.38 default alphabet (``data_coding`` 0) when every character has
  a GSM code, else UCS-2 (``data_coding`` 8);
* a text longer than one SMS as concatenated parts (153 septets or 67 UCS-2 units each,
  ``segments.split``), each starting with a user data header: the concatenation element
  (IE 0x00 or 0x08 for a 16-bit reference), the part count and its place (``esm_class``
  0x40);
* a delivery receipt asked for (``registered_delivery`` 1); the receipt (a ``deliver_sm``
  naming our message id) moves the recipient forward like any other report.

The PDUs themselves come from ``aiosmpplib`` (its ``SubmitSm``/``DeliverSm`` classes and its
GSM 03.38 and UCS-2 codecs): this module only decides what goes in them. (Its own splitter
counts characters, not septets, so a text with extension characters such as € would give
parts longer than an SMS; the parts are cut here instead.) It stays
pure: the session (binding, sequence numbers, the window) is ``dispatcher/smpp.py``, which
answers each request with the SMSC's ``command_status`` and the message ids it gave.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from aiosmpplib.codec import GSM7BitCodec, UCS2Codec
from aiosmpplib.protocol import DeliverSm, SmppMessage, SubmitSm
from aiosmpplib.state import NPI, TON, PhoneNumber, SmppCommand

from dispatcher.model import CampaignError, Status
from dispatcher.providers.base import (
    BuildContext,
    Built,
    ChunkRecipient,
    Outcome,
    Report,
    SendJob,
    SmppRequest,
    Verdict,
)
from dispatcher.render import render
from dispatcher.segments import MAX_SEGMENTS, Encoding, encoding_of, segments_for, split, units

GSM, UCS2 = 0x00, 0x08  # data_coding
UDHI = 0x40  # esm_class: the short message starts with a user data header
RECEIPTED_MESSAGE_ID = 0x001E  # TLV tag
MESSAGE_STATE = 0x0427  # TLV tag
#: Most recipients in one chunk: each is a request of its own, so a chunk of the seed's
#: 30,000-recipient HTTP campaigns would keep one worker busy for minutes.
MAX_CHUNK = 500

#: SMPP command_status → what it means for the recipient (SMPP 3.4 §5.1.3).
ACCOUNT_STATUSES = {
    0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID",
    0x0A: "ESME_RINVSRCADR",  # the Sender_ID is not allowed: every message would fail
}
PERMANENT_STATUSES = {
    0x01: "ESME_RINVMSGLEN",
    0x0B: "ESME_RINVDSTADR",
    0x0C: "ESME_RINVMSGID",
    0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON",
    0x50: "ESME_RINVDSTTON",
    0x51: "ESME_RINVDSTNPI",
    0x62: "ESME_RINVEXPIRY",
    0x66: "ESME_RX_P_APPN",
    0x67: "ESME_RX_R_APPN",
}
#: "Too fast": not taken; the account slows down and sends it again.
SLOW_STATUSES = {0x58: "ESME_RTHROTTLED", 0x14: "ESME_RMSGQFUL"}

#: Receipt ``stat`` (SMPP 3.4 Appendix B) and ``message_state`` TLV values → our statuses.
RECEIPT_STATS = {
    "DELIVRD": Status.DELIVERED,
    "UNDELIV": Status.UNDELIVERED,
    "EXPIRED": Status.EXPIRED,
    "REJECTD": Status.REJECTED,
    "DELETED": Status.FAILED,
    "ACCEPTD": Status.SENT,
    "ENROUTE": Status.SENT,
    "UNKNOWN": Status.SENT,
}
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}


def _encoding(text: str) -> tuple[str, Encoding]:
    """aiosmpplib's name of the coding (it sets ``data_coding`` 0 or 8 from it) and ours."""
    if GSM7BitCodec.is_gsm_text(text):
        return "gsm0338", Encoding.GSM7
    return "ucs2", Encoding.UCS2


def _udh(reference: int, total: int, seq: int) -> bytes:
    """The user data header of one part (3GPP TS 23.040 §9.2.3.24.1 and .8)."""
    if reference > 0xFF:
        return bytes([6, 0x08, 4, reference >> 8, reference & 0xFF, total, seq])
    return bytes([5, 0x00, 3, reference, total, seq])


def _address(value: str) -> PhoneNumber:
    """A Sender_ID of digits is an international number; letters make it alphanumeric."""
    if value.isdigit():
        return PhoneNumber(value, TON.INTERNATIONAL, NPI.ISDN)
    return PhoneNumber(value, TON.ALPHANUMERIC, NPI.UNKNOWN)


def submit_pdus(source: str, number: str, text: str, reference: int) -> tuple[bytes, ...]:
    """The ``submit_sm`` PDUs that carry ``text`` to ``number`` (E.164)."""
    name, encoding = _encoding(text)
    codec = (GSM7BitCodec if encoding is Encoding.GSM7 else UCS2Codec).get_codec_info()
    parts = split(text, encoding)
    long = len(parts) > 1
    pdus = []
    for seq, part in enumerate(parts, 1):
        payload = codec.encode(part)[0]
        if long:
            payload = _udh(reference, len(parts), seq) + payload
        message = SubmitSm(
            short_message=text,
            source=_address(source),
            destination=PhoneNumber(number.lstrip("+"), TON.INTERNATIONAL, NPI.ISDN),
            esm_class=UDHI if long else 0,
            registered_delivery=1,
            encoding=name,
            auto_message_payload=False,
        )
        message.set_encoded_message(payload)
        pdus.append(message.pdu())
    return tuple(pdus)


class SmscloudsSmppCodec:
    """Smsclouds SMS over SMPP: an account with ``transport = "smpp"``."""

    name = "smsclouds"
    kind = "sms"
    transport = "smpp"
    options: Mapping[str, type] = {"sender_id": str}
    number_spacing_seconds = 0.0
    dedupe = True
    address = "phone"
    max_chunk: int | None = MAX_CHUNK
    per_request: int | None = 1
    queries: Mapping[str, str] = {}
    reports_by_id = True  # a receipt names only the message id

    def headers(self, api_key: str) -> dict[str, str]:
        return {}  # SMPP authenticates at bind (system_id and password)

    def segments(self, text: str, signature: str | None, options: Mapping[str, Any]) -> int:
        """GSM 03.38 texts by septets (160, or 153 a part), any other by UCS-2 units."""
        encoding = Encoding.GSM7 if encoding_of(text) is Encoding.GSM7 else Encoding.UCS2
        return segments_for(units(text, encoding), encoding)

    def check(self, text: str, signature: str | None, options: Mapping[str, Any]) -> None:
        if signature:
            raise CampaignError("signature", "SMPP has no signature field")
        if not str(options.get("sender_id") or "").strip():
            raise CampaignError("options.sender_id", "the Sender_ID is required for SMPP")
        if len(str(options["sender_id"])) > 20:
            raise CampaignError("options.sender_id", "at most 20 characters")
        parts = self.segments(render(text, None), signature, options)
        if parts > MAX_SEGMENTS:
            raise CampaignError("text", f"{parts} parts; at most {MAX_SEGMENTS} are sent")

    def build(
        self, job: SendJob, recipients: Sequence[ChunkRecipient], ctx: BuildContext
    ) -> Built[SmppRequest]:
        built: Built[SmppRequest] = Built()
        source = str(job.options["sender_id"])
        for pos, rcpt in enumerate(recipients):
            text = render(job.text, rcpt.fields)
            # The packet serial (1…65535) is a fine concatenation reference: it only has
            # to differ between the long messages a handset receives at once.
            pdus = submit_pdus(source, rcpt.number, text, ctx.serial())
            built.requests.append(SmppRequest(pdus, (pos,)))
        return built

    def parse(self, request: SmppRequest, status: int, body: bytes) -> list[Outcome]:
        """``status``: the first non-zero ``command_status`` of the request's parts, or 0;
        ``body``: the message ids the SMSC gave, comma-separated."""
        ids = [i for i in body.decode().split(",") if i]
        parts = len(request.pdus)
        if status == 0 and len(ids) == parts:
            return [Outcome(Verdict.OK, Status.ACCEPTED, message_id=ids[0], segments=parts)]
        if ids:  # some parts went, one did not: sending again would repeat them
            code = f"0x{status:02X}"
            error = f"part {len(ids) + 1} of {parts} refused ({code}); the first were sent"
            return [Outcome(Verdict.PERMANENT, Status.FAILED, ids[0], "PARTIAL", error, parts)]
        code = f"0x{status:08X}"
        if status in ACCOUNT_STATUSES:
            name = ACCOUNT_STATUSES[status]
            return [Outcome(Verdict.ACCOUNT, Status.FAILED, error_code=name, error=code)]
        if status in SLOW_STATUSES:
            name = SLOW_STATUSES[status]
            return [Outcome(Verdict.RETRY, Status.FAILED, error_code=name, error=code, slow=True)]
        if status in PERMANENT_STATUSES:
            name = PERMANENT_STATUSES[status]
            return [Outcome(Verdict.PERMANENT, Status.REJECTED, error_code=name, error=code)]
        return [Outcome(Verdict.RETRY, Status.FAILED, error_code=code, error="SMSC error")]

    def parse_deliver(self, pdu: bytes) -> Report | None:
        """A delivery receipt (``deliver_sm`` with esm_class 0x04) as a report naming the
        message id; None for anything else (the seed routes no MO over SMPP)."""
        try:
            header = SmppMessage.parse_header(pdu)
            if header.smpp_command != SmppCommand.DELIVER_SM:
                return None
            message = DeliverSm.from_pdu(pdu, header)
            if not isinstance(message, DeliverSm) or not message.is_receipt():
                return None
            receipt = message.parse_receipt()
        except (ValueError, IndexError, struct.error):
            return None  # not a PDU the library reads: nothing we could store, ever
        tlvs = {p.tag: p.value for p in message.optional_params or []}
        message_id = str(tlvs.get(RECEIPTED_MESSAGE_ID) or receipt.get("id") or "").strip()
        state = tlvs.get(MESSAGE_STATE)
        raw = MESSAGE_STATES.get(state, "") if isinstance(state, int) else ""
        raw = str(receipt.get("stat") or raw).upper()
        if not message_id or not raw:
            return None  # a receipt that names no message or no state says nothing
        err = receipt.get("err")
        failed = raw not in ("DELIVRD", "ACCEPTD", "ENROUTE")
        return Report(
            status=RECEIPT_STATS.get(raw, Status.SENT),
            raw_status=raw,
            message_id=message_id,
            error_code=f"{err:03}" if isinstance(err, int) and failed else None,
        )
