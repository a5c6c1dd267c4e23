"""The Python client for other apps: enqueue campaigns, follow them, read their results."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from dispatcher.account_api import QueryError, balance, cancel_batches
from dispatcher.admission import Admission
from dispatcher.config import Settings, load_settings
from dispatcher.control import Control
from dispatcher.embedded import data_dir_from_env, shared_server
from dispatcher.errors import DispatcherError
from dispatcher.estimate import estimate
from dispatcher.intake import Prepared, prepare
from dispatcher.keys import Keys
from dispatcher.listing import Page, list_campaigns
from dispatcher.model import Campaign, CampaignError, CampaignStatus, Enqueued, Result
from dispatcher.runtime import checked_url
from dispatcher.store import Store, as_str


class CampaignNotFound(DispatcherError, KeyError):
    def __init__(self, campaign_id: str) -> None:
        super().__init__(campaign_id)
        self.campaign_id = campaign_id

    def __str__(self) -> str:
        return f"no campaign {self.campaign_id!r}"


class NothingToSend(CampaignError):
    """Every recipient is invalid (``Client.enqueue(..., allow_empty=False)``)."""


class Client:
    """``Client(redis_url)``; use as ``async with`` or call ``close()``.

    Redis is ``redis`` if given, else ``redis_url``, else ``$REDIS_URL``, else the embedded
    server the command line uses (the per-user data folder, ``$DISPATCHER_DATA_DIR`` to
    move it): the running one, or one started here exactly as a command would start it
    (which blocks for the moment it takes), and stopped by ``close()`` if nobody else uses it.

    ``settings`` default to ``load_settings()`` (``$DISPATCHER_CONFIG`` or
    ``config/dispatcher.toml``); they give the providers, accounts and chunk sizes.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        settings: Settings | None = None,
        redis: Redis | None = None,
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self._embedded: contextlib.ExitStack | None = None
        if redis is None:
            url = redis_url or os.environ.get("REDIS_URL")
            if url:
                checked_url(url, "redis_url" if redis_url else "REDIS_URL")
            else:
                self._embedded = contextlib.ExitStack()
                url = self._embedded.enter_context(shared_server(data_dir_from_env()))
            redis = Redis.from_url(url)
            self._owns_redis = True
        else:
            self._owns_redis = False
        self.redis = redis
        admission = Admission(redis, self.settings, sorted(self.settings.providers))
        self.store = Store(redis, Keys(self.settings.prefix), admission)
        self.control = Control(redis, Keys(self.settings.prefix))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_redis:
            await self.redis.aclose()
        if self._embedded is not None:
            # Leaving the embedded server (stopping it if we were its last user) waits for it.
            await asyncio.to_thread(self._embedded.close)
            self._embedded = None

    async def enqueue(
        self, campaign: Campaign | dict[str, Any], *, allow_empty: bool = True
    ) -> Enqueued:
        """Validate and enqueue; raises CampaignError (naming the field) and writes nothing.

        Returns the campaign id with the validation counts. With ``idempotency_key`` set,
        a repeat returns the first campaign's answer (``existing=True``) and enqueues nothing.
        With ``allow_empty=False`` a campaign whose every recipient is invalid is refused
        (:class:`NothingToSend`) rather than enqueued with only ``invalid`` results.
        """
        if not isinstance(campaign, Campaign):
            campaign = Campaign.from_dict(campaign)
        # Number validation is CPU work: keep the app's event loop responsive meanwhile.
        prepared = await asyncio.to_thread(prepare, campaign, self.settings)
        return await self.submit(prepared, allow_empty=allow_empty)

    async def submit(self, prepared: Prepared, *, allow_empty: bool = True) -> Enqueued:
        """Enqueue a campaign already validated (``intake.prepare`` or a ``Builder`` fed a
        piece at a time); the checks that need Redis or the provider happen here."""
        campaign = prepared.campaign
        if not allow_empty and prepared.valid == 0:
            first = prepared.invalid[0] if prepared.invalid else None
            example = f" (recipients[{first.index}]: {first.error})" if first else ""
            raise NothingToSend("recipients", f"none of the {prepared.total} is valid{example}")
        if campaign.check_balance:
            await self._check_balance(campaign, prepared)
        return await self.store.enqueue(prepared, self.settings.idempotency_ttl_seconds)

    async def _check_balance(self, campaign: Campaign, prepared: Prepared) -> None:
        """Refuse the campaign if it costs more than the account has (a CampaignError)."""
        cost = estimate(campaign, self.settings, prepared).cost
        if cost is None:
            raise CampaignError(
                "check_balance",
                f"set providers.{campaign.provider}.price_per_segment to know the cost",
            )
        try:
            left = await balance(self.settings, campaign.provider, campaign.account)
        except QueryError as exc:
            raise CampaignError("check_balance", str(exc)) from None
        if cost > left:
            raise CampaignError(
                "check_balance", f"the campaign costs {cost:.4f} and the balance is {left:.4f}"
            )

    async def status(self, campaign_id: str) -> CampaignStatus:
        st = await self.store.status(campaign_id)
        if st is None:
            raise CampaignNotFound(campaign_id)
        return st

    async def campaigns(
        self, limit: int = 20, *, state: str | None = None, cursor: str | None = None
    ) -> Page:
        """The newest ``limit`` campaigns (in ``state`` if given); pass the page's
        ``next_cursor`` back as ``cursor`` for the ones before them."""
        return await list_campaigns(self.store, limit, state=state, cursor=cursor)

    async def state(self, campaign_id: str) -> str:
        """The campaign's state as stored: paused and cancelled stay so once every
        recipient has a result, where :meth:`status` says sent or done."""
        return (await self.store.meta(campaign_id)).get("state") or (
            await self.status(campaign_id)
        ).state

    async def results(self, campaign_id: str, *, after: int = -1) -> AsyncIterator[Result]:
        """Every recipient's result in index order (``pending`` where none yet); with
        ``after``, only those after that index (to go on where a reader stopped)."""
        await self.status(campaign_id)
        async for result in self.store.results(campaign_id, after=after):
            yield result

    async def wait(
        self, campaign_id: str, seconds: float, *, final: bool = False
    ) -> CampaignStatus:
        """Wait, at most ``seconds``, until every recipient has a send result (with
        ``final``: a final status, delivery reports included) or the campaign is paused."""
        st = await self.store.wait(campaign_id, seconds, final=final)
        if st is None:
            raise CampaignNotFound(campaign_id)
        return st

    async def inbound(self, count: int = 100) -> list[dict[str, str]]:
        """The latest ``count`` inbound messages, oldest first. Apps that want every message
        read the stream ``<prefix>inbound`` with their own consumer group."""
        entries: Any = await self.redis.xrevrange(self.store.keys.inbound, count=count)
        return [
            {"entry": as_str(eid), **{as_str(k): as_str(v) for k, v in fields.items()}}
            for eid, fields in reversed(entries or [])
        ]

    async def pause(self, campaign_id: str, reason: str = "paused by operator") -> bool:
        """Send nothing more until resumed (chunks in flight finish). False if it already
        was paused or cancelled."""
        try:
            return await self.control.pause(campaign_id, reason)
        except KeyError:
            raise CampaignNotFound(campaign_id) from None

    async def cancel(self, campaign_id: str) -> int:
        """Send nothing more: what was sent stays recorded, the rest becomes ``cancelled``.
        -1 if it already was cancelled."""
        try:
            return await self.control.cancel(campaign_id)
        except KeyError:
            raise CampaignNotFound(campaign_id) from None

    async def dead(self, campaign_id: str) -> dict[int, str]:
        """Recipients that failed after every attempt (index → reason)."""
        return await self.control.dead(campaign_id)

    async def retry(self, campaign_id: str) -> int:
        """Send the dead-lettered recipients again; how many were queued."""
        try:
            return await self.control.retry(campaign_id)
        except KeyError:
            raise CampaignNotFound(campaign_id) from None

    async def cancel_at_provider(self, campaign_id: str) -> dict[str, str]:
        """For providers that hold a campaign before running it (Smsclouds blaster), ask
        them to cancel it too; provider campaign id → "cancelled" or why it was refused."""
        return await cancel_batches(self.settings, self.redis, campaign_id)

    async def resume(self, campaign_id: str) -> int:
        """Re-queue a paused campaign's held chunks; the number re-queued, -1 if not paused."""
        try:
            return await self.control.resume(campaign_id)
        except KeyError:
            raise CampaignNotFound(campaign_id) from None
