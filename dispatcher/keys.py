"""Every Redis key dispatcher uses, in one place.

A campaign's keys share the hash tag ``{cid}`` so that they land on one Redis Cluster slot.

=========================  ======  ==========================================================
key                        type    holds
=========================  ======  ==========================================================
``campaigns``              zset    campaign ids scored by creation time (ms)
``idem:<key>``             string  campaign id for an idempotency key (expires)
``q:<provider>``           stream  work: one entry per chunk to send (fields c, n, a);
                                   consumer group ``workers``; the pending list is the lease
``events``                 stream  progress: chunk recorded, campaign done, campaign paused
``delayed:<provider>``     zset    chunks to queue again later (``cid|chunk|attempt``), scored
                                   by the time (ms) they are due: provider "busy" answers
``{cid}:meta``             hash    the campaign: provider, account, text, counters, state
``{cid}:chunks``           hash    chunk number → orjson ``[[index, number, fields?], …]``;
                                   field ``invalid`` → orjson list of invalid indices
``{cid}:results``          hash    recipient index → orjson result row (model.ROW_FIELDS)
``{cid}:counts``           hash    status → number of results with it
``{cid}:held``             set     chunk numbers set aside while the campaign is paused
=========================  ======  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "workers"


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

    def queue(self, provider: str) -> str:
        return f"{self.prefix}q:{provider}"

    def delayed(self, provider: str) -> str:
        return f"{self.prefix}delayed:{provider}"

    def provider_of_queue(self, stream: str) -> str:
        return stream.removeprefix(f"{self.prefix}q:")

    def meta(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:meta"

    def chunks(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:chunks"

    def results(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:results"

    def counts(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:counts"

    def held(self, cid: str) -> str:
        return f"{self.prefix}{{{cid}}}:held"
