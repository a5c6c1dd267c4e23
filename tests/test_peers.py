"""The benchmark's arq and SAQ peers send every recipient once and report sane figures.

Real processes throughout: a private valkey-server, the mock providers and each peer's
worker. arq and SAQ come with the ``bench`` extra, which `make test` installs.
"""

from __future__ import annotations

import urllib.request

import orjson

from benchmarks.peers import PEERS, run_peer, start_peer, stop_peer, worker_log
from dispatcher.demo import start_mock, stop
from dispatcher.embedded import RedisProcess
from tests.conftest import subprocess_env

N = 300
FIRST = 447911000000


def accepted(mock_url: str) -> tuple[int, int]:
    """What the mock's Cloud Aten took since its last reset: (accepted, repeated)."""
    with urllib.request.urlopen(f"{mock_url}/_mock/stats", timeout=10) as resp:
        stats = orjson.loads(resp.read())["providers"]["cloudaten"]
    return stats["accepted"], stats["mobiles_repeated"]


def test_each_peer_sends_every_recipient_once(own_redis: RedisProcess) -> None:
    mock, mock_url = start_mock([], subprocess_env())
    try:
        for peer in PEERS:
            proc = start_peer(peer, own_redis.url, mock_url)
            try:
                got = run_peer(peer, proc, own_redis.url, mock_url, "cloudaten", N, FIRST)
            finally:
                stop_peer(proc)
            # Stopped cleanly on SIGTERM, shutdown hook and all.
            assert proc.returncode == 0, f"{peer}: {proc.returncode}\n{worker_log(proc)}"
            assert accepted(mock_url) == (N, 0), (peer, got)
            assert got["jobs"] == 3, got
            assert got["mock_accepted"] == N and got["mock_repeated"] == 0, got
            assert got["rps"] > 0 and got["cpu_us_per_recipient"] > 0, got
            assert 0 <= got["enqueue_seconds"] <= got["seconds"], got
    finally:
        stop(mock)
