"""An independent SMSC for end-to-end tests: the npm package ``smpp`` (farhadi/node-smpp
0.5.1) run as a server by ``tests/e2e/smpp_peer/server.js``.

Install it once per test process, then start one peer per test (a few hundred ms)::

    from tests.e2e.smpp_peer import install_once, running_peer

    @pytest.fixture(scope="session")
    def smpp_peer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return install_once(tmp_path_factory)

    async def test_x(smpp_peer_dir: Path) -> None:
        async with running_peer(smpp_peer_dir, "sysid", "secret", latency_ms=5) as peer:
            ...  # an ESME binds to 127.0.0.1:peer.smpp_port
            stats = await peer.stats()

``install`` runs ``npm ci`` from the committed package-lock.json (the only download: the
npm registry). Node and npm must be on PATH: without them the test fails, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

#: The committed sources: package.json pins ``smpp`` to exactly 0.5.1.
SOURCE = Path(__file__).resolve().parent / "smpp_peer"
FILES = ("package.json", "package-lock.json", "server.js")
HOST = "127.0.0.1"
NPM_TIMEOUT_S = 300.0
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0

_installed: dict[str, Path] = {}


class PeerError(RuntimeError):
    """The peer could not be installed, started or ran into trouble."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PeerError(
            f"`{name}` is not on PATH: the SMPP peer (node-smpp) needs Node.js >= 18 and npm"
            " (Debian: apt-get install nodejs npm)"
        )
    return path


def install(dest: Path) -> Path:
    """Copy the peer's sources into ``dest`` and ``npm ci`` there; ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(SOURCE / name, dest / name)
    npm = _tool("npm")
    _tool("node")
    env = {**os.environ, "npm_config_update_notifier": "false"}
    command = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(
            command,
            cwd=dest,
            env=env,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raw: bytes | str = exc.stderr or b""  # bytes on POSIX, even with text=True
        said = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        raise PeerError(
            f"`npm ci` in {dest} did not finish in {NPM_TIMEOUT_S:.0f} s:\n{said}"
        ) from exc
    if done.returncode != 0:
        raise PeerError(
            f"`npm ci` in {dest} failed (exit {done.returncode}):\n{done.stderr}{done.stdout}"
        )
    if not (dest / "node_modules" / "smpp" / "package.json").is_file():
        raise PeerError(f"`npm ci` in {dest} left no node_modules/smpp:\n{done.stderr}")
    return dest


def install_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``install`` into a session temp folder, once per test process however many test
    modules ask: pytest makes a fixture of its own in each module that defines or imports
    one, and each of them calls this."""
    if "dir" not in _installed:
        _installed["dir"] = install(tmp_path_factory.mktemp("smpp-peer"))
    return _installed["dir"]


@pytest.fixture(scope="session")
def smpp_peer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The installed peer folder, for ``running_peer``. Import it into a conftest.py
    (``from tests.e2e.smpp_peer import smpp_peer_dir  # noqa: F401``); a test module that
    imports it and takes it as an argument trips ruff's F811, so a module defines its own
    three-line fixture calling ``install_once`` instead (as test_smpp_peer.py does)."""
    return install_once(tmp_path_factory)


@dataclass
class Peer:
    """A running ``server.js``: its two ports and its HTTP control endpoints."""

    smpp_port: int
    http_port: int
    process: asyncio.subprocess.Process
    stderr_path: Path
    host: str = HOST

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    async def _call(self, method: str, path: str) -> Any:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.http_url + path) as response,
        ):
            if response.status != 200:
                raise PeerError(f"{method} {path}: HTTP {response.status} {await response.text()}")
            return await response.json()

    async def stats(self) -> dict[str, Any]:
        """The counters (see server.js) and ``texts``: destination -> complete texts."""
        answer: dict[str, Any] = await self._call("GET", "/stats")
        return answer

    async def disconnect(self) -> int:
        """Close every SMPP session (they are closed when this returns); how many."""
        answer = await self._call("POST", "/disconnect")
        return int(answer["closed"])

    async def reset(self) -> None:
        """Zero the counters and forget texts and receipts not sent; sessions stay."""
        await self._call("POST", "/reset")

    def stderr(self) -> str:
        """What the peer wrote to stderr so far (every PDU with ``verbose=True``)."""
        return _read(self.stderr_path)


def peer_command(
    folder: Path,
    system_id: str,
    password: str,
    *,
    port: int = 0,
    http_port: int = 0,
    receipt_delay_ms: int = 20,
    latency_ms: int = 0,
    window: int = 10,
    enquire_link_ms: int = 0,
    verbose: bool = False,
) -> list[str]:
    """The command line of ``server.js`` in ``folder`` with these options."""
    command = [_tool("node"), str(folder / "server.js")]
    command += ["--port", str(port), "--http-port", str(http_port)]
    command += ["--system-id", system_id, "--password", password]
    command += ["--receipt-delay-ms", str(receipt_delay_ms), "--latency-ms", str(latency_ms)]
    command += ["--window", str(window), "--enquire-link-ms", str(enquire_link_ms)]
    return [*command, "--verbose"] if verbose else command


@contextlib.asynccontextmanager
async def running_peer(
    folder: Path,
    system_id: str,
    password: str,
    *,
    receipt_delay_ms: int = 20,
    latency_ms: int = 0,
    window: int = 10,
    enquire_link_ms: int = 0,
    verbose: bool = False,
    start_timeout: float = START_TIMEOUT_S,
) -> AsyncIterator[Peer]:
    """Start ``node server.js`` from an installed ``folder``; the running ``Peer``.

    On exit the process is terminated (killed after a few seconds). A peer that exited by
    itself meanwhile fails the test with its stderr (``--verbose`` logs every PDU there).
    """
    command = peer_command(
        folder,
        system_id,
        password,
        receipt_delay_ms=receipt_delay_ms,
        latency_ms=latency_ms,
        window=window,
        enquire_link_ms=enquire_link_ms,
        verbose=verbose,
    )
    fd, name = tempfile.mkstemp(prefix="server-", suffix=".stderr", dir=folder)
    stderr_path = Path(name)
    with os.fdopen(fd, "wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        peer = await _started(proc, stderr_path, start_timeout)
    except BaseException:
        await _stop(proc)
        raise
    try:
        yield peer
    except BaseException as exc:
        if proc.returncode is not None:
            exc.add_note(f"the SMPP peer had exited ({proc.returncode}):\n{peer.stderr()}")
        raise
    finally:
        crashed = proc.returncode
        await _stop(proc)
    if crashed is not None:
        raise PeerError(f"the SMPP peer exited by itself ({crashed}):\n{peer.stderr()}")


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


async def _started(proc: asyncio.subprocess.Process, stderr_path: Path, wait_s: float) -> Peer:
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), wait_s)
    except TimeoutError:
        raise PeerError(
            f"the SMPP peer printed no `listening` line in {wait_s:.0f} s:\n{_read(stderr_path)}"
        ) from None
    words = line.decode(errors="replace").split()
    if len(words) != 3 or words[0] != "listening":
        await _stop(proc)
        raise PeerError(
            f"the SMPP peer did not start (exit {proc.returncode}, said {line!r}):\n"
            + _read(stderr_path)
        )
    return Peer(int(words[1]), int(words[2]), proc, stderr_path)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    else:
        await proc.wait()
