"""The webhook secret never reaches a log line: not aiohttp's own errors about a request it
cannot parse (an over-long request line or header, a bad version or method, each quoted with
the path), not our refusals. Checked on the records of an in-process receiver and on the
stderr of a real ``python -m dispatcher webhooks`` process."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess

import orjson
import pytest

from tests.conftest import start_server, subprocess_env
from tests.webhooks.support import SECRET, Hooks

PATH = f"/hooks/{SECRET}/smsclouds/mo"
#: Requests aiohttp refuses before any handler runs, each quoting the path in its error.
UNPARSABLE = [
    b"GET " + PATH.encode() + b"?response=" + b"a" * 60_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 70_000 + b"\r\n\r\n",
    b"GET " + PATH.encode() + b" HTTP/9.9\r\nHost: x\r\n\r\n",
    b"G\x01T " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    # Cut inside the secret: what is logged holds only a part of it.
    b"GET /hooks/" + SECRET[:10].encode() + b"t" * 9_000 + b" HTTP/1.1\r\n\r\n",
]


async def raw_request(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh loopback connection; the answer, read until aiohttp closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def leaked(records: list[logging.LogRecord]) -> list[str]:
    """The formatted records (message, exception, stack) that hold the secret or a part."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = [formatter.format(r) for r in records]
    return [t for t in texts if SECRET in t or SECRET[:10] in t]


async def test_no_record_holds_the_secret(hooks: Hooks, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = int(hooks.base.rsplit(":", 1)[1])
    for data in UNPARSABLE:
        answer = await raw_request(port, data)
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0]
    # A refusal of ours, logged at WARNING.
    assert (await hooks.post("cloudaten", "dlr", b"{not json"))[0] == 400
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server) == len(UNPARSABLE)  # aiohttp did log each: they were scrubbed
    assert any("LineTooLong" in (r.exc_text or "") for r in server)
    assert any(r.name == "dispatcher.webhooks" and r.levelno == logging.WARNING
               for r in caplog.records)  # fmt: skip
    assert leaked(caplog.records) == []


async def test_a_webhooks_process_logs_no_secret(redis_url: str, prefix: str) -> None:
    env = subprocess_env(REDIS_URL=redis_url, DISPATCHER_WEBHOOK_SECRET=SECRET)
    proc, url = await asyncio.to_thread(
        start_server, env, "webhooks", "--log-level", "DEBUG", stderr=subprocess.PIPE
    )
    try:
        port = int(url.rsplit(":", 1)[1])
        for data in UNPARSABLE:
            assert b" 400 " in (await raw_request(port, data)).split(b"\r\n", 1)[0]
        bad = orjson.dumps({"sid": "1", "status": "delivered", "mobile": "+1"})
        push = (
            f"POST /hooks/{SECRET}/cloudaten/dlr HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Length: {len(bad)}\r\n\r\n"
        ).encode() + bad
        assert b" 400 " in (await raw_request(port, push)).split(b"\r\n", 1)[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0, stderr
    assert stderr.count("Error handling request") >= len(UNPARSABLE) - 1  # one at DEBUG
    assert "push refused (bad_status_timestamp)" in stderr
    assert SECRET not in stderr and SECRET[:10] not in stderr
