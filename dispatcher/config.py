"""Settings from ``config/*.toml``: providers, accounts, rates, worker tuning.

Secrets never live in the file: an account names the environment variable that holds its
key (``api_key_env``), and the value is wrapped in :class:`Secret` so that it cannot end up
in a log line or a traceback by accident.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from dispatcher.errors import DispatcherError

DEFAULT_CONFIG = Path("config/dispatcher.toml")


class ConfigError(DispatcherError, ValueError):
    """A setting is missing or wrong; the message names it."""


class Secret:
    """A credential whose repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


TRANSPORTS = ("http", "smpp")
BINDS = ("transceiver", "transmitter")


@dataclass(frozen=True)
class SmppSettings:
    """Where an SMPP account's session binds (the password is the account's secret)."""

    host: str
    port: int
    system_id: str
    bind: str = "transceiver"  # or "transmitter": no receipts on the session then
    window: int = 10  # requests waiting for their response at once, per process
    enquire_link_seconds: float = 30.0


#: An account's own settings for an SMPP session, beside its options.
SMPP_KEYS = {"smpp_host", "smpp_port", "system_id", "bind", "window", "enquire_link_seconds"}


@dataclass(frozen=True)
class AccountSettings:
    name: str
    api_key_env: str | None = None
    api_key: Secret | None = None
    options: dict[str, Any] = field(default_factory=dict)  # provider-specific defaults
    #: This account's own rate, where it differs from the provider's (an OTP account
    #: beside a marketing one, an account per customer).
    rate_per_second: float | None = None
    #: "http", or "smpp" with ``smpp`` set: the same provider reached over SMPP 3.4.
    transport: str = "http"
    smpp: SmppSettings | None = None
    #: The account's own ``on_unknown``, where it differs from the provider's (an SMPP
    #: account risks a window of messages, an HTTP campaign request thousands).
    on_unknown: str | None = None

    def key(self, provider: str) -> str:
        """The account's key, or a clear error naming where it should come from."""
        if self.api_key is not None:
            return self.api_key.reveal()
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            if value:
                return value
            raise ConfigError(
                f"providers.{provider}.accounts.{self.name}: environment variable "
                f"{self.api_key_env} is not set"
            )
        raise ConfigError(f"providers.{provider}.accounts.{self.name}: no api_key_env set")


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    base_url: str
    chunk_size: int = 100
    rate_per_second: float = 50.0  # per provider account, across every worker process
    burst: int = 1  # requests the account may send at once after a quiet spell
    #: The most jitter (how much later than scheduled a request may reach the provider)
    #: the spacing allows for; below it the jitter is measured (jitter.py), and requests
    #: are spaced so that the provider never counts more than the rate in any window of
    #: max(1 s, 1/rate).
    rate_jitter_seconds: float = 0.1
    rate_headroom: float = 0.0  # an extra fraction to stay below the rate, if wanted
    per_number_spacing_seconds: float = 0.0  # e.g. 30: one voice call per number per 30 s
    concurrency: int = 64  # HTTP requests in flight per account and process
    timeout_seconds: float = 10.0
    connect_timeout_seconds: float = 5.0
    max_attempts: int = 3  # sends of one request before its recipients are failed
    backoff_seconds: float = 0.5  # first retry delay; doubles, with jitter
    retry_later_seconds: float = 600.0  # when the provider says "busy, come back later"
    poll_interval_seconds: float = 65.0  # one list call per account at most this often
    poll_after_seconds: float = 120.0  # poll a message once this old (pushes come first)
    #: Unknown fate (a request that may have reached the provider, and we do not know):
    #: how far the provider's clock may differ from Redis's, for list windows …
    clock_skew_seconds: float = 1.0
    #: … how long such recipients wait for the provider's list or reports to settle them
    #: before the campaign's on_unknown applies (with a list API: more than the window —
    #: timeout_seconds and a bit — plus a few poll intervals) …
    unknown_wait_seconds: float = 900.0
    #: … and what a campaign does with what is still unknown then, unless it says.
    on_unknown: str = "resend"
    callback_url: str | None = None
    price_per_segment: float | None = None  # for estimates
    tls_cert: str | None = None  # client certificate (two-way TLS, CloudSMS)
    tls_key: str | None = None
    tls_ca: str | None = None  # CA bundle that signed the provider's certificate
    accounts: dict[str, AccountSettings] = field(default_factory=dict)

    def account(self, name: str) -> AccountSettings:
        try:
            return self.accounts[name]
        except KeyError:
            raise ConfigError(f"providers.{self.name}.accounts.{name}: not configured") from None

    def rate_for(self, account: str) -> float:
        """The account's rate: its own, or the provider's."""
        own = self.accounts[account].rate_per_second if account in self.accounts else None
        return own if own is not None else self.rate_per_second


@dataclass(frozen=True)
class WorkerSettings:
    #: Chunks one process works on at once. Each account holds only what its rate can send
    #: soon (admission.py), so slots are cheap: enough for every busy account.
    chunks_in_flight: int = 32
    #: A chunk whose worker stopped refreshing it for this long is taken over by another
    #: (fencing makes that safe: the old worker cannot send once it has lost it).
    lease_seconds: float = 10.0
    drain_timeout_seconds: float = 20.0  # SIGTERM: time to finish the chunks in flight
    block_ms: int = 1000  # how long one XREADGROUP waits for new chunks
    #: /metrics, /healthz and /readyz on this port (health.py); unset: no HTTP server.
    #: Worker process i of ``--processes N`` uses port + i - 1; 0 picks any free port.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: Seconds between retention sweeps (retention.py), one pass across all processes;
    #: 0: this worker never sweeps.
    retention_sweep_seconds: float = 60.0


@dataclass(frozen=True)
class WebhookSettings:
    host: str = "127.0.0.1"
    port: int = 8091
    #: How providers reach the receiver, e.g. https://hooks.example.com; when set, each
    #: provider's callback_url defaults to <public_url>/hooks/<secret>/<provider>/dlr.
    public_url: str | None = None
    secret_env: str = "DISPATCHER_WEBHOOK_SECRET"
    max_body_bytes: int = 65536
    keyword_response: str = "Gracias, hemos recibido tu mensaje."

    def secret(self) -> str:
        value = os.environ.get(self.secret_env, "")
        if len(value) < 16:
            raise ConfigError(
                f"webhooks.secret_env: {self.secret_env} must hold a secret of 16+ characters"
            )
        return value


@dataclass(frozen=True)
class Settings:
    prefix: str = "dsp:"
    #: How many partitions the work is spread over (keys.py): 0 picks one on a single Redis
    #: and 16 on a Redis Cluster. Every process of a prefix must agree.
    partitions: int = 0
    default_region: str | None = None  # region for numbers written without +country code
    idempotency_ttl_seconds: int = 7 * 24 * 3600
    #: How long an enqueue's staged keys live without being written to: a crashed enqueue's
    #: keys expire after this (staging.py); each write while it streams renews it.
    staging_ttl_seconds: int = 3600
    #: Days a done campaign stays in Redis before it is archived and its keys deleted.
    retention_days: int = 30
    #: Where archived campaigns are written: one compressed file each (archive.py).
    archive_dir: str = ".dispatcher/archive"
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    providers: dict[str, ProviderSettings] = field(default_factory=dict)

    def callback_url(self, provider: str) -> str | None:
        """Where the provider pushes delivery reports: set per provider, or built from
        ``webhooks.public_url`` and the secret path segment."""
        explicit = self.provider(provider).callback_url
        if explicit or not self.webhooks.public_url:
            return explicit
        base = self.webhooks.public_url.rstrip("/")
        return f"{base}/hooks/{self.webhooks.secret()}/{provider}/dlr"

    def provider(self, name: str) -> ProviderSettings:
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise ConfigError(f"unknown provider {name!r} (configured: {known})") from None


#: What a provider gets when the file does not mention it.
BUILTIN_PROVIDERS: dict[str, dict[str, Any]] = {
    "cloudaten": {
        "base_url": "https://api.cloudaten.com",
        "chunk_size": 100,
        "accounts": {"default": {"api_key_env": "CLOUDATEN_API_KEY"}},
    },
    "ycloud": {
        "base_url": "https://api.ycloud.com",
        "chunk_size": 100,
        "accounts": {"default": {"api_key_env": "YCLOUD_API_KEY"}},
    },
    "cloudsms": {
        "base_url": "https://cloudsms-new.jegotrip.com.cn:1815",
        "chunk_size": 1000,  # five packets of 200 numbers
        "accounts": {"default": {"api_key_env": "CLOUDSMS_AUTH_KEY"}},
    },
    "smsclouds": {
        "base_url": "https://smsclouds.cloud",
        "chunk_size": 30_000,  # the seed's optimum; 50,000 at most
        "concurrency": 4,
        "timeout_seconds": 600,  # the seed allows a request 10 minutes
        # Nothing can tell what a cut-off request of up to 50,000 recipients reached:
        # hold such a campaign for an operator rather than text 50,000 people twice.
        "on_unknown": "hold",
        "unknown_wait_seconds": 0,
        "accounts": {"default": {"api_key_env": "SMSCLOUDS_TOKEN"}},
    },
}

#: What each provider's codec accepts as options: name → type. Filled by load_settings.
Schemas = dict[str, dict[str, type]]
#: The same for the codecs of other transports: provider → transport → options.
TransportSchemas = dict[str, dict[str, dict[str, type]]]


#: More partitions than this would make every worker read too many streams.
MOST_PARTITIONS = 256

#: Settings for which 0 means something ("at once", "no wait").
ZERO_ALLOWED = {
    "partitions",
    "retention_days",
    "poll_after_seconds",
    "backoff_seconds",
    "retry_later_seconds",
    "rate_headroom",
    "rate_jitter_seconds",
    "per_number_spacing_seconds",
    "clock_skew_seconds",
    "unknown_wait_seconds",
    "metrics_port",
    "retention_sweep_seconds",
}
#: The slowest rate an account may have: one request every 1,000 seconds.
MIN_RATE = 0.001
ON_UNKNOWN = ("resend", "hold")


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}{key}: unknown setting")


def _typed(cls: type[Any], table: dict[str, Any], where: str, skip: set[str]) -> dict[str, Any]:
    """Check the scalar settings of ``table`` against the dataclass field types."""
    out: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(cls)}
    for key, value in table.items():
        if key in skip:
            continue
        want = str(types[key])
        ok = (
            ("float" in want and isinstance(value, int | float) and not isinstance(value, bool))
            or ("int" in want and isinstance(value, int) and not isinstance(value, bool))
            or ("str" in want and isinstance(value, str))
        )
        if not ok:
            raise ConfigError(f"{where}{key}: expected {want}, got {value!r}")
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and (value < 0 or (value == 0 and key not in ZERO_ALLOWED)):
            raise ConfigError(f"{where}{key}: must be positive")
        out[key] = value
    return out


def _smpp(table: dict[str, Any], where: str) -> SmppSettings:
    for key in ("smpp_host", "smpp_port", "system_id"):
        if key not in table:
            raise ConfigError(f'{where}{key}: is required with transport = "smpp"')
    if not isinstance(table["smpp_host"], str) or not isinstance(table["system_id"], str):
        raise ConfigError(f"{where}smpp_host, system_id: must be strings")
    port = table["smpp_port"]
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigError(f"{where}smpp_port: expected a port number, got {port!r}")
    if len(table["system_id"]) > 15:
        raise ConfigError(f"{where}system_id: at most 15 characters (SMPP 3.4)")
    bind = table.get("bind", "transceiver")
    if bind not in BINDS:
        raise ConfigError(f"{where}bind: must be one of {', '.join(BINDS)}")
    window = table.get("window", 10)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise ConfigError(f"{where}window: expected a positive integer, got {window!r}")
    every = table.get("enquire_link_seconds", 30.0)
    if not isinstance(every, int | float) or isinstance(every, bool) or every <= 0:
        raise ConfigError(f"{where}enquire_link_seconds: must be positive")
    return SmppSettings(table["smpp_host"], port, table["system_id"], bind, window, float(every))


def _account(
    provider: str,
    name: str,
    table: Any,
    schema: dict[str, type],
    transports: dict[str, dict[str, type]] | None = None,
) -> AccountSettings:
    where = f"providers.{provider}.accounts.{name}."
    if not isinstance(table, dict):
        raise ConfigError(f"{where[:-1]}: must be a table")
    transport = table.get("transport", "http")
    if transport not in TRANSPORTS:
        raise ConfigError(f"{where}transport: must be one of {', '.join(TRANSPORTS)}")
    smpp = None
    if transport != "http":
        if transports is not None and transport not in transports:
            raise ConfigError(f"{where}transport: {provider} has no {transport} transport")
        schema = (transports or {}).get(transport, {})
        smpp = _smpp(table, where)
    common = {"api_key_env", "api_key", "rate_per_second", "transport", "on_unknown"}
    _check_keys(table, common | (SMPP_KEYS if smpp else set()) | set(schema), where)
    options = {k: v for k, v in table.items() if k in schema}
    for key, value in options.items():
        if not isinstance(value, schema[key]) or isinstance(value, bool):
            raise ConfigError(f"{where}{key}: expected {schema[key].__name__}, got {value!r}")
    own = {k: v for k, v in table.items() if k == "rate_per_second"}
    rate = _typed(ProviderSettings, own, where, set())
    _check_rate(rate, where)
    key = table.get("api_key")
    on_unknown = table.get("on_unknown")
    if on_unknown is not None and on_unknown not in ON_UNKNOWN:
        raise ConfigError(f"{where}on_unknown: must be resend or hold")
    return AccountSettings(
        name=name,
        api_key_env=table.get("api_key_env"),
        api_key=Secret(key) if isinstance(key, str) else None,
        options=options,
        rate_per_second=rate.get("rate_per_second"),
        transport=transport,
        smpp=smpp,
        on_unknown=on_unknown,
    )


def _provider(
    name: str,
    table: dict[str, Any],
    schema: dict[str, type],
    transports: dict[str, dict[str, type]] | None = None,
) -> ProviderSettings:
    where = f"providers.{name}."
    allowed = {f.name for f in fields(ProviderSettings)} - {"name"}
    _check_keys(table, allowed, where)
    values = _typed(ProviderSettings, table, where, {"accounts"})
    accounts_table = table.get("accounts", {})
    if not isinstance(accounts_table, dict):
        raise ConfigError(f"{where}accounts: must be a table")
    accounts = {n: _account(name, n, t, schema, transports) for n, t in accounts_table.items()}
    _check_rate(values, where)
    if values.get("on_unknown", "resend") not in ON_UNKNOWN:
        raise ConfigError(f"{where}on_unknown: must be resend or hold")
    return ProviderSettings(name=name, accounts=accounts, **values)


def _check_rate(values: dict[str, Any], where: str) -> None:
    """Refuse the rates that cannot work, naming the setting."""
    rate = values.get("rate_per_second")
    if rate is not None and rate < MIN_RATE:
        raise ConfigError(
            f"{where}rate_per_second: at least {MIN_RATE} (one request every "
            f"{1 / MIN_RATE:,.0f} s); got {rate}"
        )
    if values.get("rate_headroom", 0.0) >= 1:
        raise ConfigError(f"{where}rate_headroom: must be below 1 (a fraction of the rate)")


def parse_settings(
    data: dict[str, Any],
    schemas: Schemas | None = None,
    max_chunks: dict[str, int | None] | None = None,
    transports: TransportSchemas | None = None,
) -> Settings:
    """Settings from decoded TOML, on top of the built-in provider defaults.

    ``schemas`` (provider → option types), ``max_chunks`` and ``transports`` (the options
    of each provider's other transports) come from the codecs; without them any provider
    name passes and accounts take no options.
    """
    _check_keys(
        data,
        {
            "prefix",
            "partitions",
            "default_region",
            "idempotency_ttl_seconds",
            "staging_ttl_seconds",
            "retention_days",
            "archive_dir",
            "worker",
            "webhooks",
            "providers",
        },
        "",
    )
    top = _typed(Settings, data, "", {"worker", "webhooks", "providers"})
    if top.get("partitions", 0) > MOST_PARTITIONS:
        raise ConfigError(f"partitions: at most {MOST_PARTITIONS}")
    worker_table = data.get("worker", {})
    _check_keys(worker_table, {f.name for f in fields(WorkerSettings)}, "worker.")
    worker = WorkerSettings(**_typed(WorkerSettings, worker_table, "worker.", set()))
    hooks_table = data.get("webhooks", {})
    _check_keys(hooks_table, {f.name for f in fields(WebhookSettings)}, "webhooks.")
    webhooks = WebhookSettings(**_typed(WebhookSettings, hooks_table, "webhooks.", set()))
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in BUILTIN_PROVIDERS.items()}
    for name, table in data.get("providers", {}).items():
        if not isinstance(table, dict):
            raise ConfigError(f"providers.{name}: must be a table")
        merged.setdefault(name, {}).update(table)
    providers = {}
    for name, table in merged.items():
        if schemas is not None and name not in schemas:
            raise ConfigError(f"providers.{name}: unknown provider")
        if "base_url" not in table:
            raise ConfigError(f"providers.{name}.base_url: is required")
        own = None if transports is None else transports.get(name, {})
        providers[name] = _provider(name, table, (schemas or {}).get(name, {}), own)
        most = (max_chunks or {}).get(name)
        if most is not None and providers[name].chunk_size > most:
            raise ConfigError(f"providers.{name}.chunk_size: at most {most} for {name}")
    return Settings(worker=worker, webhooks=webhooks, providers=providers, **top)


def parse_with_codecs(data: dict[str, Any]) -> Settings:
    """parse_settings, checking provider names, options and chunk sizes against the codecs."""
    from dispatcher.providers import CODECS
    from dispatcher.providers import TRANSPORTS as CODEC_TRANSPORTS

    transports: TransportSchemas = {}
    for (name, kind, transport), codec in CODEC_TRANSPORTS.items():
        if kind == "sms":
            transports.setdefault(name, {})[transport] = dict(codec.options)
    return parse_settings(
        data,
        {n: dict(c.options) for n, c in CODECS.items()},
        {n: c.max_chunk for n, c in CODECS.items()},
        transports,
    )


def load_settings(path: str | Path | None = None) -> Settings:
    """Read ``path``, or ``$DISPATCHER_CONFIG``, or ``config/dispatcher.toml`` if present."""
    chosen = path or os.environ.get("DISPATCHER_CONFIG")
    if chosen is None and DEFAULT_CONFIG.exists():
        chosen = DEFAULT_CONFIG
    data: dict[str, Any] = {}
    if chosen is not None:
        try:
            with open(chosen, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config {chosen}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {chosen}: {exc}") from None
    return parse_with_codecs(data)


def with_overrides(settings: Settings, **worker: Any) -> Settings:
    """A copy with some worker settings replaced (command-line options win over the file)."""
    given = {k: v for k, v in worker.items() if v is not None}
    return replace(settings, worker=replace(settings.worker, **given))
