"""Every Redis key dispatcher uses, in one place.

A campaign's keys share the hash tag ``{cid}`` so that they land on one Redis Cluster slot
(:meth:`Keys.campaign_keys` lists them all: archiving and purging delete them in one call).

=========================  ======  ==========================================================
key                        type    holds
=========================  ======  ==========================================================
``campaigns``              zset    campaign ids scored by creation time (ms)
``idem:<key>``             string  campaign id for an idempotency key (expires)
``q:<provider>:<lane>``    stream  work admitted to be sent now: one entry per chunk (fields
                                   c, n, a, and i: only these recipients, as ranges);
                                   consumer group ``workers``; the pending list is the lease
``ready:<prov>:<lane>``    zset    accounts with chunks waiting to be admitted, scored by when
                                   each was last served: the accounts' round robin
``ready:<p>:<lane>:<acct>`` zset   the account's campaigns with chunks waiting, scored by their
                                   weighted fair-queuing finish tag
``vclock:<prov>:<lane>``   hash    account → its virtual clock for that fair queuing
``inflight:<prov>:<acct>`` zset    ``cid|chunk`` admitted and not yet done, by admission time:
                                   what the account's rate is busy with (admission.py)
``events``                 stream  progress: chunk recorded, campaign done, campaign paused
``delayed:<prov>:<lane>``  zset    chunks to queue later (``cid|chunk|attempt[|ranges]``:
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
``{cid}:chunks``           hash    chunk number → orjson ``[[index, number, fields?], …]``;
                                   field ``invalid`` → orjson list of invalid indices
``{cid}:results:<b>``      hash    recipient index → its send result (rows.pack_row), in
                                   buckets of 128 recipients: ``b`` is index // 128 and
                                   the field index % 128, so each stays a small listpack
                                   (rows.py; likewise reports and state)
``{cid}:counts``           hash    status → number of results with it
``{cid}:held``             set     ``chunk[|ranges]`` set aside while the campaign is paused
``{cid}:reports:<b>``      hash    recipient index → ``[status, raw, error_code, error,
                                   at_ms, message_id]`` (rows.pack_report): the latest
                                   report, kept apart from the send result
``{cid}:state:<b>``        hash    recipient index → rank (model.Rank: 1 accepted, 2 on its
                                   way, 3 final): a report is applied only if it moves the
                                   rank up
``{cid}:finals``           hash    final status → number of recipients with it
``{cid}:dead``             hash    recipient index → ``chunk<TAB>reason``: failed after every
                                   attempt; ``retry`` sends them again
``{cid}:owner``            hash    queue entry id → the owner token of the worker sending it,
                                   ``done`` once settled: the fence every send is checked
                                   against (fencing.py)
``{cid}:flight``           hash    queue entry id → ``ms:ranges;…``: recipients authorised to
                                   be sent, and when; what a successor finds here without a
                                   result may have reached the provider (unknown fate)
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

from dataclasses import dataclass

GROUP = "workers"
#: Priority lanes, most urgent first: workers read them in this order, and keep a chunk slot
#: free for ``otp`` so a one-time password never waits behind a bulk campaign.
LANES = ("otp", "transactional", "bulk")
DEFAULT_LANE = "transactional"


def unit(cid: str, chunk: int | str, attempt: int | str, only: str = "") -> str:
    """A piece of work as the delayed set names it: ``cid|chunk|attempt``, with ``|ranges``
    when only some of the chunk's recipients are to be sent. The scripts build and read it
    with lua.MEMBERS, the same format (tests/test_keys.py holds them to it)."""
    base = f"{cid}|{chunk}|{attempt}"
    return f"{base}|{only}" if only else base


def parse_unit(member: str) -> tuple[str, int, int, str]:
    """``(cid, chunk, attempt, only)`` of :func:`unit`."""
    cid, chunk, attempt, *rest = member.split("|")
    return cid, int(chunk), int(attempt), rest[0] if rest else ""


def batch_member(batch: str, cid: str, chunk: int | str) -> str:
    """A provider's batch (a Smsclouds campaign) as the ``batches`` and ``responses`` sets
    hold it: ``batch|cid|chunk``, so that its reports find their campaign and chunk."""
    return f"{batch}|{cid}|{chunk}"


def parse_batch_member(member: str) -> tuple[str, str, int]:
    """``(batch, cid, chunk)`` of :func:`batch_member`."""
    batch, cid, chunk = member.rsplit("|", 2)
    return batch, cid, int(chunk)


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "dsp:"

    @property
    def campaigns(self) -> str:
        return f"{self.prefix}campaigns"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    def queue(self, provider: str, lane: str = DEFAULT_LANE) -> str:
        return f"{self.prefix}q:{provider}:{lane}"

    def delayed(self, provider: str, lane: str = DEFAULT_LANE) -> str:
        return f"{self.prefix}delayed:{provider}:{lane}"

    def parse_queue(self, stream: str) -> tuple[str, str]:
        """``(provider, lane)`` of a work stream."""
        provider, _, lane = stream.removeprefix(f"{self.prefix}q:").rpartition(":")
        return provider, lane

    def delayed_for(self, stream: str) -> str:
        return self.delayed(*self.parse_queue(stream))

    def ready(self, provider: str, lane: str) -> str:
        return f"{self.prefix}ready:{provider}:{lane}"

    def ready_campaigns(self, provider: str, lane: str, account: str) -> str:
        return f"{self.prefix}ready:{provider}:{lane}:{account}"

    def vclock(self, provider: str, lane: str) -> str:
        return f"{self.prefix}vclock:{provider}:{lane}"

    def inflight(self, provider: str, account: str) -> str:
        return f"{self.prefix}inflight:{provider}:{account}"

    def rate(self, provider: str, account: str) -> str:
        return f"{self.prefix}rate:{provider}:{account}"

    def throttle(self, provider: str, account: str, key: str) -> str:
        return f"{self.prefix}throttle:{provider}:{account}:{key}"

    def meta(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:meta"

    def chunks(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:chunks"

    def results(self, cid: str) -> str:
        """The base of a bucketed hash: rows.bucket names the key and field of a recipient."""
        return f"{self.prefix}{{{cid}}}:results"

    def counts(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:counts"

    def held(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:held"

    def reports(self, cid: str) -> str:
        """The base of a bucketed hash: rows.bucket names the key and field of a recipient."""
        return f"{self.prefix}{{{cid}}}:reports"

    def state(self, cid: str) -> str:
        """The base of a bucketed hash: rows.bucket names the key and field of a recipient."""
        return f"{self.prefix}{{{cid}}}:state"

    def owner(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:owner"

    def flight(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:flight"

    def parked(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:parked"

    def unknown(self, listed: str, account: str) -> str:
        """Campaigns with parked recipients on this list (see :meth:`listed`) and account."""
        return f"{self.prefix}unknown:{listed}:{account}"

    def unknown_scan(self, listed: str, account: str) -> str:
        return f"{self.prefix}unknownscan:{listed}:{account}"

    def dead(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:dead"

    def finals(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:finals"

    def message_index(self, provider: str, shard: int) -> str:
        """One shard of the provider's message index (msgindex.py picks it)."""
        return f"{self.prefix}msgidx:{provider}:{shard}"

    @staticmethod
    def listed(provider: str, kind: str) -> str:
        """How polling keys name a provider's list: ``cloudaten``, ``cloudaten.voice``."""
        return provider if kind == "sms" else f"{provider}.{kind}"

    def open(self, provider: str, account: str) -> str:
        return f"{self.prefix}open:{provider}:{account}"

    def batches(self, provider: str, account: str) -> str:
        return f"{self.prefix}batches:{provider}:{account}"

    def responses(self, provider: str, account: str) -> str:
        """Batches (``batch|cid|chunk``) whose handset replies are polled, by when they were
        last asked for (responses.py)."""
        return f"{self.prefix}responses:{provider}:{account}"

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
