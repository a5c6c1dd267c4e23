"""Per-provider counters of the mock: what it accepted, refused, and saw twice."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ProviderStats:
    requests: int = 0  # every request to the provider's endpoints
    accepted: int = 0  # messages accepted
    rejected: int = 0  # answers with a non-zero code
    unauthorized: int = 0  # 401s
    uids_repeated: int = 0  # accepted messages whose uid had been accepted before
    mobiles_repeated: int = 0  # accepted messages to a mobile that had one already
    largest_batch: int = 0  # most recipients in one accepted request
    pushes: int = 0  # report or inbound pushes answered 200
    push_retries: int = 0  # pushes sent again after a failed attempt
    push_abandoned: int = 0  # pushes given up after the last retry
    list_calls: int = 0  # list calls answered
    list_refused: int = 0  # list calls refused for coming sooner than allowed
    responses_calls: int = 0  # of the list calls, Smsclouds MO replies asked for (Option 1)
    bad_answers: int = 0  # CloudSMS report pushes answered without a proper ANSWER packet
    over_rate: int = 0  # send requests above the provider's rate, refused with 429
    faults: int = 0  # send requests failed on purpose
    answers_lost: int = 0  # of those, requests processed as usual whose answer was lost
    spacing_violations: int = 0  # voice calls to a number sooner than allowed
    hlr_lookups: int = 0
    local_rejected: int = 0  # CloudSMS: answered OK, then reported LOCAL_REJECTED (60)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Recorder:
    """Counters and the accepted messages of one provider."""

    stats: ProviderStats = field(default_factory=ProviderStats)
    messages: list[dict[str, Any]] = field(default_factory=list)
    uids: set[str] = field(default_factory=set)
    mobiles: set[str] = field(default_factory=set)

    def accept(self, message: dict[str, Any]) -> None:
        self.stats.accepted += 1
        uid = message.get("uid")
        if uid is not None:
            if uid in self.uids:
                self.stats.uids_repeated += 1
            self.uids.add(uid)
        mobile = message["mobile"]
        if mobile in self.mobiles:
            self.stats.mobiles_repeated += 1
        self.mobiles.add(mobile)
        self.messages.append(message)

    def batch(self, size: int) -> None:
        self.stats.largest_batch = max(self.stats.largest_batch, size)

    def reset(self) -> None:
        self.stats = ProviderStats()
        self.messages.clear()
        self.uids.clear()
        self.mobiles.clear()
