"""The CloudSMS mock against seed 002: packets, RESULT_CODEs, SERIAL echo, two-way TLS."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from dispatcher.mock import MockSettings, start
from tests.mock.conftest import MockClient

URL = "/cloudsms/dave/io"


def packet(numbers: list[tuple[int, str]], **extra: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "METHOD": "SMS_SEND_REQUEST",
        "TYPE": "REQUEST",
        "SERIAL": 77,
        "TIME": "2021-01-01 08:00:00",
        "AUTH_KEY": "mock-cloudsms-auth-key",
        "ROUTE_ID": "VerifyCode_516",
        "MULTI_MSISDN_LIST": [{"COUNTRY_CODE": c, "DEST_MSISDN": n} for c, n in numbers],
        "SMS_CONTENT": "Your verification code is 123345",
        "VERSION": "2021-01-01",
    }
    p.update(extra)
    return p


async def test_answer_packet_echoes_serial_with_uids(mock_client: MockClient) -> None:
    status, answer = await mock_client.call(
        "POST", URL, packet([(852, "67000011"), (86, "1380013800"), (86, "13800138000")])
    )
    assert status == 200
    assert (answer["METHOD"], answer["TYPE"], answer["SERIAL"], answer["RESULT_CODE"]) == (
        "SMS_SEND_REQUEST",
        "ANSWER",
        77,
        1,
    )
    codes = [
        (d["DEST_MSISDN"], d["RESULT_CODE"], bool(d.get("SMS_UID"))) for d in answer["DETAIL_LIST"]
    ]
    assert codes == [
        ("67000011", 1, True),
        ("1380013800", 0x10000001, False),
        ("13800138000", 1, True),
    ]
    stats = await mock_client.stats("cloudsms")
    assert (stats["accepted"], stats["largest_batch"]) == (2, 3)


async def test_signature_forms_reach_the_handset(mock_client: MockClient) -> None:
    await mock_client.call(
        "POST", URL, packet([(852, "67000011")], SIGNATURE="CloudSMS", SIGNATURE_TYPE=3)
    )
    [message] = await mock_client.messages("cloudsms")
    assert message["text"] == "[CloudSMS] Your verification code is 123345"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"AUTH_KEY": "wrong"}, 0x05),
        ({"VERSION": "2020-01-01"}, 0x10000010),
        ({"SERIAL": 0}, 0x10000001),
        ({"SERIAL": 65536}, 0x10000001),
        ({"TIME": "now"}, 0x10000001),
        ({"ROUTE_ID": ""}, 0x10000001),
        ({"SMS_CONTENT": ""}, 0x10000003),
        ({"SMS_CONTENT": "a" * 1531}, 0x10000003),
        ({"SMS_CONTENT": "你" * 766}, 0x10000003),
        ({"MULTI_MSISDN_LIST": [{"COUNTRY_CODE": 852, "DEST_MSISDN": "6700"}] * 201}, 0x10000001),
        ({"SIGNATURE": "S", "SIGNATURE_TYPE": 9}, 0x10000001),
    ],
)
async def test_packet_refusals(mock_client: MockClient, change: dict[str, Any], code: int) -> None:
    _, answer = await mock_client.call("POST", URL, packet([(852, "67000011")], **change))
    assert answer["RESULT_CODE"] == code
    assert answer["DETAIL_LIST"] == []
    assert (await mock_client.stats("cloudsms"))["accepted"] == 0


async def test_empty_and_broken_bodies(mock_client: MockClient) -> None:
    assert (await mock_client.call("POST", URL, raw=b""))[1]["RESULT_CODE"] == 0x04
    assert (await mock_client.call("POST", URL, raw=b"{x"))[1]["RESULT_CODE"] == 0x10000003


async def test_busy_on_demand(mock_client: MockClient) -> None:
    await mock_client.call("POST", "/_mock/settings", {"cloudsms_busy": 1})
    first = (await mock_client.call("POST", URL, packet([(852, "67000011")])))[1]
    second = (await mock_client.call("POST", URL, packet([(852, "67000011")])))[1]
    assert (first["RESULT_CODE"], first["RESULT_DESC"], second["RESULT_CODE"]) == (3, "Busy", 1)
    _, packets = await mock_client.call("GET", "/_mock/cloudsms/packets")
    assert [code for _, code in packets] == [3, 1]


async def test_two_way_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    client_cert = ca.issue_cert("dispatcher-client")
    paths = {}
    for name, blob in [
        ("server.pem", server_cert.private_key_and_cert_chain_pem),
        ("ca.pem", ca.cert_pem),
    ]:
        paths[name] = tmp_path / name
        blob.write_to_path(str(paths[name]))
    settings = MockSettings(
        port=0,
        tls_cert=str(paths["server.pem"]),
        tls_key=str(paths["server.pem"]),
        tls_client_ca=str(paths["ca.pem"]),
    )
    runner, port = await start(settings)
    try:
        with_cert = ssl.create_default_context(cafile=str(paths["ca.pem"]))
        client_cert.configure_cert(with_cert)
        without = ssl.create_default_context(cafile=str(paths["ca.pem"]))
        url = f"https://127.0.0.1:{port}/_mock/stats"
        async with aiohttp.ClientSession() as s:
            async with s.get(url, ssl=with_cert) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with s.get(url, ssl=without) as resp:
                    await resp.read()
    finally:
        await runner.cleanup()
