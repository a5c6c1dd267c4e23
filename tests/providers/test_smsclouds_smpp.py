"""The Smsclouds SMPP codec against seed 004 ("SMPP Connections") and SMPP 3.4 itself.

The PDUs are read back here with ``struct`` by the spec's field layout (§4.4.1), not with the
library that wrote them, so the two check each other.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest

from dispatcher.model import CampaignError, Status
from dispatcher.providers.base import BuildContext, ChunkRecipient, SendJob, SmppRequest, Verdict
from dispatcher.providers.smsclouds_smpp import SmscloudsSmppCodec

codec = SmscloudsSmppCodec()
CTX = BuildContext(api_key="secret", serial=lambda: 7)
OPTIONS = {"sender_id": "MASMSJ"}
GSM_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
EXTENSION = {"^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E,
             "|": 0x40, "€": 0x65}  # fmt: skip


@dataclass
class Submit:
    source_ton: int
    source: str
    dest_ton: int
    dest_npi: int
    dest: str
    esm_class: int
    registered_delivery: int
    data_coding: int
    short_message: bytes


def cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\0", at)
    return data[at:end].decode("ascii"), end + 1


def read_submit(pdu: bytes) -> Submit:
    length, command, status, seq = struct.unpack_from(">IIII", pdu)
    assert (length, command, status, seq) == (len(pdu), 0x04, 0, 0)
    _service, at = cstring(pdu, 16)
    source_ton, _npi = pdu[at], pdu[at + 1]
    source, at = cstring(pdu, at + 2)
    dest_ton, dest_npi = pdu[at], pdu[at + 1]
    dest, at = cstring(pdu, at + 2)
    esm_class = pdu[at]
    _schedule, at = cstring(pdu, at + 3)
    _validity, at = cstring(pdu, at)
    registered, data_coding, sm_length = pdu[at], pdu[at + 2], pdu[at + 4]
    message = pdu[at + 5 : at + 5 + sm_length]
    assert at + 5 + sm_length == len(pdu)  # no TLV: the text is all in short_message
    return Submit(source_ton, source, dest_ton, dest_npi, dest, esm_class, registered,
                  data_coding, message)  # fmt: skip


def gsm_decode(data: bytes) -> str:
    basic = GSM_BASIC + "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    back = {v: k for k, v in EXTENSION.items()}
    out, escape = [], False
    for byte in data:
        if escape:
            out.append(back[byte])
            escape = False
        elif byte == 0x1B:
            escape = True
        else:
            out.append(basic[byte])
    return "".join(out)


def decode(s: Submit) -> str:
    data = s.short_message
    if s.esm_class & 0x40:
        data = data[data[0] + 1 :]
    return gsm_decode(data) if s.data_coding == 0 else data.decode("utf-16-be")


def submits(text: str, number: str = "+525512345678") -> list[Submit]:
    job = SendJob("cid", 0, text, options=OPTIONS)
    [request] = codec.build(job, [ChunkRecipient(3, number)], CTX).requests
    assert request.positions == (0,)
    return [read_submit(p) for p in request.pdus]


def test_a_gsm_text_is_one_submit_sm_from_the_sender_id_asking_for_a_receipt() -> None:
    [s] = submits("Hola @ {x} €")
    assert (s.source_ton, s.source) == (5, "MASMSJ")  # alphanumeric Sender_ID
    assert (s.dest_ton, s.dest_npi, s.dest) == (1, 1, "525512345678")  # international
    assert (s.esm_class, s.registered_delivery, s.data_coding) == (0, 1, 0)
    assert s.short_message[:7] == b"Hola \x00 "  # @ is GSM 0x00
    assert s.short_message.endswith(b"\x1b\x65")  # € is escape + 0x65
    assert decode(s) == "Hola @ {x} €"


def test_a_numeric_sender_id_is_an_international_number() -> None:
    job = SendJob("cid", 0, "hi", options={"sender_id": "5215512345678"})
    [request] = codec.build(job, [ChunkRecipient(0, "+525512345678")], CTX).requests
    s = read_submit(request.pdus[0])
    assert (s.source_ton, s.source) == (1, "5215512345678")


def test_text_outside_gsm_goes_as_ucs2_with_surrogate_pairs() -> None:
    [s] = submits("Привет 😀")
    assert s.data_coding == 8
    assert s.short_message == "Привет 😀".encode("utf-16-be")


@pytest.mark.parametrize(
    ("text", "parts", "per_part"),
    [
        ("a" * 160, 1, 160),
        ("a" * 161, 2, 153),
        ("€" + "b" * 152 + "€" * 10, 2, 153),  # an escape pair is never cut in two
        ("Привет" * 12, 2, 67),  # 72 UCS-2 units
        ("😀" * 40, 2, 67),  # 80 units; a surrogate pair is never cut
    ],
)
def test_a_long_text_is_concatenated_parts_each_within_one_sms(
    text: str, parts: int, per_part: int
) -> None:
    got = submits(text)
    assert len(got) == parts
    whole = ""
    for seq, s in enumerate(got, 1):
        if parts == 1:
            assert s.esm_class == 0
        else:
            assert s.esm_class == 0x40
            udh = s.short_message[: s.short_message[0] + 1]
            assert udh == bytes([5, 0x00, 3, 7, parts, seq])  # reference = the serial
        body = s.short_message[s.short_message[0] + 1 :] if parts > 1 else s.short_message
        units = len(body) if s.data_coding == 0 else len(body) // 2
        assert units <= per_part
        whole += decode(s)
    assert whole == text


def test_segments_count_the_parts_sent() -> None:
    assert codec.segments("a" * 161, None, OPTIONS) == 2
    assert codec.segments("é" * 70, None, OPTIONS) == 1  # é is in the GSM alphabet
    assert codec.segments("á" * 71, None, OPTIONS) == 2  # á is not: UCS-2


def test_check_wants_a_sender_id_and_refuses_a_signature() -> None:
    with pytest.raises(CampaignError) as err:
        codec.check("hi", None, {})
    assert err.value.field == "options.sender_id"
    with pytest.raises(CampaignError) as err:
        codec.check("hi", "ACME", OPTIONS)
    assert err.value.field == "signature"
    with pytest.raises(CampaignError) as err:
        codec.check("a" * 1531, None, OPTIONS)
    assert err.value.field == "text"


def built(text: str = "hi") -> SmppRequest:
    job = SendJob("cid", 0, text, options=OPTIONS)
    return codec.build(job, [ChunkRecipient(0, "+525512345678")], CTX).requests[0]


def test_the_seed_answer_is_a_message_id_and_status_0() -> None:
    # Seed 004, "SMPP Request" example response: 97569696 / 0 / OK.
    [o] = codec.parse(built(), 0, b"97569696")
    assert (o.verdict, o.status, o.message_id, o.segments) == (
        Verdict.OK, Status.ACCEPTED, "97569696", 1,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "verdict", "slow", "code"),
    [
        (0x58, Verdict.RETRY, True, "ESME_RTHROTTLED"),
        (0x14, Verdict.RETRY, True, "ESME_RMSGQFUL"),
        (0x0E, Verdict.ACCOUNT, False, "ESME_RINVPASWD"),
        (0x0B, Verdict.PERMANENT, False, "ESME_RINVDSTADR"),
        (0x08, Verdict.RETRY, False, "0x00000008"),  # ESME_RSYSERR: try again
    ],
)
def test_command_status_gives_the_verdict(
    status: int, verdict: Verdict, slow: bool, code: str
) -> None:
    [o] = codec.parse(built(), status, b"")
    assert (o.verdict, o.slow, o.error_code) == (verdict, slow, code)


def test_a_long_text_refused_after_its_first_parts_is_not_sent_again() -> None:
    request = built("a" * 400)  # three parts
    [o] = codec.parse(request, 0x0B, b"m1,m2")
    assert (o.verdict, o.error_code, o.message_id) == (Verdict.PERMANENT, "PARTIAL", "m1")
    [ok] = codec.parse(request, 0, b"m1,m2,m3")
    assert (ok.verdict, ok.message_id, ok.segments) == (Verdict.OK, "m1", 3)


def deliver_sm(text: bytes, esm_class: int = 0x04, tlvs: bytes = b"") -> bytes:
    """A deliver_sm written by hand from SMPP 3.4 §4.6.1."""
    body = (
        b"\0" + bytes([1, 1]) + b"525512345678\0" + bytes([5, 0]) + b"MASMSJ\0"
        + bytes([esm_class, 0, 0]) + b"\0\0" + bytes([0, 0, 0, 0, len(text)]) + text + tlvs
    )  # fmt: skip
    return struct.pack(">IIII", 16 + len(body), 0x05, 0, 9) + body


RECEIPT = (
    b"id:97569696 sub:001 dlvrd:001 submit date:2611291200 done date:2611291201 "
    b"stat:DELIVRD err:000 text:Hola"
)


def test_a_receipt_reports_its_message_delivered() -> None:
    report = codec.parse_deliver(deliver_sm(RECEIPT))
    assert report is not None
    assert (report.message_id, report.status, report.raw_status) == (
        "97569696", Status.DELIVERED, "DELIVRD",
    )  # fmt: skip


def test_the_receipt_tlvs_win_over_the_text() -> None:
    tlvs = struct.pack(">HH", 0x001E, 4) + b"abc\0" + struct.pack(">HHB", 0x0427, 1, 5)
    text = RECEIPT.replace(b"stat:DELIVRD err:000", b"stat:UNDELIV err:012")
    report = codec.parse_deliver(deliver_sm(text, tlvs=tlvs))
    assert report is not None
    assert (report.message_id, report.status, report.error_code) == (
        "abc", Status.UNDELIVERED, "012",
    )  # fmt: skip


def test_a_deliver_sm_that_is_no_receipt_carries_no_report() -> None:
    assert codec.parse_deliver(deliver_sm(b"hola, soy yo", esm_class=0)) is None


@pytest.mark.parametrize("cut", [20, 30, 60])
def test_a_deliver_sm_the_library_cannot_read_carries_no_report(cut: int) -> None:
    pdu = deliver_sm(RECEIPT)
    broken = struct.pack(">I", cut) + pdu[4:cut]  # a length that matches, fields cut short
    assert codec.parse_deliver(broken) is None
