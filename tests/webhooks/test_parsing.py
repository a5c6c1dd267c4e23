"""The push parsers alone: what names a message must be what we could have sent (ASCII
digits, our uid and CUSTOMER_BODY, plausible times), or BadPush names the field."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from dispatcher.providers import cloudsms, smsclouds_responses, ycloud
from dispatcher.providers.base import BadPush
from dispatcher.providers.cloudaten import STATUSES
from dispatcher.providers.common import parse_push, parse_uid, plausible_ms, same_number
from tests.webhooks.support import cloudsms_packet, smsclouds_mo

NOW = 1_800_000_000_000


@pytest.mark.parametrize("tail", ["²", "١", "１", "01", "1\n", " 1", "+1", "1_0", "99999999999"])
def test_uids_with_anything_but_plain_ascii_digits_are_not_ours(tail: str) -> None:
    assert parse_uid(f"c0ffee.{tail}") is None
    assert parse_uid("c0ffee.0") == ("c0ffee", 0)
    assert parse_uid("c0ffee.1234567890") == ("c0ffee", 1234567890)
    assert parse_uid("c0{ff}ee.1") is None  # a campaign id is safe in a key name


@pytest.mark.parametrize(
    ("pushed", "same"),
    [("+447911000001", True), ("447911000001", True), ("00447911000001", True),
     ("7911000001", True), ("07911000001", True), ("+447911000002", False),
     ("+44791100000١", False), ("+44 7911 000001", False), ("", False), ("+1", False)],
)  # fmt: skip
def test_same_number(pushed: str, same: bool) -> None:
    assert same_number(pushed, "+447911000001") is same


@pytest.mark.parametrize("at", [-1, 0, 946_684_799_999, NOW + 24 * 3600 * 1000 + 1])
def test_implausible_times(at: int) -> None:
    with pytest.raises(BadPush):
        plausible_ms(at, "t", NOW)
    assert plausible_ms(NOW + 3600 * 1000, "t", NOW) == NOW + 3600 * 1000


def push(**fields: Any) -> bytes:
    body = {"sid": "3310228982", "status": "delivered", "status_timestamp": NOW,
            "mobile": "+447901614024", "uid": "c0ffee.7"}  # fmt: skip
    body.update(fields)
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"uid": "c0ffee.²"}, "uid"), ({"uid": "1234567"}, "uid"), ({"mobile": "+4479016140٢٤"},
     "mobile"), ({"status_timestamp": -1}, "status_timestamp"), ({"sid": "33 10"}, "sid"),
     ({"sid": ""}, "sid"), ({"status": "x" * 33}, "status"), ({"status_timestamp": True},
     "status_timestamp")],
)  # fmt: skip
def test_cloud_aten_and_ycloud_reports(fields: dict[str, Any], field: str) -> None:
    report = parse_push(push(), STATUSES, "status_timestamp", NOW)
    assert (report.campaign_id, report.index, report.number) == ("c0ffee", 7, "+447901614024")
    assert parse_push(push(uid=None), STATUSES, "status_timestamp", NOW).campaign_id is None
    with pytest.raises(BadPush) as info:
        parse_push(push(**fields), STATUSES, "status_timestamp", NOW)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [({"CUSTOMER_BODY": {"campaign": "c0ffee١", "chunk": 0}}, "CUSTOMER_BODY.campaign"),
     ({"CUSTOMER_BODY": {"campaign": "c0ffee", "chunk": True}}, "CUSTOMER_BODY.chunk"),
     ({"CUSTOMER_BODY": "c0ffee"}, "CUSTOMER_BODY"), ({"TIME": "1999-12-31 23:59:59"}, "TIME"),
     ({"REPORT_TIME": "2021-02-30 00:00:00"}, "REPORT_TIME"), ({"TIME": None}, "TIME"),
     ({"TIME": "2021-01-01 00:00:00\n"}, "TIME"), ({"REPORT_TIME": " 2021-01-01 00:00:00"},
      "REPORT_TIME"),
     ({"SMS_UID": "5A3B 3940"}, "SMS_UID"),
     ({"SMS_RESULT_LIST": [{"COUNTRY_CODE": 852, "DEST_MSISDN": "6123٠٠٠١", "SMS_STATE": 2}]},
      "SMS_RESULT_LIST[0].DEST_MSISDN"),
     ({"SMS_RESULT_LIST": [{"COUNTRY_CODE": True, "DEST_MSISDN": "61230001", "SMS_STATE": 2}]},
      "SMS_RESULT_LIST[0].COUNTRY_CODE")],
)  # fmt: skip
def test_cloudsms_reports(change: dict[str, Any], field: str) -> None:
    now = int(time.time() * 1000)
    serial, [report] = cloudsms.parse_report_packet(orjson.dumps(cloudsms_packet("c0ffee", 1)))
    assert (serial, report.campaign_id, report.chunk) == (4242, "c0ffee", 0)
    packet = {k: v for k, v in cloudsms_packet("c0ffee", 1, **change).items() if v is not None}
    with pytest.raises(BadPush) as info:
        cloudsms.parse_report_packet(orjson.dumps(packet), now)
    assert info.value.field == field
    assert cloudsms.serial_of(orjson.dumps(packet)) == 4242  # the refusal echoes it


@pytest.mark.parametrize(
    ("change", "field"),
    [({"cellphone": "44991577١٠"}, "cellphone"), ({"message_id": "4660830001\n"}, "message_id"),
     ({"date": "2020-05-25 13:23:11\n"}, "date"), ({"date": "1970-01-01 00:00:00"}, "date"),
     ({"date": "2020-13-01 00:00:00"}, "date")],
)  # fmt: skip
def test_smsclouds_mo(change: dict[str, str], field: str) -> None:
    assert smsclouds_responses.parse_mo(smsclouds_mo(1)).mobile == smsclouds_mo(1)["cellphone"]
    with pytest.raises(BadPush) as info:
        smsclouds_responses.parse_mo(smsclouds_mo(1, **change))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("change", "field"),
    [({"id": "a b"}, "id"), ({"id": "x" * 129}, "id"), ({"mobile": "+86１5355498966"}, "mobile"),
     ({"inbound_timestamp": -1}, "inbound_timestamp")],
)  # fmt: skip
def test_ycloud_inbound(change: dict[str, Any], field: str) -> None:
    body = {"id": "a1s1we1111", "mobile": "+8615355498966", "text": "Thank you",
            "inbound_timestamp": 1541580135423}  # fmt: skip
    assert ycloud.parse_inbound(orjson.dumps(body)).at == 1541580135423
    with pytest.raises(BadPush) as info:
        ycloud.parse_inbound(orjson.dumps({**body, **change}))
    assert info.value.field == field
