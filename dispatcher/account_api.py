"""Read-only account queries (``python -m dispatcher provider NAME QUERY``): Smsclouds'
routes, countries and user credit, Cloud Aten's and YCloud's balance."""

from __future__ import annotations

from typing import Any

import orjson

from dispatcher.config import ConfigError, Settings
from dispatcher.providers import CODECS
from dispatcher.providers.base import HttpRequest
from dispatcher.transport import Transport, TransportError, client_tls


class QueryError(RuntimeError):
    pass


def account_transport(
    settings: Settings, provider: str, account: str, pool_size: int = 1
) -> Transport:
    """An HTTP session to the provider as this account (its key in the codec's headers)."""
    ps = settings.provider(provider)
    return Transport(
        ps.base_url,
        CODECS[provider].headers(ps.account(account).key(provider)),
        pool_size=pool_size,
        timeout=ps.timeout_seconds,
        connect_timeout=ps.connect_timeout_seconds,
        ssl_context=client_tls(ps.tls_cert, ps.tls_key, ps.tls_ca),
    )


async def query(settings: Settings, provider: str, account: str, name: str) -> Any:
    settings.provider(provider)  # a clear error for a provider that is not configured
    codec = CODECS[provider]
    path = codec.queries.get(name)
    if path is None:
        known = ", ".join(sorted(codec.queries)) or "none"
        raise ConfigError(f"{provider} has no query {name!r} (known: {known})")
    transport = account_transport(settings, provider, account)
    try:
        status, body = await transport.send(HttpRequest("GET", path, None, ()))
    except TransportError as exc:
        raise QueryError(f"{provider} {name}: {exc}") from None
    finally:
        await transport.close()
    if status != 200:
        raise QueryError(f"{provider} {name}: HTTP {status}: {body[:300].decode(errors='replace')}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise QueryError(f"{provider} {name}: the answer is not JSON") from None


def balance_of(provider: str, answer: Any) -> float | None:
    """The credit left, from the provider's balance (Cloud Aten, YCloud) or user (Smsclouds)
    answer; None if the answer carries none."""
    data = answer.get("data", answer) if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        return None
    value = data.get("credit" if provider == "smsclouds" else "amount")
    if value is None and isinstance(answer, dict):
        value = answer.get("amount")  # YCloud's second example: the object on its own
    return float(value) if isinstance(value, int | float) else None


BALANCE_QUERIES = {"cloudaten": "balance", "ycloud": "balance", "smsclouds": "user"}


async def balance(settings: Settings, provider: str, account: str) -> float:
    """The account's balance, or QueryError if the provider cannot say."""
    name = BALANCE_QUERIES.get(provider)
    if name is None:
        raise QueryError(f"{provider} has no balance API")
    amount = balance_of(provider, await query(settings, provider, account, name))
    if amount is None:
        raise QueryError(f"{provider} answered without a balance")
    return amount


async def cancel_batches(settings: Settings, redis: Any, cid: str) -> dict[str, str]:
    """Ask the provider to cancel a campaign's requests where it can (Smsclouds blaster:
    only while queued). Returns batch id → "cancelled" or what the provider answered."""
    from dispatcher.keys import Keys
    from dispatcher.providers.smsclouds_blaster import cancel_path, parse_cancel
    from dispatcher.store import as_str

    keys = Keys(settings.prefix)
    provider, kind, account = (
        as_str(v) for v in await redis.hmget(keys.meta(cid), ["provider", "kind", "account"])
    )
    if (provider, kind) != ("smsclouds", "blaster"):
        return {}
    members = await redis.zrange(keys.batches(keys.listed(provider, kind), account), 0, -1)
    batches = sorted({b for b, c, _ in (as_str(m).split("|") for m in members) if c == cid})
    transport = account_transport(settings, provider, account)
    answers: dict[str, str] = {}
    try:
        for batch in batches:
            status, body = await transport.send(HttpRequest("POST", cancel_path(batch), b"", ()))
            _ok, answers[batch] = parse_cancel(status, body)
    finally:
        await transport.close()
    return answers
