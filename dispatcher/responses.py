"""Handset replies (MO) read back by batch, beside the ones pushed to us.

A push can be lost (our webhooks down, a firewall, the provider never configured with our
URL), so for codecs with ``ReplyPolling`` the poller also asks for the replies to the
batches (provider campaigns) we sent, in calls of up to the codec's ``replies_most``, least
recently asked first, for ``MAX_AGE_MS`` after a campaign was created. Each call is a
list call: it takes the account's poll lock like the status pages (poller.py), so the
provider sees no more list calls than before. A reply is stored once in the ``inbound``
stream, under the same id as its push (the codec makes both), with the number we sent to
and the recipient it answers; one whose message the status pages have not indexed yet is
left for the next call, which returns it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from dispatcher.keys import Keys, parse_batch_member
from dispatcher.providers.base import Inbound
from dispatcher.providers.capabilities import ReplyPolling
from dispatcher.rows import bucket
from dispatcher.store import as_str
from dispatcher.tracking import Tracker

log = logging.getLogger("dispatcher.responses")
#: Replies are looked for this long after a campaign was created (the reports' 72 h, and
#: a day for late answers).
MAX_AGE_MS = 4 * 24 * 3600 * 1000


#: (provider, account, path, body) → the answer's body.
Post = Callable[[str, str, str, bytes], Awaitable[bytes]]


def now_ms() -> int:
    return int(time.time() * 1000)


class Responses:
    def __init__(self, redis: Redis, keys: Keys, tracker: Tracker, post: Post) -> None:
        self.redis = redis
        self.keys = keys
        self.tracker = tracker
        self.post = post

    def _key(self, provider: str, account: str, member: str) -> str:
        """The responses set of the partition of ``member``'s campaign."""
        part = self.keys.part(parse_batch_member(member)[1])
        return part.responses(self.keys.listed(provider, "sms"), account)

    async def due(self, provider: str, account: str, every_ms: int, most: int) -> list[str]:
        """Batches (``batch|cid|chunk``) not asked for in the last ``every_ms``, oldest
        asked first (across the partitions), at most one call's worth."""
        listed, until = self.keys.listed(provider, "sms"), now_ms() - every_ms
        found: list[tuple[float, str]] = []
        for part in self.keys.parts:
            got: Any = await self.redis.zrangebyscore(
                part.responses(listed, account), "-inf", until, start=0, num=most,
                withscores=True,
            )  # fmt: skip
            found += [(float(score), as_str(m)) for m, score in got]
        return [m for _score, m in sorted(found)[:most]]

    async def ask(
        self, provider: str, account: str, members: list[str], codec: ReplyPolling
    ) -> dict[str, int]:
        """One call for these batches' replies; store the new ones. Returns a tally."""
        live = await self._prune(provider, account, members)
        tally = {"stored": 0, "repeated": 0, "not_indexed": 0}
        if not live:
            return tally
        batches = sorted({parse_batch_member(m)[0] for m in live})
        asked_at = now_ms()
        for m in live:  # to the back
            await self.redis.zadd(self._key(provider, account, m), {m: asked_at}, xx=True)
        body = codec.replies_request(batches)
        replies = codec.parse_replies(await self.post(provider, account, codec.replies_path, body))
        asked = set(batches)
        for reply in replies:
            if reply.batch not in asked:
                continue  # not one we asked about: not ours to store
            found = await self.tracker.index.get(provider, reply.message_id)
            number = await self._number(*found) if found else None
            if number is None:
                tally["not_indexed"] += 1  # comes again with the next call
                continue
            message = Inbound(
                provider,
                reply.id,
                number,
                reply.text,
                message_id=reply.message_id,
            )
            tally["stored" if await self.tracker.add_inbound(message) else "repeated"] += 1
        return tally

    async def _number(self, cid: str, index: int) -> str | None:
        """The number a recipient with a send result was sent to."""
        if await self.redis.hget(*bucket(self.keys.results(cid), index)) is None:
            return None
        return await self.tracker.sent_to(cid, index)

    async def _prune(self, provider: str, account: str, members: list[str]) -> list[str]:
        """The members still worth asking for: their campaign exists and is young enough."""
        live = []
        for m in members:
            _batch, cid, _chunk = parse_batch_member(m)
            created = await self.redis.hget(self.keys.meta(cid), "created_at")
            if created is None or now_ms() - int(created) > MAX_AGE_MS:
                await self.redis.zrem(self._key(provider, account, m), m)
            else:
                live.append(m)
        return live
