"""The Python client for other apps: enqueue campaigns, follow them, read their results."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from dispatcher.account_api import QueryError, balance, cancel_batches
from dispatcher.admission import Admission
from dispatcher.archive import Archive
from dispatcher.config import Settings, load_settings
from dispatcher.control import Control
from dispatcher.embedded import data_dir_from_env, shared_server
from dispatcher.errors import DispatcherError
from dispatcher.estimate import estimate
from dispatcher.intake import Builder, Prepared
from dispatcher.keys import Keys
from dispatcher.listing import Page, list_campaigns
from dispatcher.model import Campaign, CampaignError, CampaignStatus, Enqueued, Recipient, Result
from dispatcher.retention import NoSuchCampaign, Retention
from dispatcher.runtime import checked_url, connect, is_cluster_url
from dispatcher.staging import EnqueueInProgress, NothingToSend, Staging
from dispatcher.staging import enqueue as staged_enqueue
from dispatcher.store import Store, as_str

__all__ = ["CampaignNotFound", "Client", "EnqueueInProgress", "NothingToSend"]


class CampaignNotFound(DispatcherError, KeyError):
    def __init__(self, campaign_id: str) -> None:
        super().__init__(campaign_id)
        self.campaign_id = campaign_id

    def __str__(self) -> str:
        return f"no campaign {self.campaign_id!r}"


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
            # A cluster URL needs a RedisCluster; a plain one keeps the plain client.
            redis = connect(url) if is_cluster_url(url) else Redis.from_url(url)
            self._owns_redis = True
        else:
            self._owns_redis = False
        self.redis = redis
        admission = Admission(redis, self.settings, sorted(self.settings.providers))
        archive = Archive(self.settings.archive_dir, self.settings.prefix)
        keys = Keys.of(self.settings, redis)
        self.store = Store(redis, keys, admission, archive)
        self.control = Control(redis, keys)
        self.retention = Retention(redis, self.settings, self.store)

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
        self,
        campaign: Campaign | dict[str, Any],
        *,
        recipients: Iterable[Recipient | str | dict[str, Any]] | None = None,
        allow_empty: bool = True,
    ) -> Enqueued:
        """Validate and enqueue; raises CampaignError (naming the field) and leaves nothing.

        The recipients are the campaign's own list, or ``recipients``: any iterable of
        number strings, :class:`Recipient` or ``{"number": …}`` objects (a generator, a
        file reader), read once and never held whole, for lists of millions; the campaign's
        own list must then be empty. They are validated and written as they are read
        (staging.py), and the campaign appears at once when the last is in: an error midway
        (a bad item names ``recipients[i]``) leaves nothing visible.

        Returns the campaign id with the validation counts. With ``idempotency_key`` set,
        a repeat returns the first campaign's answer (``existing=True``) and reads nothing;
        while the first is still being enqueued, a repeat raises :class:`EnqueueInProgress`.
        With ``allow_empty=False`` a campaign whose every recipient is invalid is refused
        (:class:`NothingToSend`) rather than enqueued with only ``invalid`` results.
        """
        if not isinstance(campaign, Campaign):
            if recipients is not None and isinstance(campaign, dict):
                campaign = {"recipients": [], **campaign}
            campaign = Campaign.from_dict(campaign)
        if recipients is not None and campaign.recipients:
            raise CampaignError("recipients", "give them in the campaign or as recipients=")
        builder = await asyncio.to_thread(self._builder, campaign, listed=recipients is None)
        source = campaign.recipients if recipients is None else recipients
        return await staged_enqueue(
            self.store, self.settings, builder, source, allow_empty=allow_empty,
            check=self._balance_check(campaign),
        )  # fmt: skip

    def staging(self, campaign: Campaign) -> Staging:
        """For a list that arrives a piece at a time (an upload): ``async with`` it; unless
        its ``existing`` is set (a repeated idempotency key), ``await add(piece)`` as the
        pieces come, then ``await publish(allow_empty=…)``. Errors in the campaign's fields
        raise here, before anything is written."""
        builder = self._builder(campaign, listed=False)
        return Staging(self.store, self.settings, builder, self._balance_check(campaign))

    def _builder(self, campaign: Campaign, *, listed: bool) -> Builder:
        return Builder(
            campaign, self.settings, listed=listed, count_segments=campaign.check_balance
        )

    def _balance_check(self, campaign: Campaign) -> Callable[[Prepared], Awaitable[None]] | None:
        if not campaign.check_balance:
            return None

        async def check(prepared: Prepared) -> None:
            await self._check_balance(campaign, prepared)

        return check

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
        meta = await self.store.meta(campaign_id)
        if "total" in meta and meta.get("state"):  # not one still staging (staging.py)
            return meta["state"]
        return (await self.status(campaign_id)).state

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

    async def archive(self, campaign_id: str, *, force: bool = False) -> Path:
        """Move a finished campaign from Redis to its archive file now, whatever its
        retention; its status and results then read from the file. ``force``: one not
        finished too (what it has not sent is never sent). Returns the file's path."""
        try:
            return await self.retention.archive_campaign(campaign_id, force=force)
        except NoSuchCampaign:
            raise CampaignNotFound(campaign_id) from None

    async def purge(self, campaign_id: str, *, force: bool = False) -> bool:
        """Delete a finished (or, with ``force``, any) campaign for good: its Redis keys,
        its index entries and its archive file. True if an archive file was deleted."""
        try:
            return await self.retention.purge(campaign_id, force=force)
        except NoSuchCampaign:
            raise CampaignNotFound(campaign_id) from None

    async def resume(self, campaign_id: str) -> int:
        """Re-queue a paused campaign's held chunks; the number re-queued, -1 if not paused."""
        try:
            return await self.control.resume(campaign_id)
        except KeyError:
            raise CampaignNotFound(campaign_id) from None
