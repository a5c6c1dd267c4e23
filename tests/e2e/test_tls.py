"""Two-way TLS to the CloudSMS mock, with real processes and certificates made here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import trustme
from redis.asyncio import Redis

from dispatcher.client import Client
from dispatcher.config import load_settings
from tests.e2e.conftest import System


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, str]:
    ca = trustme.CA()
    files = {
        "ca": ca.cert_pem,
        "server": ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem,
        "client": ca.issue_cert("dispatcher").private_key_and_cert_chain_pem,
    }
    paths = {}
    for name, blob in files.items():
        path = tmp_path / f"{name}.pem"
        blob.write_to_path(str(path))
        paths[name] = str(path)
    return paths


@pytest.fixture
def mock_args(certs: dict[str, str]) -> list[str]:
    return [
        "--tls-cert", certs["server"], "--tls-key", certs["server"],
        "--tls-client-ca", certs["ca"],
    ]  # fmt: skip


async def stats(system: System, certs: dict[str, str]) -> Any:
    import ssl

    context = ssl.create_default_context(cafile=certs["ca"])
    context.load_cert_chain(certs["client"])
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{system.mock_url}/_mock/stats", ssl=context) as r,
    ):
        return orjson.loads(await r.read())["providers"]["cloudsms"]


async def send(system: System, redis: Redis, tmp_path: Path) -> Any:
    numbers = tmp_path / "n.txt"
    numbers.write_text("".join(f"+8526123{i:04d}\n" for i in range(20)))
    out = system.cli(
        "enqueue", "--provider", "cloudsms", "--text", "hi", "--recipients", str(numbers)
    )
    cid = out.stdout.strip()
    system.worker()
    return await Client(settings=load_settings(system.config), redis=redis).wait(cid, 60)


async def test_with_a_client_certificate(
    system: System, redis: Redis, tmp_path: Path, certs: dict[str, str]
) -> None:
    assert system.mock_url.startswith("https://")
    system.write_config(
        cloudsms={"tls_cert": certs["client"], "tls_key": certs["client"], "tls_ca": certs["ca"]}
    )
    st = await send(system, redis, tmp_path)
    assert st.sent and st.counts == {"accepted": 20}
    assert (await stats(system, certs))["accepted"] == 20


async def test_refused_without_one(
    system: System, redis: Redis, tmp_path: Path, certs: dict[str, str]
) -> None:
    system.write_config(cloudsms={"tls_ca": certs["ca"], "max_attempts": 1})
    st = await send(system, redis, tmp_path)
    assert st.sent and st.counts == {"failed": 20}
    client = Client(settings=load_settings(system.config), redis=redis)
    codes = {r.error_code async for r in client.results(st.id)}
    assert codes == {"CONNECTION"}
    assert (await stats(system, certs))["accepted"] == 0
