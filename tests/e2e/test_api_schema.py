"""Schemathesis against the live API process: property tests generated from
dispatcher/api/openapi.json (the document kept in the repo and served at /openapi.json),
every check on, 0 failures. Settings and the few documented exceptions are in
tests/api/schemathesis.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson

from tests.conftest import repo_root
from tests.e2e.conftest import API_TOKEN, System


async def test_schemathesis_finds_nothing(system: System) -> None:
    api = system.api()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_TOKEN}"}) as http:
        async with http.get(f"{api}/openapi.json") as r:
            served = await r.read()
        # The document served is the one in the repo, byte for byte.
        assert served == (repo_root() / "dispatcher/api/openapi.json").read_bytes()
        # A real campaign, so the per-campaign operations reach real logic, not only 404s.
        body = {"provider": "ycloud", "text": "hi", "recipients": ["+8613900000001"] * 2}
        async with http.post(f"{api}/v1/campaigns", json=body) as r:
            assert r.status == 201, await r.text()
            cid = orjson.loads(await r.read())["id"]
    env = {**system.env, "DISPATCHER_TEST_TOKEN": API_TOKEN, "DISPATCHER_TEST_CID": cid}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(repo_root() / "tests/api/schemathesis.toml"),
            "run",
            f"{api}/openapi.json",
        ],
        env=env,
        cwd=repo_root(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = done.stdout[-3000:]
    assert done.returncode == 0, summary
    assert " failed" not in summary and "passed" in summary, summary
