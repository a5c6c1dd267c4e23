"""Polling: statuses that no push brought, read from the providers' list APIs.

The seeds allow a list call once a minute per account, so every call first takes a Redis
lock for that account (``SET NX PX poll_interval``): however many worker processes run, the
provider sees one call per interval. Each call does one page:

* codecs with ``ListPolling`` (an account-wide list API): a page over the window from the
  oldest open campaign's first send to ``poll_after_seconds`` ago; records are matched by
  message id through the index the worker wrote at send time.
* codecs with ``BatchPolling`` (statuses asked per provider campaign): the batch waiting
  longest; it leaves the rotation once all its messages are final. Turn about with those
  pages, the handset replies to the batches sent, for codecs with ``ReplyPolling``
  (responses.py).

A list call settling recipients of unknown fate (reconcile.py) goes before status pages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson
from redis.asyncio import Redis

from dispatcher.account_api import account_transport
from dispatcher.aio import checkpoint
from dispatcher.config import ConfigError, Settings
from dispatcher.keys import Keys, parse_batch_member
from dispatcher.model import FINAL
from dispatcher.providers import KINDS, account_codec
from dispatcher.providers.base import BadPush, Codec, HttpRequest
from dispatcher.providers.capabilities import BatchPolling, ListPolling, ReplyPolling, capability
from dispatcher.reconcile import Reconciler
from dispatcher.responses import Responses
from dispatcher.store import REDIS_ERRORS, as_str
from dispatcher.tracking import Tracker
from dispatcher.transport import Transport, TransportError
from dispatcher.unknown import UnknownStore

log = logging.getLogger("dispatcher.poller")
POLL_ERRORS: tuple[type[BaseException], ...] = (*REDIS_ERRORS, TransportError, BadPush)
TICK_S = 1.0
MAX_AGE_MS = 4 * 24 * 3600 * 1000  # reports stop after 72 h of retries: stop polling then
WINDOW_MARGIN_MS = 60_000


def now_ms() -> int:
    return int(time.time() * 1000)


def counted(tally: Mapping[Any, int]) -> str:
    """``applied=301 stale=2`` for a log line (not the enums' reprs)."""
    return " ".join(f"{k}={v}" for k, v in sorted(tally.items(), key=lambda kv: str(kv[0])))


class Poller:
    def __init__(self, redis: Redis, settings: Settings, tracker: Tracker | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = Keys.of(settings, redis)
        self.tracker = tracker or Tracker(redis, self.keys)
        self.reconciler = Reconciler(
            redis, settings, UnknownStore(redis, self.keys), self.tracker, self
        )
        self.responses = Responses(redis, self.keys, self.tracker, self.post)
        self._transports: dict[tuple[str, str], Transport] = {}
        self._options: dict[str, dict[str, Any]] = {}  # campaign → its options
        self.calls = 0

    def _codec(self, provider: str, account: str, kind: str) -> Codec | None:
        try:
            return account_codec(self.settings, provider, account, kind)
        except KeyError:
            return None  # the account's transport sends no such kind

    def targets(self) -> list[tuple[str, str, str]]:
        """(provider, kind, account) for every list that can be polled."""
        return [
            (name, kind, account)
            for name, kind in sorted(KINDS)
            if name in self.settings.providers
            for account in sorted(self.settings.providers[name].accounts)
            if isinstance(self._codec(name, account, kind), ListPolling | BatchPolling)
        ]

    async def run(self) -> None:
        """Poll until cancelled."""
        try:
            targets = self.targets()
            while True:
                for provider, kind, account in targets:
                    try:
                        await self.tick(provider, account, kind)
                    except POLL_ERRORS as exc:
                        log.warning("polling %s/%s failed: %s", provider, account, exc)
                    except ConfigError as exc:
                        log.debug("not polling %s/%s: %s", provider, account, exc)
                    checkpoint()
                await asyncio.sleep(TICK_S)
        finally:
            await self.close()

    async def close(self) -> None:
        """Close the HTTP sessions (run() does; a Poller that never ran has none)."""
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.close()

    async def lock(self, provider: str, account: str, kind: str = "sms") -> bool:
        """One list call per interval for this list of the account, across processes."""
        ms = int(self.settings.provider(provider).poll_interval_seconds * 1000)
        key = self.keys.poll_lock(self.keys.listed(provider, kind), account)
        return bool(await self.redis.set(key, 1, nx=True, px=ms))

    def _transport(self, provider: str, account: str) -> Transport:
        key = (provider, account)
        transport = self._transports.get(key)
        if transport is None:
            transport = self._transports[key] = account_transport(self.settings, provider, account)
        return transport

    async def get(self, provider: str, account: str, path: str) -> bytes:
        return await self._call(provider, account, HttpRequest("GET", path, None, ()))

    async def post(self, provider: str, account: str, path: str, body: bytes) -> bytes:
        return await self._call(provider, account, HttpRequest("POST", path, body, ()))

    async def _call(self, provider: str, account: str, request: HttpRequest) -> bytes:
        self.calls += 1
        status, body = await self._transport(provider, account).send(request)
        if status != 200:
            raise BadPush("status", f"{provider} list call answered HTTP {status}")
        return body

    async def tick(self, provider: str, account: str, kind: str = "sms") -> bool:
        """One list call for the account if one is due and the lock is free; True if made.
        Settling unknown fates comes first: it holds recipients back, statuses do not."""
        codec = self._codec(provider, account, kind)
        lister = capability(codec, ListPolling)
        if lister is not None:
            if await self.reconciler.tick(provider, kind, account):
                return True
            if await self.reconciler.waiting(provider, kind, account):
                return False
            return await self._list_page(provider, account, kind, lister)
        batches = capability(codec, BatchPolling)
        if batches is not None:
            replies = capability(codec, ReplyPolling)
            return await self._batch(provider, account, kind, batches, replies)
        return False

    # -- an account-wide list -------------------------------------------------------------

    async def _list_page(self, provider: str, account: str, kind: str, codec: ListPolling) -> bool:
        k = self.keys
        ps = self.settings.provider(provider)
        listed = k.listed(provider, kind)
        oldest = await self._oldest([p.open(listed, account) for p in k.parts])
        if oldest is None:
            return False
        until = now_ms() - int(ps.poll_after_seconds * 1000)
        start = int(oldest[1]) - WINDOW_MARGIN_MS
        if until <= start + WINDOW_MARGIN_MS:
            return False  # nothing old enough that a push should already have settled
        if not await self.lock(provider, account, kind):
            return False
        cursor_key = k.poll_cursor(listed, account)
        cursor = {as_str(a): int(b) for a, b in (await self.redis.hgetall(cursor_key)).items()}
        if not cursor:
            cursor = {"from": start, "until": until, "page": 1}
        size = codec.list_page_size
        path = codec.list_request(cursor["page"], cursor["from"], cursor["until"])
        reports = [r.report for r in codec.parse_listed(await self.get(provider, account, path))]
        tally = await self.tracker.apply_many(provider, reports)
        log.info("%s/%s list page %d: %s", provider, account, cursor["page"], counted(tally))
        if len(reports) >= size:
            cursor["page"] += 1
            await self.redis.hset(cursor_key, mapping={k_: str(v) for k_, v in cursor.items()})
        else:
            await self.redis.delete(cursor_key)
            await self._prune_open(listed, account)
        return True

    async def _oldest(self, keys: list[str]) -> tuple[str, float] | None:
        """The member with the lowest score in any of the sorted sets ``keys`` (one per
        partition), and its score."""
        found: list[tuple[float, str]] = []
        for key in keys:
            first: Any = await self.redis.zrange(key, 0, 0, withscores=True)
            found += [(float(score), key) for _m, score in first]
        if not found:
            return None
        score, key = min(found)
        return key, score

    async def _prune_open(self, listed: str, account: str) -> None:
        for part in self.keys.parts:
            await self._prune_open_in(part.open(listed, account))

    async def _prune_open_in(self, key: str) -> None:
        """Drop campaigns that are done, or too old for any report to come."""
        members: Any = await self.redis.zrange(key, 0, -1, withscores=True)
        for cid_raw, score in members:
            cid = as_str(cid_raw)
            final, total = await self.redis.hmget(self.keys.meta(cid), ["final", "total"])
            done = total is None or int(final or 0) >= int(total)
            if done or now_ms() - int(score) > MAX_AGE_MS:
                await self.redis.zrem(key, cid)

    # -- batch by batch -------------------------------------------------------------------

    async def _campaign_options(self, cid: str) -> dict[str, Any]:
        """The campaign's options (as the codec checked them at enqueue), kept: they do
        not change."""
        options = self._options.get(cid)
        if options is None:
            raw = await self.redis.hget(self.keys.meta(cid), "options")
            options = self._options[cid] = orjson.loads(raw) if raw else {}
        return options

    async def _batch(
        self,
        provider: str,
        account: str,
        kind: str,
        codec: BatchPolling,
        replying: ReplyPolling | None,
    ) -> bool:
        k = self.keys
        ps = self.settings.provider(provider)
        due_before = now_ms() - int(ps.poll_after_seconds * 1000)
        listed = k.listed(provider, kind)
        oldest = await self._oldest([p.batches(listed, account) for p in k.parts])
        key = oldest[0] if oldest else k.at(0).batches(listed, account)
        due = await self.redis.zrangebyscore(key, "-inf", due_before, start=0, num=1)
        every_ms = int(ps.poll_interval_seconds * 1000)
        replies = (
            await self.responses.due(provider, account, every_ms, replying.replies_most)
            if replying
            else []
        )
        if not due and not replies:
            return False
        if not await self.lock(provider, account, kind):
            return False
        turn = k.poll_cursor(k.listed(provider, kind), account)
        if replies and (not due or await self.redis.hincrby(turn, "turn", 1) % 2):
            assert replying is not None
            got = await self.responses.ask(provider, account, replies, replying)
            log.info(
                "%s/%s replies to %d campaign(s): %s", provider, account, len(replies), counted(got)
            )
            return True
        member = as_str(due[0])
        batch, cid, chunk = parse_batch_member(member)
        body = await self.get(provider, account, codec.batch_path(batch))
        reports = codec.parse_batch(body, await self._campaign_options(cid))
        at = now_ms()
        placed = [replace(r, campaign_id=cid, chunk=chunk, at=at) for r in reports]
        tally = await self.tracker.apply_many(provider, placed, index_messages=True)
        finished = bool(reports) and all(r.status in FINAL for r in reports)
        if finished or now_ms() - int(await self.redis.zscore(key, member) or 0) > MAX_AGE_MS:
            await self.redis.zrem(key, member)
        else:
            await self.redis.zadd(key, {member: now_ms()}, xx=True)  # to the back of the line
        log.info("%s/%s campaign %s: %s", provider, account, batch, counted(tally))
        return True
