"""Every Redis key dispatcher uses, in one place.

A campaign's keys share the hash tag ``{cid}`` so that they land on one Redis Cluster slot
(:meth:`Keys.campaign_keys` lists them all: archiving and purging delete them in one call).

That is the layout of one **partition**, a single Redis. On a Redis Cluster the work is
spread over several (:class:`Part`): a campaign belongs to one by a CRC-32 of its id, and
its keys are named ``<prefix>{<tag>}:<cid>:meta`` instead, sharing the partition's tag
with the keys of that partition its scripts touch: the work streams and delayed sets, the
ready sets and virtual clocks, the in-flight marks, the events stream, and the ``open``,
``batches``, ``responses`` and ``unknown`` sets, each named ``<prefix>{<tag>}:q:…`` and so
on. Every script then touches one slot. The table names them as one partition has them.

=========================  ======  ==========================================================
key                        type    holds
=========================  ======  ==========================================================
``campaigns``              zset    campaign ids scored by creation time (ms)
``layout``                 hash    ``partitions``: how many the keys are spread over (below)
``idem:<key>``             string  campaign id for an idempotency key (expires)
``q:<provider>:<lane>``    stream  work admitted to be sent now: one entry per chunk (fields
                                   c, n, a, i: only these recipients, x: never these, as
                                   ranges);
                                   consumer group ``workers``; the pending list is the lease
``ready:<prov>:<lane>``    zset    accounts with chunks waiting to be admitted, scored by when
                                   each was last served: the accounts' round robin
``ready:<p>:<lane>:<acct>`` zset   the account's campaigns with chunks waiting, scored by their
                                   weighted fair-queuing finish tag
``vclock:<prov>:<lane>``   hash    account → its virtual clock for that fair queuing
``inflight:<prov>:<acct>`` zset    ``cid|chunk`` admitted and not yet done, by admission time:
                                   what the account's rate is busy with (admission.py)
``events``                 stream  progress: chunk recorded, campaign done, campaign paused
``delayed:<prov>:<lane>``  zset    chunks to queue later (``cid|chunk|attempt[|i[|x]]``:
                                   :func:`unit`), by
                                   the time (ms) they are due: "busy" answers, throttled
                                   numbers, campaigns scheduled to start later
``rate:<provider>:<acct>`` string  the account's GCRA arrival time, shared by all processes
``throttle:<p>:<a>:<key>`` string  a per-key spacing (one voice call per number per 30 s)
``{cid}:meta``             hash    the campaign: provider, account, text, counters (with
                                   ``parked_ever``, every park of unknown fate), state,
                                   ``done_at`` once finished (retention.py); only
                                   ``state=staging`` while an enqueue streams, when
                                   every ``{cid}`` key written has a TTL (staging.py)
``{cid}:chunks``           hash    chunk number → its recipients (chunkblob.py: ``=<first
                                   index>`` and a number a line, or orjson ``[[index,
                                   number, fields?], …]``); field ``invalid`` → orjson
                                   list of invalid indices
``{cid}:results:<b>``      hash    recipient index → its send result (rows.pack_row), in
                                   buckets of 128 recipients: ``b`` is index // 128 and
                                   the field index % 128, so each stays a small listpack
                                   (rows.py; likewise reports and state)
``{cid}:counts``           hash    status → number of results with it
``{cid}:held``             set     ``chunk[|i[|x]]`` set aside while the campaign is paused
``{cid}:reports:<b>``      hash    recipient index → ``[status, raw, error_code, error,
                                   at_ms, message_id]`` (rows.pack_report): the latest
                                   report, kept apart from the send result
``{cid}:state:<b>``        hash    recipient index → the rank a report gave it (model.Rank:
                                   1 accepted, 2 on its way, 3 final). A recipient's rank is
                                   the higher of this and its result row's (lua.ROW_RANK): a
                                   report is applied only if it moves that up
``{cid}:finals``           hash    final status → number of recipients with it
``{cid}:dead``             hash    recipient index → ``chunk<TAB>reason``: failed after every
                                   attempt; ``retry`` sends them again
``{cid}:owner``            hash    queue entry id → the owner token of the worker sending it,
                                   ``done`` once settled: the fence every send is checked
                                   against (fencing.py)
``{cid}:flight``           hash    queue entry id → ``ms:ranges;…``: recipients authorised to
                                   be sent, and when; what a successor finds here without a
                                   result may have reached the provider (unknown fate);
                                   ``<entry>:x`` → ranges: what takeovers handed on, which
                                   no later owner of the entry sends
``{cid}:parked``           hash    recipient index → ``chunk<TAB>from<TAB>until<TAB>expires
                                   <TAB>reason``: unknown fate, waiting to be settled from
                                   what the provider says (unknown.py)
``unknown:<list>:<acct>``  zset    campaigns with parked recipients, scored by the earliest
                                   time (ms) one of them expires
``unknownscan:<l>:<acct>`` hash    the account's shared list scan in progress (reconcile.py)
``msgidx:<prov>:<shard>``  hash    provider message id → ``cid.index``, for reports that name
                                   only the message (list APIs, Smsclouds), in 16,384 shards
                                   by a CRC-32 of the id: small listpacks (msgindex.py)
``open:<provider>:<acct>`` zset    campaigns with messages a list API may still update
``batches:<prov>:<acct>``  zset    ``batch|cid|chunk`` (:func:`batch_member`) of Smsclouds
                                   campaigns to poll
``responses:<p>:<acct>``   zset    the same, for their handset replies (MO), by when (ms)
                                   they were last asked for (responses.py)
``poll:<prov>:<acct>``     string  the poll lock: one list call per interval, across processes
``pollcursor:<p>:<acct>``  hash    where the list pagination stands (from, until, page)
``inbound``                stream  inbound SMS and MO messages, for apps to consume
``seen:<provider>:<id>``   string  an inbound message already stored (pushes are retried)
``retention:lock``         string  the retention sweep's lock: one pass per interval, across
                                   processes (retention.py)
``retention:cursor``       string  the rank in ``campaigns`` where the next sweep pass goes on
=========================  ======  ==========================================================
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from redis.crc import key_slot

if TYPE_CHECKING:
    from dispatcher.config import Settings

GROUP = "workers"
#: Priority lanes, most urgent first: workers read them in this order, and keep a chunk slot
#: free for ``otp`` so a one-time password never waits behind a bulk campaign.
LANES = ("otp", "transactional", "bulk")
DEFAULT_LANE = "transactional"


def unit(cid: str, chunk: int | str, attempt: int | str, only: str = "", x: str = "") -> str:
    """A piece of work as the delayed set names it: ``cid|chunk|attempt``, then ``|only``
    (ranges) when only some of the chunk's recipients are to be sent, and ``|x`` (ranges)
    when some are excluded: handed to the unknown-fate machinery by an earlier entry of the
    chunk. The scripts build and read it with lua.MEMBERS, the same format
    (tests/test_keys.py holds them to it)."""
    base = f"{cid}|{chunk}|{attempt}"
    if x:
        return f"{base}|{only}|{x}"
    return f"{base}|{only}" if only else base


def parse_unit(member: str) -> tuple[str, int, int, str, str]:
    """``(cid, chunk, attempt, only, x)`` of :func:`unit`."""
    cid, chunk, attempt, *rest = member.split("|")
    rest += ["", ""]
    return cid, int(chunk), int(attempt), rest[0], rest[1]


def batch_member(batch: str, cid: str, chunk: int | str) -> str:
    """A provider's batch (a Smsclouds campaign) as the ``batches`` and ``responses`` sets
    hold it: ``batch|cid|chunk``, so that its reports find their campaign and chunk."""
    return f"{batch}|{cid}|{chunk}"


def parse_batch_member(member: str) -> tuple[str, str, int]:
    """``(batch, cid, chunk)`` of :func:`batch_member`."""
    batch, cid, chunk = member.rsplit("|", 2)
    return batch, cid, int(chunk)


#: Redis Cluster's hash slots: a partition's tag is picked in its share of them.
SLOTS = 16_384
#: Partitions on a Redis Cluster unless ``partitions`` is set: enough to spread the work
#: over as many primaries, few enough that a worker reads them all often.
CLUSTER_PARTITIONS = 16


def is_cluster_client(redis: object) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(redis, RedisCluster)


def partitions_for(configured: int, cluster: bool) -> int:
    """The partitions to use: ``configured``, or (0) one on a single Redis and
    :data:`CLUSTER_PARTITIONS` on a cluster, where one would put every script across slots."""
    if cluster and configured == 1:
        from dispatcher.config import ConfigError  # config is the settings' own module

        raise ConfigError(
            "partitions: a Redis Cluster needs more than one (leave it unset for "
            f"{CLUSTER_PARTITIONS})"
        )
    return configured or (CLUSTER_PARTITIONS if cluster else 1)


@lru_cache(maxsize=64)
def partition_tags(partitions: int) -> tuple[str, ...]:
    """The hash tag of each partition, ``p<i>.<j>`` with the first ``j`` whose slot falls in
    the partition's even share of the 16,384: a cluster whose primaries own even ranges of
    slots (as ``--cluster create`` makes them) gets an even share of the partitions."""
    tags = []
    for i in range(partitions):
        low, high = i * SLOTS // partitions, (i + 1) * SLOTS // partitions
        j = 0
        while not low <= key_slot(f"p{i}.{j}".encode()) < high:
            j += 1
        tags.append(f"p{i}.{j}")
    return tuple(tags)


@dataclass(frozen=True, slots=True)
class Part:
    """The keys of one partition: the work queues and indexes that a campaign's scripts
    touch with its own keys. Everything here shares the partition's hash tag with the
    campaigns of the partition (:meth:`Keys.part`), so every script stays on one slot of a
    Redis Cluster. With one partition (a single Redis) the names carry no tag at all."""

    base: str  # the prefix, then the partition's tag
    index: int = 0
    tagged: bool = False  # False: the only partition, its names untagged

    def campaign(self, cid: str) -> str:
        """The stem of the keys of campaign ``cid`` of this partition: ``{cid}`` on its own
        (one partition), else after the partition's tag (it must share its slot)."""
        return f"{self.base}{cid}" if self.tagged else f"{self.base}{{{cid}}}"

    @property
    def events(self) -> str:
        return f"{self.base}events"

    def queue(self, provider: str, lane: str = DEFAULT_LANE) -> str:
        return f"{self.base}q:{provider}:{lane}"

    def delayed(self, provider: str, lane: str = DEFAULT_LANE) -> str:
        return f"{self.base}delayed:{provider}:{lane}"

    def ready(self, provider: str, lane: str) -> str:
        return f"{self.base}ready:{provider}:{lane}"

    def ready_campaigns(self, provider: str, lane: str, account: str) -> str:
        return f"{self.base}ready:{provider}:{lane}:{account}"

    def vclock(self, provider: str, lane: str) -> str:
        return f"{self.base}vclock:{provider}:{lane}"

    def inflight(self, provider: str, account: str) -> str:
        return f"{self.base}inflight:{provider}:{account}"

    def unknown(self, listed: str, account: str) -> str:
        """Campaigns with parked recipients on this list (see :meth:`Keys.listed`) and
        account."""
        return f"{self.base}unknown:{listed}:{account}"

    def open(self, provider: str, account: str) -> str:
        return f"{self.base}open:{provider}:{account}"

    def batches(self, provider: str, account: str) -> str:
        return f"{self.base}batches:{provider}:{account}"

    def responses(self, provider: str, account: str) -> str:
        """Batches (``batch|cid|chunk``) whose handset replies are polled, by when they were
        last asked for (responses.py)."""
        return f"{self.base}responses:{provider}:{account}"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "dsp:"
    #: How many partitions the work is spread over (see :class:`Part`): 1 on a single
    #: Redis, where the names are the same as they always were.
    partitions: int = 1

    @classmethod
    def of(cls, settings: Settings, redis: object) -> Keys:
        """The keys of ``settings`` for a client of ``redis`` (a cluster gets partitions)."""
        return cls(settings.prefix, partitions_for(settings.partitions, is_cluster_client(redis)))

    def part(self, cid: str) -> Part:
        """The partition that campaign ``cid`` and its work live in."""
        if self.partitions == 1:
            return Part(self.prefix)
        return self.at(zlib.crc32(cid.encode()) % self.partitions)

    def at(self, index: int) -> Part:
        if self.partitions == 1:
            return Part(self.prefix)
        return Part(f"{self.prefix}{{{partition_tags(self.partitions)[index]}}}:", index, True)

    @property
    def parts(self) -> list[Part]:
        """Every partition: what a worker reads, a poller looks through."""
        return [self.at(i) for i in range(self.partitions)]

    def _campaign(self, cid: str) -> str:
        return self.part(cid).campaign(cid)

    @property
    def campaigns(self) -> str:
        return f"{self.prefix}campaigns"

    @property
    def layout(self) -> str:
        """How the keys of this prefix are laid out (partitions), for every process to
        check (store.ensure_layout)."""
        return f"{self.prefix}layout"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    def parse_queue(self, stream: str) -> tuple[str, str]:
        """``(provider, lane)`` of a work stream, of any partition."""
        rest = stream.removeprefix(self.prefix)
        if rest.startswith("{"):
            rest = rest.partition("}:")[2]
        provider, _, lane = rest.removeprefix("q:").rpartition(":")
        return provider, lane

    def delayed_for(self, stream: str) -> str:
        """The delayed set beside a work stream, in its partition."""
        provider, lane = self.parse_queue(stream)
        base = stream.removesuffix(f"q:{provider}:{lane}")
        return f"{base}delayed:{provider}:{lane}"

    def rate(self, provider: str, account: str) -> str:
        return f"{self.prefix}rate:{provider}:{account}"

    def throttle(self, provider: str, account: str, key: str) -> str:
        return f"{self.prefix}throttle:{provider}:{account}:{key}"

    def meta(self, cid: str) -> str:
        return f"{self._campaign(cid)}:meta"

    def chunks(self, cid: str) -> str:
        return f"{self._campaign(cid)}:chunks"

    def results(self, cid: str) -> str:
        """The base of a bucketed hash: rows.bucket names the key and field of a recipient."""
        return f"{self._campaign(cid)}:results"

    def counts(self, cid: str) -> str:
        return f"{self._campaign(cid)}:counts"

    def held(self, cid: str) -> str:
        return f"{self._campaign(cid)}:held"

    def reports(self, cid: str) -> str:
        """The base of a bucketed hash: rows.bucket names the key and field of a recipient."""
        return f"{self._campaign(cid)}:reports"

    def state(self, cid: str) -> str:
        """The base of a bucketed hash: rows.bucket names the key and field of a recipient."""
        return f"{self._campaign(cid)}:state"

    def owner(self, cid: str) -> str:
        return f"{self._campaign(cid)}:owner"

    def flight(self, cid: str) -> str:
        return f"{self._campaign(cid)}:flight"

    def parked(self, cid: str) -> str:
        return f"{self._campaign(cid)}:parked"

    def unknown_scan(self, listed: str, account: str) -> str:
        """The account's list scan in progress, over every partition (reconcile.py)."""
        return f"{self.prefix}unknownscan:{listed}:{account}"

    def dead(self, cid: str) -> str:
        return f"{self._campaign(cid)}:dead"

    def finals(self, cid: str) -> str:
        return f"{self._campaign(cid)}:finals"

    def message_index(self, provider: str, shard: int) -> str:
        """One shard of the provider's message index (msgindex.py picks it)."""
        return f"{self.prefix}msgidx:{provider}:{shard}"

    @staticmethod
    def listed(provider: str, kind: str) -> str:
        """How polling keys name a provider's list: ``cloudaten``, ``cloudaten.voice``."""
        return provider if kind == "sms" else f"{provider}.{kind}"

    def poll_lock(self, provider: str, account: str) -> str:
        return f"{self.prefix}poll:{provider}:{account}"

    def poll_cursor(self, provider: str, account: str) -> str:
        return f"{self.prefix}pollcursor:{provider}:{account}"

    @property
    def inbound(self) -> str:
        return f"{self.prefix}inbound"

    def seen(self, provider: str, inbound_id: str) -> str:
        return f"{self.prefix}seen:{provider}:{inbound_id}"

    def campaign_keys(self, cid: str, entries: int) -> list[str]:
        """Every ``{cid}`` key of a campaign of ``entries`` recipients (meta ``entries``),
        the buckets of its results, reports and ranks included (rows.py): what archiving
        deletes in one call (retention.py). A new per-campaign key belongs here, or
        archived campaigns leave it behind."""
        from dispatcher.rows import bucket_keys  # rows needs model, which needs this module

        bucketed = [self.results(cid), self.reports(cid), self.state(cid)]
        return [
            self.meta(cid), self.chunks(cid), self.counts(cid), self.held(cid),
            self.finals(cid), self.dead(cid), self.owner(cid), self.flight(cid),
            self.parked(cid), *bucketed,
            *(key for base in bucketed for key in bucket_keys(base, entries)),
        ]  # fmt: skip

    @property
    def retention_lock(self) -> str:
        return f"{self.prefix}retention:lock"

    @property
    def retention_cursor(self) -> str:
        return f"{self.prefix}retention:cursor"
