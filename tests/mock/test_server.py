"""The mock as a process: the ready line, loopback only, clean exit on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import aiohttp
import orjson

from tests.conftest import repo_root, subprocess_env

MAIN = "import sys; from dispatcher.mock.server import main; sys.exit(main())"


async def test_ready_line_then_serves_then_exits_0_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", MAIN, "--port", "0", "--cloudaten-key", "k2"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo_root(),
        env=subprocess_env(),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("mock listening on http://127.0.0.1:")
        base = line.split()[-1]
        async with aiohttp.ClientSession() as s:
            async with s.post(
                f"{base}/cloudaten/v1/sms/send_messages",
                data=b'{"mobile": "+447901614024", "text": "hi"}',
                headers={"X-API-Key": "k2", "Content-Type": "application/json"},
            ) as resp:
                assert orjson.loads(await resp.read())["code"] == 0
            async with s.get(f"{base}/_mock/stats") as resp:
                assert orjson.loads(await resp.read())["providers"]["cloudaten"]["accepted"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_refuses_a_non_loopback_host() -> None:
    done = subprocess.run(
        [sys.executable, "-c", MAIN, "--host", "0.0.0.0", "--port", "0"],
        check=False,
        capture_output=True,
        text=True,
        cwd=repo_root(),
        env=subprocess_env(),
        timeout=30,
    )
    assert done.returncode == 2
    assert "only loopback addresses" in done.stderr
