"""After the send: delivery reports and inbound messages into Redis.

A report is applied by one Lua script that moves the recipient's rank (model.Rank: 1
accepted, 2 on its way, 3 final) only forward, so a late "delivering" never overwrites
"delivered" and a report pushed five times counts once. Reports name their recipient in one
of three ways, resolved here: our ``uid`` (campaign and index), ``CUSTOMER_BODY`` (campaign
and chunk, plus the number), or only the provider's message id (list APIs), through the
message index that the record script fills.

Whoever can reach the webhooks can push anything, so a report lands only where everything
it names agrees with what we sent (:meth:`Tracker.check`): the campaign went out through
the report's provider, it has that recipient, the number is the one we sent to it, and the
provider's message id is the one it gave us. A report that contradicts any of these is
refused and writes nothing; one about a campaign or message we do not know is answered and
dropped (the provider would otherwise push it again for days).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from redis.asyncio import Redis

from dispatcher.keys import Keys, is_cluster_client
from dispatcher.lua import ROW_RANK, script
from dispatcher.model import Result, Status, rank
from dispatcher.msgindex import ref
from dispatcher.providers.base import Inbound, Report
from dispatcher.providers.common import same_number
from dispatcher.rows import LUA_BUCKETS, bucket, pack_report, unpack_row
from dispatcher.sent import CACHED_RECIPIENTS, SentNumbers
from dispatcher.store import DONE, announce, as_str
from dispatcher.unknown import Park, UnknownStore

log = logging.getLogger("dispatcher.tracking")
INBOUND_MAXLEN = 1_000_000
#: Providers retry a push for up to 72 h after a day: remember inbound ids longer than that.
SEEN_TTL_S = 5 * 24 * 3600
#: An inbound message is claimed this long before it is stored: if storing fails, the
#: provider's next push (a minute later at the soonest) is not taken for a repeat.
CLAIM_TTL_S = 30
#: Reports :meth:`Tracker.apply_many` (and an SMPP session's receipts, sessions.py) checks
#: and applies in one batch.
BATCH = 256


class ApplyKeys(NamedTuple):
    """The apply script's KEYS, in order (its Lua locals are made from these fields)."""

    meta: str
    state: str
    results: str
    reports: str
    finals: str
    events: str
    parked: str


_APPLY = script(
    """
-- ARGV: cid, index, rank, status, report
-- 1 applied, 0 stale, -1 no such recipient, 2 its fate is unknown: settle that first,
-- 3 applied and the campaign is done by it (logged by the caller's process, once).
if redis.call('EXISTS', meta) == 0 then return -1 end
local index = tonumber(ARGV[2])
if index < 0 or index >= tonumber(redis.call('HGET', meta, 'entries') or '0') then
  return -1
end
if redis.call('HEXISTS', parked, ARGV[2]) == 1 then return 2 end
local new = tonumber(ARGV[3])
local skey, field = bucket(state, index)
local held = tonumber(redis.call('HGET', skey, field) or '@RANK_NONE@')
if new <= math.max(held, row_rank(redis.call('HGET', (bucket(results, index)), field))) then
  return 0
end
redis.call('HSET', skey, field, new)
redis.call('HSET', (bucket(reports, index)), field, ARGV[5])
if new == @RANK_FINAL@ then
  redis.call('HINCRBY', finals, ARGV[4], 1)
  local final = redis.call('HINCRBY', meta, 'final', 1)
  if final >= tonumber(redis.call('HGET', meta, 'total')) then
    if tonumber(redis.call('HGET', meta, 'recorded')) >= final then
      local t = redis.call('TIME')  -- finished: its retention counts from now (retention.py)
      local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      redis.call('HSETNX', meta, 'done_at', ms)
    end
    redis.call('XADD', events, 'MAXLEN', '~', @MAXLEN@, '*', 'c', ARGV[1], 'e', 'done')
    if final - 1 < tonumber(redis.call('HGET', meta, 'total')) then return 3 end
  end
end
return 1
""",
    keys=ApplyKeys._fields,
    uses=LUA_BUCKETS + ROW_RANK,
)


class Applied(StrEnum):
    APPLIED = "applied"  # the recipient's status moved forward
    STALE = "stale"  # a repeat, or older than what we have
    UNKNOWN = "unknown"  # no recipient of ours: not our message, or long forgotten
    # Refused: the report contradicts what we sent; nothing is written.
    WRONG_PROVIDER = "wrong_provider"  # the campaign went out through another provider
    WRONG_RECIPIENT = "wrong_recipient"  # the campaign sent no such recipient
    WRONG_NUMBER = "wrong_number"  # not the number we sent that recipient
    WRONG_MESSAGE = "wrong_message_id"  # not the id the provider gave that message


REFUSED = frozenset(
    {Applied.WRONG_PROVIDER, Applied.WRONG_RECIPIENT, Applied.WRONG_NUMBER, Applied.WRONG_MESSAGE}
)


@dataclass(frozen=True, slots=True)
class Target:
    """The recipient a report is about, checked: campaign, index, the number we sent to."""

    cid: str
    index: int
    number: str
    sent_id: str | None = None  # the message id of its send result, if it has one


def _by_id(report: Report) -> bool:
    """Whether ``report`` names its recipient by the provider's message id alone (a list
    record): the message index finds it."""
    return report.campaign_id is None and bool(report.message_id)


class Tracker:
    def __init__(self, redis: Redis, keys: Keys, cached: int = CACHED_RECIPIENTS) -> None:
        self.redis = redis
        self.keys = keys
        self.unknown = UnknownStore(redis, keys)
        self.index = self.unknown.index
        self.sent = SentNumbers(redis, keys, cached)
        self._apply = redis.register_script(_APPLY)

    async def sent_to(self, cid: str, index: int) -> str | None:
        """The number recipient ``index`` of campaign ``cid`` was sent to (its chunk's)."""
        return await self.sent.number(cid, index)

    async def _settle_parked(self, provider: str, target: Target, report: Report) -> None:
        """A report about a recipient whose fate was unknown proves the provider has its
        message: record it accepted, with the report's message id. Only when the report
        names a number (checked to be the one we sent by :meth:`check`)."""
        raw = await self.redis.hget(self.keys.parked(target.cid), str(target.index))
        if raw is None or not report.number:
            return
        park = Park.parse(target.index, as_str(raw))
        result = Result(
            target.index, target.number, Status.ACCEPTED, report.message_id, sent_at=report.at,
            error=f"fate was unknown ({park.reason}); a report shows {provider} has it",
        )  # fmt: skip
        await self.unknown.found(target.cid, provider, [result])

    async def check(self, provider: str, report: Report) -> Target | Applied:
        """The recipient ``report`` is about, if everything it names agrees with what we
        sent; else UNKNOWN (no campaign or message of ours) or the refusal (in
        :data:`REFUSED`). The campaign's provider is checked before its recipients, so a
        push naming another provider's campaign is refused whatever else it says."""
        [verdict] = await self.check_many(provider, [report])
        return verdict

    def _read(self, pipe: Any, cid: str, index: int | None) -> None:
        """Queue what :meth:`_decide` needs: the campaign's provider and size, and the
        recipient's send result and parking (when the report names the recipient)."""
        k = self.keys
        pipe.hmget(k.meta(cid), ["provider", "entries", "chunks"])
        if index is not None:
            pipe.hget(*bucket(k.results(cid), index))
            pipe.hget(k.parked(cid), str(index))

    async def _decide(
        self, provider: str, report: Report, cid: str, index: int | None, got: list[Any]
    ) -> Target | Applied:
        """:meth:`check`'s verdict from what :meth:`_read` read."""
        k = self.keys
        (owner, entries, chunks), *rest = got
        if owner is None:
            return Applied.UNKNOWN
        if as_str(owner) != provider:
            return Applied.WRONG_PROVIDER
        if index is None:  # CUSTOMER_BODY: the campaign's chunk, and the number in it
            if report.chunk is None or not report.number:
                return Applied.WRONG_RECIPIENT
            index = (await self.sent.chunk(cid, report.chunk)).index_of(report.number)
            if index is None:
                return Applied.WRONG_NUMBER  # not a number that chunk sent to
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hget(*bucket(k.results(cid), index))
                pipe.hget(k.parked(cid), str(index))
                rest = await pipe.execute()
        row, parked = rest
        if not 0 <= index < int(entries or 0):
            return Applied.WRONG_RECIPIENT
        stored = unpack_row(index, None, row) if row is not None else None
        sent_id = stored.message_id if stored else None
        # A row leaves the number to the chunk (rows.py) but an invalid recipient's, which
        # no chunk holds: the chunk is read only when the number is needed.
        number = stored.number if stored else ""
        if stored is None or (report.number is not None and not number):
            park = Park.parse(index, as_str(parked)).chunk if parked else None
            found = await self.sent.number(
                cid, index, int(chunks or 0), int(entries), hints=(report.chunk, park)
            )
            if found is None:
                return Applied.WRONG_RECIPIENT  # a duplicate, or never in a chunk
            number = found
        if report.number is not None and not same_number(str(report.number), number):
            return Applied.WRONG_NUMBER
        if report.message_id and sent_id and report.message_id != str(sent_id):
            return Applied.WRONG_MESSAGE
        return Target(cid, index, number, str(sent_id) if sent_id else None)

    async def write(
        self, provider: str, report: Report, target: Target, *, index_message: bool = False
    ) -> Applied:
        """Apply a report :meth:`check` placed; with ``index_message``, also remember its
        message id (for MO responses that name the message they answer)."""
        if index_message and report.message_id:
            await self.index.add(provider, {report.message_id: ref(target.cid, target.index)})
        keys, args = self._apply_call(report, target)
        return await self._applied(
            provider, report, target, int(await self._apply(keys=keys, args=args))
        )

    def _apply_call(self, report: Report, target: Target) -> tuple[ApplyKeys, list[Any]]:
        k, cid = self.keys, target.cid
        keys = ApplyKeys(
            meta=k.meta(cid), state=k.state(cid), results=k.results(cid),
            reports=k.reports(cid), finals=k.finals(cid), events=k.part(cid).events,
            parked=k.parked(cid),
        )  # fmt: skip
        blob = pack_report(report, sent_id=target.sent_id)
        return keys, [cid, target.index, rank(report.status), report.status, blob]

    async def _applied(self, provider: str, report: Report, target: Target, got: int) -> Applied:
        """What the apply script's answer ``got`` comes to: a recipient whose fate was
        unknown is settled by the report, then the report applied again; a campaign the
        report finished is announced."""
        if got == 2:
            # Settled here, or meanwhile by another report (one earlier in the same batch):
            # either way the report applies now. Still parked (it names no number to prove
            # the provider has the message): 2 again, unknown.
            await self._settle_parked(provider, target, report)
            keys, args = self._apply_call(report, target)
            got = int(await self._apply(keys=keys, args=args))
        if got == 3:
            await announce(self.redis, self.keys, target.cid, DONE)
            got = 1
        return {1: Applied.APPLIED, 0: Applied.STALE}.get(got, Applied.UNKNOWN)

    async def apply(self, provider: str, report: Report, *, index_message: bool = False) -> Applied:
        """Check ``report`` and apply it if it agrees with what we sent."""
        target = await self.check(provider, report)
        if isinstance(target, Applied):
            return target
        return await self.write(provider, report, target, index_message=index_message)

    async def apply_many(
        self, provider: str, reports: Sequence[Report], *, index_messages: bool = False
    ) -> dict[Applied, int]:
        tally: dict[Applied, int] = {}
        for at in range(0, len(reports), BATCH):
            part = reports[at : at + BATCH]
            for outcome in await self.apply_batch(provider, part, index_messages=index_messages):
                tally[outcome] = tally.get(outcome, 0) + 1
        return tally

    async def apply_batch(
        self, provider: str, reports: Sequence[Report], *, index_messages: bool = False
    ) -> list[Applied]:
        """:meth:`apply` of each report, in their order, in a few round trips rather than
        three a report (:meth:`check_many`, then :meth:`write_many`)."""
        verdicts = await self.check_many(provider, reports)
        return await self.write_many(provider, list(zip(reports, verdicts, strict=True)),
                                     index_messages=index_messages)  # fmt: skip

    async def check_many(self, provider: str, reports: Sequence[Report]) -> list[Target | Applied]:
        """:meth:`check` of each report, in two pipelines: the ids of those named by a
        message id alone (a list record) looked up, then the checks' reads. Reads only: a
        cluster client pipelines them across slots as well."""
        wanted = [r.message_id or "" for r in reports if _by_id(r)]
        found = iter(await self.index.get_many(provider, wanted))
        places: list[tuple[str, int | None] | None] = []
        for r in reports:
            if _by_id(r):
                places.append(next(found))
            else:
                places.append(None if r.campaign_id is None else (r.campaign_id, r.index))
        async with self.redis.pipeline(transaction=False) as pipe:
            for place in places:
                if place is not None:
                    self._read(pipe, *place)
            got = iter(await pipe.execute())
        verdicts: list[Target | Applied] = []
        for r, place in zip(reports, places, strict=True):
            if place is None:
                verdicts.append(Applied.UNKNOWN)
                continue
            cid, index = place
            read = [next(got)] + ([next(got), next(got)] if index is not None else [])
            verdicts.append(await self._decide(provider, r, cid, index, read))
        return verdicts

    async def write_many(
        self,
        provider: str,
        placed: Sequence[tuple[Report, Target | Applied]],
        *,
        index_messages: bool = False,
    ) -> list[Applied]:
        """:meth:`write` of each report :meth:`check_many` placed (a verdict that is not a
        target is its own outcome), the apply scripts in one pipeline. Each script still
        checks the recipient's rank and parking itself, so two reports of one recipient
        apply as they would one after the other. A cluster client runs no script in a
        pipeline: there, one after another."""
        targets = [(r, v) for r, v in placed if isinstance(v, Target)]
        if is_cluster_client(self.redis):
            return [
                v if isinstance(v, Applied)
                else await self.write(provider, r, v, index_message=index_messages)
                for r, v in placed
            ]  # fmt: skip
        if index_messages:
            await self.index.add(
                provider, {r.message_id: ref(t.cid, t.index) for r, t in targets if r.message_id}
            )
        answers: Iterator[Any] = iter(())
        if targets:
            async with self.redis.pipeline(transaction=False) as pipe:
                for r, t in targets:
                    keys, args = self._apply_call(r, t)
                    await self._apply(keys=keys, args=args, client=pipe)
                answers = iter(await pipe.execute())
        return [
            v if isinstance(v, Applied) else await self._applied(provider, r, v, int(next(answers)))
            for r, v in placed
        ]

    async def link(self, message: Inbound) -> tuple[str, Applied | None]:
        """The recipient (``cid.index``, or "") an inbound message answers, and the refusal
        if the message names one of ours that was sent to another number."""
        if not message.message_id:
            return "", None
        found = await self.index.get(message.provider, message.message_id)
        if found is None:
            return "", None
        cid, position = found
        named = Report(
            Status.SENT, "", message_id=message.message_id, campaign_id=cid,
            index=position, number=message.mobile,
        )  # fmt: skip
        target = await self.check(message.provider, named)
        if isinstance(target, Applied):
            return "", None if target is Applied.UNKNOWN else target
        return f"{target.cid}.{target.index}", None

    async def add_inbound(self, message: Inbound, recipient: str | None = None) -> bool:
        """Store an inbound message once (providers push again on any doubt); True if new.

        ``recipient`` is what :meth:`link` found (looked up when None); a message that
        names a recipient of ours sent to another number is not stored (False).
        """
        k = self.keys
        if recipient is None:
            recipient, refusal = await self.link(message)
            if refusal is not None:
                log.warning("%s inbound message refused: %s", message.provider, refusal.value)
                return False
        seen = k.seen(message.provider, message.id)
        if not await self.redis.set(seen, 1, nx=True, ex=CLAIM_TTL_S):
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
        if recipient:
            fields["recipient"] = recipient  # campaign.index the message answers
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(k.inbound, fields, maxlen=INBOUND_MAXLEN, approximate=True)
            pipe.expire(seen, SEEN_TTL_S)
            await pipe.execute()
        return True
