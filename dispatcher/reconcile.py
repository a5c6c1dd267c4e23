"""Settling unknown fates from a provider's list API: one shared scan per account.

The seeds allow one list call a minute per account, so the parked recipients of an account
(every campaign, every worker process) are settled together: a scan reads the records of
the union of their windows, page by page, one page per poll interval under the account's
poll lock, and each page is matched against every parked recipient of the scan's
campaigns. The scan's state (window, page, campaigns) lives in Redis, so whichever worker
gets the lock next reads the next page.

A record matches a parked recipient when the number and the text are the ones we sent, it
was created within the recipient's window, and its message id is not already one of our
recorded messages (the message index). A match is recorded ``accepted`` with that id.
When the scan has read every page, the recipients whose window it covered and that no
record matched did not reach the provider: they are queued again. A window still open when
the scan began waits for the next scan, since the provider may yet create its record.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Protocol

from redis.asyncio import Redis

from dispatcher import chunkblob
from dispatcher.config import Settings
from dispatcher.keys import DEFAULT_LANE, Keys
from dispatcher.model import Result, Status
from dispatcher.providers import account_codec
from dispatcher.providers.capabilities import Listed, ListPolling, capability
from dispatcher.store import as_str
from dispatcher.tracking import Tracker
from dispatcher.unknown import Park, UnknownStore, now_ms

log = logging.getLogger("dispatcher.reconcile")
MAX_CAMPAIGNS = 500  # campaigns one scan covers (the rest wait for the next)


class ListAccess(Protocol):
    """The account's list API under its poll lock (the Poller provides it)."""

    async def lock(self, provider: str, account: str, kind: str) -> bool: ...

    async def get(self, provider: str, account: str, path: str) -> bytes: ...


def _digits(number: str) -> str:
    return number.lstrip("+")


class Reconciler:
    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        store: UnknownStore,
        tracker: Tracker,
        access: ListAccess,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.keys: Keys = store.keys
        self.store = store
        self.tracker = tracker
        self.access = access

    async def _parked(self, cids: list[str]) -> dict[str, dict[int, Park]]:
        return {cid: await self.store.entries(cid) for cid in cids}

    async def tick(self, provider: str, kind: str, account: str) -> bool:
        """One page of the account's scan, if one is due and the lock is free; True if a
        list call was made."""
        codec = capability(account_codec(self.settings, provider, account, kind), ListPolling)
        if codec is None:
            return False  # the account's transport has no list API
        k = self.keys
        listed = k.listed(provider, kind)
        if await self.redis.exists(k.poll_lock(listed, account)):
            return False  # no list call allowed yet: spare Redis the reading below
        skey = k.unknown_scan(listed, account)
        raw: Any = await self.redis.hgetall(skey)
        state: dict[Any, Any] = {as_str(a): as_str(b) for a, b in raw.items()}
        now = now_ms()
        if state:
            cids = state["cids"].split(",")
            parked = await self._parked(cids)
            if not any(parked.values()):  # settled meanwhile (reports): nothing to read
                await self.redis.delete(skey)
                return False
        else:
            members: list[str] = []
            for part in k.parts:
                got = await self.redis.zrange(part.unknown(listed, account), 0, MAX_CAMPAIGNS - 1)
                members += [as_str(m) for m in got]
            parked = await self._parked(members[:MAX_CAMPAIGNS])
            every = [p for parks in parked.values() for p in parks.values()]
            closed = [p for p in every if p.until_ms <= now]
            if not closed:
                return False
            # One list call a minute: rather than spend it on the first window to close, wait
            # for the others to close too, unless the first has waited a poll interval.
            interval_ms = self.settings.provider(provider).poll_interval_seconds * 1000
            if len(closed) < len(every) and now - min(p.until_ms for p in closed) < interval_ms:
                return False
            cids = [cid for cid, parks in parked.items() if parks]
            state = {
                "from": str(min(p.from_ms for p in closed)),
                "until": str(max(p.until_ms for p in closed)),
                "page": "1",
                "started": str(now),
                "cids": ",".join(cids),
            }
        if not await self.access.lock(provider, account, kind):
            return False
        await self.redis.hset(skey, mapping=state)
        start, until, page = int(state["from"]), int(state["until"]), int(state["page"])
        records = codec.parse_listed(
            await self.access.get(provider, account, codec.list_request(page, start, until))
        )
        found = await self._match(provider, codec, parked, records)
        tally = await self.tracker.apply_many(provider, [r.report for r in records])
        log.info(
            "%s/%s unknown-fate scan page %d (%d records): %d found; statuses: %s",
            provider, account, page, len(records), found,
            ", ".join(f"{outcome.value} {n}" for outcome, n in tally.items()) or "none",
        )  # fmt: skip
        if len(records) >= codec.list_page_size:
            await self.redis.hset(skey, "page", str(page + 1))
            return True
        await self.redis.delete(skey)
        await self._absent(
            provider, listed, account, parked, start=start, until=until,
            started=int(state["started"]),
        )  # fmt: skip
        return True

    async def waiting(self, provider: str, kind: str, account: str) -> bool:
        """Whether recipients of this account wait to be settled from its list: status
        polling then leaves the list calls to the scans."""
        k, listed = self.keys, self.keys.listed(provider, kind)
        return bool(await self.redis.exists(*(p.unknown(listed, account) for p in k.parts)))

    async def _match(
        self,
        provider: str,
        codec: ListPolling,
        parked: dict[str, dict[int, Park]],
        records: list[Listed],
    ) -> int:
        """Record the parked recipients that ``records`` show the provider has."""
        if not records or not any(parked.values()):
            return 0
        k = self.keys
        known = await self.tracker.index.get_many(
            provider, [r.report.message_id or "" for r in records]
        )
        wanted: dict[str, list[tuple[str, Park, str, str]]] = defaultdict(list)
        for cid, parks in parked.items():
            if not parks:
                continue
            text = as_str(await self.redis.hget(k.meta(cid), "text"))
            chunks = sorted({p.chunk for p in parks.values()})
            blobs = await self.redis.hmget(k.chunks(cid), [str(c) for c in chunks])
            members = {m.index: m for blob in blobs if blob for m in chunkblob.decode(blob)}
            for index, park in parks.items():
                member = members.get(index)
                if member is None:
                    continue
                wanted[_digits(member.number)].append(
                    (cid, park, member.number, codec.sent_text(text, member.fields))
                )
        found: dict[str, list[Result]] = defaultdict(list)
        taken: set[tuple[str, int]] = set()
        for record, mine in zip(records, known, strict=True):
            if mine is not None:  # one of our recorded messages
                continue
            for cid, park, number, text in wanted.get(_digits(record.mobile), ()):
                at = record.created_ms
                if (cid, park.index) in taken or text not in record.text:
                    continue
                if at is not None and not park.from_ms <= at <= park.until_ms:
                    continue
                taken.add((cid, park.index))
                found[cid].append(
                    Result(
                        park.index, number, Status.ACCEPTED, record.report.message_id,
                        segments=record.segments, price=record.price, sent_at=at,
                        error=f"fate was unknown ({park.reason}); found in {provider}'s list",
                    )
                )  # fmt: skip
                break
        n = 0
        for cid, results in found.items():
            n += await self.store.found(cid, provider, results)
        return n

    async def _absent(
        self,
        provider: str,
        listed: str,
        account: str,
        scanned: dict[str, dict[int, Park]],
        *,
        start: int,
        until: int,
        started: int,
    ) -> None:
        """After the last page: what the scan covered and did not find is sent again."""
        k = self.keys
        for cid in scanned:
            zkey = k.part(cid).unknown(listed, account)
            parks = await self.store.entries(cid)  # what is still parked now
            covered = [
                p for p in parks.values()
                if p.from_ms >= start and p.until_ms <= until and p.until_ms <= started
            ]  # fmt: skip
            if covered:
                lane = as_str(await self.redis.hget(k.meta(cid), "lane")) or DEFAULT_LANE
                stream = k.part(cid).queue(provider, lane)
                n = await self.store.send_again(cid, stream, covered)
                if n:
                    log.info(
                        "campaign %s: %d recipient(s) of unknown fate are not in %s's list; "
                        "sending them", cid, n, provider,
                    )  # fmt: skip
            await self.store.rescore(cid, zkey)
