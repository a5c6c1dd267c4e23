"""The whole system on loopback for the benchmarks that run it as real processes: a private
Redis, the mock, a webhooks process, and worker processes with their logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from dispatcher.client import Client
from dispatcher.config import load_settings
from dispatcher.demo import start_mock, stop
from dispatcher.embedded import RedisProcess, free_port
from dispatcher.runtime import connect

SECRET = "bench-webhook-secret-0123456789"
#: The mock's credentials, and what each provider needs to send.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "cloudaten": {"api_key": "mock-cloudaten-key"},
    "ycloud": {"api_key": "mock-ycloud-key"},
    "cloudsms": {"api_key": "mock-cloudsms-auth-key", "route_id": "VerifyCode_516"},
    "smsclouds": {"api_key": "mock-smsclouds-token", "route": 77, "country": 1},
}


def toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


class Rig:
    """Start with the providers' settings (``overrides``) and, per provider, the accounts to
    configure beside ``default`` (account → its own settings, e.g. a rate)."""

    def __init__(
        self,
        tmp: Path,
        overrides: dict[str, dict[str, Any]],
        latency_ms: int = 2,
        accounts: dict[str, dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.tmp = tmp
        self.redis_server = RedisProcess(tmp / "redis", free_port())
        self.redis_server.start()
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis_server.url,
            "DISPATCHER_WEBHOOK_SECRET": SECRET,
            "DISPATCHER_CONFIG": str(tmp / "dispatcher.toml"),
        }
        self.mock, self.mock_url = start_mock(["--latency-ms", str(latency_ms)], self.env)
        self.write_config(overrides, accounts or {})
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.hooks = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "webhooks", "--port", "0"],
            env=self.env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.hooks.stdout is not None
        self.hooks_url = self.hooks.stdout.readline().split()[-1]

    def write_config(
        self, overrides: dict[str, dict[str, Any]], accounts: dict[str, dict[str, dict[str, Any]]]
    ) -> None:
        lines = ['prefix = "bench:"', "[worker]", "drain_timeout_seconds = 10"]
        for name, account in ACCOUNTS.items():
            values = {"base_url": f"{self.mock_url}/{name}", **overrides.get(name, {})}
            lines += [f"[providers.{name}]", *(f"{k} = {toml(v)}" for k, v in values.items())]
            for acct, own in {"default": {}, **accounts.get(name, {})}.items():
                lines += [f"[providers.{name}.accounts.{acct}]"]
                lines += [f"{k} = {toml(v)}" for k, v in {**account, **own}.items()]
        Path(self.env["DISPATCHER_CONFIG"]).write_text("\n".join(lines) + "\n")

    def client(self) -> Client:
        return Client(
            settings=load_settings(self.env["DISPATCHER_CONFIG"]),
            redis=connect(self.env["REDIS_URL"]),
        )

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dispatcher", "worker", *args], env=self.env, stderr=out
            )
        self.workers.append(proc)
        return proc

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.mock_url + path, json=body) as r,
        ):
            return orjson.loads(await r.read())

    def close(self) -> None:
        procs: list[subprocess.Popen[Any]] = [*self.workers, self.hooks, self.mock]
        for proc in procs:
            stop(proc)
        self.redis_server.stop()
