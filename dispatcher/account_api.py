"""Account queries (``python -m dispatcher provider NAME QUERY``): the read-only ``queries``
each codec lists, the balance of the codecs that can read it (``capabilities.Balance``), and
cancelling a campaign's batches at a provider that allows it (``capabilities.Cancelling``)."""

from __future__ import annotations

from typing import Any

import orjson

from dispatcher.config import ConfigError, Settings
from dispatcher.errors import DispatcherError
from dispatcher.providers import CODECS, KINDS
from dispatcher.providers.base import HttpRequest
from dispatcher.providers.capabilities import Balance, Cancelling, capability
from dispatcher.transport import Transport, TransportError, client_tls


class QueryError(DispatcherError, RuntimeError):
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
    """The credit left, from the answer to the provider's balance query; None if the answer
    carries none or the provider has no balance API."""
    codec = capability(CODECS.get(provider), Balance)
    return None if codec is None else codec.balance_of(answer)


async def balance(settings: Settings, provider: str, account: str) -> float:
    """The account's balance, or QueryError if the provider cannot say."""
    codec = capability(CODECS.get(provider), Balance)
    if codec is None:
        raise QueryError(f"{provider} has no balance API")
    answer = await query(settings, provider, account, codec.balance_query)
    amount = codec.balance_of(answer)
    if amount is None:
        raise QueryError(f"{provider} answered without a balance")
    return amount


async def cancel_batches(settings: Settings, redis: Any, cid: str) -> dict[str, str]:
    """Ask the provider to cancel a campaign's requests where its codec can (typically only
    while they are queued there). Returns batch id → "cancelled" or what the provider
    answered; nothing for a campaign whose codec cannot cancel."""
    from dispatcher.keys import Keys, parse_batch_member
    from dispatcher.store import as_str

    keys = Keys.of(settings, redis)
    provider, kind, account = (
        as_str(v) for v in await redis.hmget(keys.meta(cid), ["provider", "kind", "account"])
    )
    codec = capability(KINDS.get((provider, kind)), Cancelling)
    if codec is None:
        return {}
    batches_key = keys.part(cid).batches(keys.listed(provider, kind), account)
    members = await redis.zrange(batches_key, 0, -1)
    batches = sorted(
        {b for b, c, _ in (parse_batch_member(as_str(m)) for m in members) if c == cid}
    )
    transport = account_transport(settings, provider, account)
    answers: dict[str, str] = {}
    try:
        for batch in batches:
            request = HttpRequest("POST", codec.cancel_path(batch), b"", ())
            status, body = await transport.send(request)
            _ok, answers[batch] = codec.parse_cancel(status, body)
    finally:
        await transport.close()
    return answers
