"""What the mock's providers share: settings changeable at run time, balance, recorders."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from dataclasses import dataclass, field, fields
from random import Random
from typing import Any

from dispatcher.mock.stats import Recorder

PROVIDERS = (
    "cloudaten",
    "ycloud",
    "cloudsms",
    "smsclouds",
    "cloudaten_voice",
    "smsclouds_blaster",
    "smsclouds_email",
)


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
    # Delivery reports: each accepted message reaches a final status this long after it
    # was accepted, chosen by the mix (weights of delivered / undelivered / expired /
    # rejected), deterministically from the number.
    dlr_delay_ms: float = 50.0
    dlr_mix: tuple[tuple[str, int], ...] = (
        ("delivered", 80), ("undelivered", 10), ("expired", 6), ("rejected", 4),
    )  # fmt: skip
    #: The seeds' push retry schedule (1 min, 10 min, 60 min, 24 h, 72 h) is multiplied by
    #: this, so tests can see retries in milliseconds.
    retry_time_factor: float = 1.0
    cloudsms_callback_url: str | None = None  # CloudSMS: one report URL per account
    #: CloudSMS ROUTE_IDs configured for the account; any other is LOCAL_REJECTED (seed 002,
    #: "Wrong ROUTE_ID parameter values"). Empty: every ROUTE_ID is configured.
    cloudsms_routes: tuple[str, ...] = ()
    ycloud_inbound_url: str | None = None
    smsclouds_mo_url: str | None = None
    smsclouds_keyword_url: str | None = None
    list_interval_s: float = 60.0  # list APIs: one call a minute per key (the seeds' limit)
    voice_spacing_s: float = 30.0  # Cloud Aten: one voice call per number this often
    blaster_queue_ms: float = 1000.0  # Smsclouds blaster campaigns stay queued this long
    hlr_invalid: tuple[str, ...] = ()  # 10-digit numbers the HLR look-up calls invalid
    #: Send requests a provider takes per second (0: no limit). Requests above it, counted
    #: over sliding one-second windows, are refused with HTTP 429 and counted as over_rate.
    rate_limits: tuple[tuple[str, float], ...] = ()
    #: Injected faults: the share of send requests that fail, by kind. Before the provider
    #: looks at them (so a retry never duplicates): "5xx" (HTTP 503), "timeout" (no answer
    #: for fault_timeout_s), "drop" (connection closed), "busy" (the provider's busy answer).
    #: After the provider did its work (accepted what it accepts): "lost" (the connection
    #: closes instead of the answer), "late" (the answer comes after fault_timeout_s).
    faults: tuple[tuple[str, float], ...] = ()
    fault_timeout_s: float = 5.0
    fault_seed: int = 7
    #: The SMPP 3.4 SMSC (smsc.py, Smsclouds' "SMPP Connections"): None, not started; 0,
    #: any free port. Accounts are (system_id, password) pairs.
    smpp_port: int | None = None
    smpp_accounts: tuple[tuple[str, str], ...] = (("smsclouds", "smpppass"),)  # 8 at most
    smpp_latency_ms: float = 0.0  # before each accepted submit_sm is answered
    smpp_latency_jitter_ms: float = 0.0  # ± uniform, so answers can overtake each other
    smpp_window: int = 10  # submit_sm outstanding per session (0: no limit); more: 0x14
    smpp_rate_per_second: float = 0.0  # per system_id (0: no limit); more: 0x58
    smpp_burst: int = 1
    smpp_queue_full_every: int = 0  # every Nth submit_sm answered 0x14 (0: never)
    smpp_receipt_delay_ms: float = 50.0
    #: Close the session of the Nth submit_sm from now without answering what it has
    #: outstanding (taken all the same); then back to 0.
    smpp_drop_after: int = 0

    #: What POST /_mock/settings may change (keys and addresses stay as started).
    RUNTIME = (
        "latency_ms",
        "latency_jitter_ms",
        "balance",
        "price",
        "sensitive_words",
        "unpriced_regions",
        "cloudsms_busy",
        "dlr_delay_ms",
        "dlr_mix",
        "retry_time_factor",
        "cloudsms_callback_url",
        "cloudsms_routes",
        "ycloud_inbound_url",
        "smsclouds_mo_url",
        "smsclouds_keyword_url",
        "list_interval_s",
        "voice_spacing_s",
        "blaster_queue_ms",
        "hlr_invalid",
        "rate_limits",
        "faults",
        "fault_timeout_s",
        "smpp_latency_ms",
        "smpp_latency_jitter_ms",
        "smpp_window",
        "smpp_rate_per_second",
        "smpp_burst",
        "smpp_queue_full_every",
        "smpp_receipt_delay_ms",
        "smpp_drop_after",
    )

    def public(self) -> dict[str, object]:
        """The settings without the API keys, for answers."""
        secret = ("_keys", "_tokens", "_accounts")
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.endswith(secret)}


@dataclass
class MockState:
    settings: MockSettings
    balance: float = 0.0
    recorders: dict[str, Recorder] = field(default_factory=dict)
    pusher: Any = None  # reports.Pusher, set by the app
    limiter: Any = None  # reports.ListLimiter, set by the app

    windows: dict[str, collections.deque[float]] = field(default_factory=dict)
    random: Random = field(default_factory=Random)

    def __post_init__(self) -> None:
        self.balance = self.settings.balance
        self.random.seed(self.settings.fault_seed)
        for name in PROVIDERS:
            self.recorders.setdefault(name, Recorder())
            self.windows.setdefault(name, collections.deque())

    def over_rate(self, provider: str) -> bool:
        """Is this send request one too many in the last second? (Counted, then refused.)"""
        limit = dict(self.settings.rate_limits).get(provider, 0)
        if not limit:
            return False
        now = time.monotonic()
        window = self.windows[provider]
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= limit:
            self.recorders[provider].stats.over_rate += 1
            return True
        window.append(now)
        return False

    def fault(self) -> str | None:
        """The fault to inject into this request, if any."""
        point = self.random.random()
        for kind, share in self.settings.faults:
            if point < share:
                return kind
            point -= share
        return None

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
