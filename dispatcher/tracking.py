"""After the send: delivery reports and inbound messages into Redis.

A report is applied by one Lua script that moves the recipient's rank only forward (1
accepted, 2 on its way, 3 final), so a late "delivering" never overwrites "delivered" and a
report pushed five times counts once. Reports name their recipient in one of three ways,
resolved here: our ``uid`` (campaign and index), ``CUSTOMER_BODY`` (campaign and chunk, plus
the number), or only the provider's message id (list APIs), through the message index that
the record script fills.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import orjson
from redis.asyncio import Redis

from dispatcher.keys import Keys
from dispatcher.model import Result, Status, rank
from dispatcher.providers.base import Inbound, Report
from dispatcher.store import EVENTS_MAXLEN, as_str
from dispatcher.unknown import Park, UnknownStore

log = logging.getLogger("dispatcher.tracking")
INBOUND_MAXLEN = 1_000_000
#: Providers retry a push for up to 72 h after a day: remember inbound ids longer than that.
SEEN_TTL_S = 5 * 24 * 3600

_APPLY = """
-- KEYS: meta, state, reports, finals, events, parked; ARGV: cid, index, rank, status, report
-- 1 applied, 0 stale, -1 no such recipient, 2 its fate is unknown: settle that first.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local index = tonumber(ARGV[2])
if index < 0 or index >= tonumber(redis.call('HGET', KEYS[1], 'entries') or '0') then
  return -1
end
if redis.call('HEXISTS', KEYS[6], ARGV[2]) == 1 then return 2 end
local new = tonumber(ARGV[3])
if new <= tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], new)
redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
if new == 3 then
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
  local final = redis.call('HINCRBY', KEYS[1], 'final', 1)
  if final >= tonumber(redis.call('HGET', KEYS[1], 'total')) then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', @MAXLEN@, '*', 'c', ARGV[1], 'e', 'done')
  end
end
return 1
""".replace("@MAXLEN@", str(EVENTS_MAXLEN))


class Applied(StrEnum):
    APPLIED = "applied"  # the recipient's status moved forward
    STALE = "stale"  # a repeat, or older than what we have
    UNKNOWN = "unknown"  # no recipient of ours: not our message, or long forgotten


class Tracker:
    def __init__(self, redis: Redis, keys: Keys, chunk_cache: int = 256) -> None:
        self.redis = redis
        self.keys = keys
        self.unknown = UnknownStore(redis, keys)
        self._apply = redis.register_script(_APPLY)
        self._chunks: OrderedDict[tuple[str, int], dict[str, int]] = OrderedDict()
        self._chunk_cache = chunk_cache

    async def _chunk_numbers(self, cid: str, chunk: int) -> dict[str, int]:
        """number → recipient index for one chunk (cached: reports come per SMS_UID)."""
        key = (cid, chunk)
        numbers = self._chunks.get(key)
        if numbers is None:
            blob = await self.redis.hget(self.keys.chunks(cid), str(chunk))
            numbers = {m[1]: m[0] for m in orjson.loads(blob)} if blob else {}
            self._chunks[key] = numbers
            if len(self._chunks) > self._chunk_cache:
                self._chunks.popitem(last=False)
        else:
            self._chunks.move_to_end(key)
        return numbers

    async def _settle_parked(self, provider: str, cid: str, index: int, report: Report) -> bool:
        """A report about a recipient whose fate was unknown proves the provider has its
        message: record it accepted, with the report's message id. Only when the report's
        number is the one we sent to that recipient."""
        raw = await self.redis.hget(self.keys.parked(cid), str(index))
        if raw is None or not report.number:
            return False
        park = Park.parse(index, as_str(raw))
        if (await self._chunk_numbers(cid, park.chunk)).get(report.number) != index:
            return False
        result = Result(
            index, report.number, Status.ACCEPTED, report.message_id, sent_at=report.at,
            error=f"fate was unknown ({park.reason}); a report shows {provider} has it",
        )  # fmt: skip
        return await self.unknown.found(cid, provider, [result]) > 0

    async def locate(self, provider: str, report: Report) -> tuple[str, int] | None:
        """The campaign and recipient index a report is about, or None."""
        if report.campaign_id is not None and report.index is not None:
            return report.campaign_id, report.index
        if report.campaign_id is not None and report.chunk is not None and report.number:
            index = (await self._chunk_numbers(report.campaign_id, report.chunk)).get(report.number)
            return (report.campaign_id, index) if index is not None else None
        if report.message_id:
            ref = await self.redis.hget(self.keys.message_index(provider), report.message_id)
            if ref:
                cid, _, position = as_str(ref).rpartition(".")
                return cid, int(position)
        return None

    async def apply(self, provider: str, report: Report, *, index_message: bool = False) -> Applied:
        """Apply ``report``; with ``index_message``, also remember its message id (for MO
        responses that name the message they answer)."""
        where = await self.locate(provider, report)
        if where is None:
            return Applied.UNKNOWN
        cid, index = where
        k = self.keys
        if index_message and report.message_id:
            await self.redis.hset(k.message_index(provider), report.message_id, f"{cid}.{index}")
        blob = orjson.dumps(
            [
                report.status,
                report.raw_status,
                report.error_code,
                report.error,
                report.at,
                report.message_id,
            ]
        )
        keys = [k.meta(cid), k.state(cid), k.reports(cid), k.finals(cid), k.events, k.parked(cid)]
        args: list[Any] = [cid, index, rank(report.status), report.status, blob]
        got = int(await self._apply(keys=keys, args=args))
        if got == 2:
            if not await self._settle_parked(provider, cid, index, report):
                return Applied.UNKNOWN
            got = int(await self._apply(keys=keys, args=args))
        return {1: Applied.APPLIED, 0: Applied.STALE}.get(got, Applied.UNKNOWN)

    async def apply_many(
        self, provider: str, reports: Sequence[Report], *, index_messages: bool = False
    ) -> dict[Applied, int]:
        tally: dict[Applied, int] = {}
        for report in reports:
            outcome = await self.apply(provider, report, index_message=index_messages)
            tally[outcome] = tally.get(outcome, 0) + 1
        return tally

    async def add_inbound(self, message: Inbound) -> bool:
        """Store an inbound message once (providers push again on any doubt); True if new."""
        k = self.keys
        fresh = await self.redis.set(
            k.seen(message.provider, message.id), 1, nx=True, ex=SEEN_TTL_S
        )
        if not fresh:
            return False
        fields: dict[Any, Any] = {
            "provider": message.provider,
            "id": message.id,
            "mobile": message.mobile,
            "text": message.text,
            "at": message.at or "",
            "message_id": message.message_id or "",
            "keyword": message.keyword or "",
        }
        if message.message_id:
            ref = await self.redis.hget(k.message_index(message.provider), message.message_id)
            if ref:
                fields["recipient"] = as_str(ref)  # campaign.index the message answers
        await self.redis.xadd(k.inbound, fields, maxlen=INBOUND_MAXLEN, approximate=True)
        return True
