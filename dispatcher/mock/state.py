"""What the mock's providers share: settings changeable at run time, balance, recorders."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field, fields

from dispatcher.mock.stats import Recorder

PROVIDERS = ("cloudaten", "ycloud", "cloudsms", "smsclouds")


@dataclass
class MockSettings:
    host: str = "127.0.0.1"
    port: int = 8090  # 0: any free port
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    cloudaten_keys: tuple[str, ...] = ("mock-cloudaten-key",)
    ycloud_keys: tuple[str, ...] = ("mock-ycloud-key",)
    cloudsms_keys: tuple[str, ...] = ("mock-cloudsms-auth-key",)
    smsclouds_tokens: tuple[str, ...] = ("mock-smsclouds-token",)
    cloudsms_busy: int = 0  # answer the next N CloudSMS packets with Busy (0x03)
    tls_cert: str | None = None  # serve over TLS with this certificate …
    tls_key: str | None = None
    tls_client_ca: str | None = None  # … and require client certificates signed by this CA
    balance: float = 1e12
    price: float = 0.0087  # per segment, every priced region
    sensitive_words: tuple[str, ...] = ()
    unpriced_regions: tuple[str, ...] = ()

    #: What POST /_mock/settings may change (keys and addresses stay as started).
    RUNTIME = (
        "latency_ms",
        "latency_jitter_ms",
        "balance",
        "price",
        "sensitive_words",
        "unpriced_regions",
        "cloudsms_busy",
    )

    def public(self) -> dict[str, object]:
        """The settings without the API keys, for answers."""
        secret = ("_keys", "_tokens")
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.endswith(secret)}


@dataclass
class MockState:
    settings: MockSettings
    balance: float = 0.0
    recorders: dict[str, Recorder] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.balance = self.settings.balance
        for name in PROVIDERS:
            self.recorders.setdefault(name, Recorder())

    def recorder(self, provider: str) -> Recorder:
        return self.recorders[provider]

    async def delay(self) -> None:
        """Simulated network and provider latency."""
        s = self.settings
        if s.latency_ms or s.latency_jitter_ms:
            jitter = random.uniform(-s.latency_jitter_ms, s.latency_jitter_ms)
            await asyncio.sleep(max(0.0, s.latency_ms + jitter) / 1000)

    def charge(self, amount: float) -> bool:
        if amount > self.balance:
            return False
        self.balance -= amount
        return True

    def reset(self) -> None:
        self.balance = self.settings.balance
        for recorder in self.recorders.values():
            recorder.reset()
