"""A chunk's send results as its run holds them: each recipient and the provider's outcome.

A batch chunk records tens of thousands of results, and the record needs of them only their
rows (rows.py), a tally of their statuses and the ids of the accepted ones. :class:`Answers`
gives those straight from the outcomes, where a :class:`~dispatcher.model.Result` each cost
as much again as packing the rows. It is still a sequence of Results, each made when asked
for, so whatever takes results takes it as it takes a list; :func:`lines`, :func:`tally`
and :func:`sent` take either.

A batch provider often answers a whole request with one outcome (Smsclouds: the campaign
it created), one object for every recipient. Then those three are made from it once, not
once per recipient: at 25,000 recipients a chunk, the per-recipient passes were ~6 ms of
a chunk's record, all of it after the provider's last answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import is_
from typing import Any, overload

from dispatcher.model import Result, Status
from dispatcher.providers.base import ChunkRecipient, Outcome, Verdict
from dispatcher.rows import pack_row, plain_field, record_lines, row_around

__all__ = ["Answers", "Sent", "lines", "sent", "tally"]


@dataclass(frozen=True, slots=True)
class Sent:
    """What polling and reports need of the accepted results: message id → the index of
    the last recipient given it, the batch ids, and whether any was accepted at all."""

    ids: dict[str, int]
    batches: set[str]
    any: bool


class Answers(Sequence[Result]):
    """The results of ``recipients`` (their ``outcomes``, in the same order), sent at
    ``sent_at``; a transient failure that outlasted every attempt (RETRY) is ``failed``.
    ``in_order``: the recipients' indexes only increase (a chunk's list, as intake cut it),
    so a run of them from first to last is every index between."""

    __slots__ = ("_asked", "_shared", "in_order", "outcomes", "recipients", "sent_at")

    def __init__(
        self,
        recipients: list[ChunkRecipient],
        outcomes: list[Outcome],
        sent_at: int,
        *,
        in_order: bool = False,
    ) -> None:
        if len(recipients) != len(outcomes):
            raise ValueError(f"{len(outcomes)} outcomes for {len(recipients)} recipients")
        self.recipients = recipients
        self.outcomes = outcomes
        self.sent_at = sent_at
        self.in_order = in_order
        self._shared: Outcome | None = None
        self._asked = False  # whether _shared is known

    def __len__(self) -> int:
        return len(self.outcomes)

    @overload
    def __getitem__(self, at: int) -> Result: ...
    @overload
    def __getitem__(self, at: slice) -> list[Result]: ...
    def __getitem__(self, at: int | slice) -> Result | list[Result]:
        if isinstance(at, slice):
            return [self[i] for i in range(*at.indices(len(self)))]
        return _result(self.recipients[at], self.outcomes[at], self.sent_at)

    def __iter__(self) -> Iterator[Result]:
        sent_at = self.sent_at
        return (_result(r, o, sent_at) for r, o in zip(self.recipients, self.outcomes, strict=True))

    def shared(self) -> Outcome | None:
        """The one Outcome object every recipient has, if they have one; None otherwise,
        and for none. Asked in C, once: equal ones are not enough (1 and True are equal
        segments, written differently)."""
        if not self._asked:
            outcomes = self.outcomes
            if outcomes and outcomes[-1] is outcomes[0]:
                first = outcomes[0]
                if outcomes.count(first) == len(outcomes):  # equal: the same?
                    self._shared = first if all(map(is_, outcomes, repeat(first))) else None
            self._asked = True
        return self._shared

    def tally(self) -> dict[str, int]:
        """How many results have each status."""
        one = self.shared()
        if one is not None:
            return {_status(one): len(self)}
        retry, failed = Verdict.RETRY, Status.FAILED  # _status, inline: one a recipient
        return dict(Counter(failed if o.verdict is retry else o.status for o in self.outcomes))

    def sent(self, *, ids: bool) -> Sent:
        """:class:`Sent` of these results; message ids only if ``ids`` (an index wants
        them)."""
        one = self.shared()
        if one is not None:
            if not _accepted(one):
                return Sent({}, set(), any=False)
            mid, batch = one.message_id, one.batch_id
            last = self.recipients[-1].index
            return Sent({mid: last} if ids and mid else {}, {batch} if batch else set(), True)
        pairs = zip(self.recipients, self.outcomes, strict=True)
        return _sent(((r.index, o.message_id, o.batch_id) for r, o in pairs if _accepted(o)), ids)

    def lines(self) -> bytes:
        """rows.record_lines of these results, packed from the outcomes: a row is its
        message id between what the other fields make (rows.row_around), and those are
        the same for most of a chunk, so they are made once per distinct fields. A batch
        provider's answer is often one outcome shared by every recipient: its row is made
        once, and written once with a count (rows.Lines, inlined: this runs per recipient);
        for a run of indexes (``in_order``, none missing) with no step per recipient."""
        one = self.shared() if self.in_order else None
        if one is not None:
            first, n = self.recipients[0].index, len(self)
            if self.recipients[-1].index - first == n - 1:
                same = pack_row(_result(self.recipients[0], one, self.sent_at)).decode()
                return (f"={first}\n{same}" + (f"\n*{n - 1}" if n > 1 else "")).encode()
        around: dict[tuple[Any, ...], tuple[str, str] | None] = {}
        out: list[str] = []
        expect = -1
        sent_at = self.sent_at
        retry = Verdict.RETRY
        last: Outcome | None = None
        row: str | None = None  # the last row written
        again = 0  # rows like it since, not written yet
        for r, o in zip(self.recipients, self.outcomes, strict=True):
            index = r.index
            if index != expect:
                if again:
                    out.append(f"*{again}")
                    again = 0
                out.append(f"={index}")
            expect = index + 1
            if o is last:
                again += 1
                continue
            last = o
            made = None
            mid = o.message_id
            if o.error_code is None and o.error is None and (mid is None or plain_field(mid)):
                # the types too: 1 and 1.0 (or True) are one key but are written differently
                seg, price = o.segments, o.price
                key = (o.status, o.verdict is retry, seg, type(seg), price, type(price),
                       o.batch_id)  # fmt: skip
                if key in around:
                    made = around[key]
                else:
                    made = around[key] = row_around(_result(r, o, sent_at, with_id=False))
            if made is not None:
                now = f"{made[0]}{mid or ''}{made[1]}"
            else:
                now = pack_row(_result(r, o, sent_at)).decode()
            if now == row:
                again += 1
                continue
            if again:
                out.append(f"*{again}")
                again = 0
            out.append(now)
            row = now
        if again:
            out.append(f"*{again}")
        return "\n".join(out).encode()


def _status(o: Outcome) -> str:
    return Status.FAILED if o.verdict is Verdict.RETRY else o.status


def _accepted(o: Outcome) -> bool:
    return o.status == Status.ACCEPTED and o.verdict is not Verdict.RETRY


def _result(r: ChunkRecipient, o: Outcome, sent_at: int, *, with_id: bool = True) -> Result:
    mid = o.message_id if with_id else None
    return Result(r.index, r.number, _status(o), mid, o.error_code, o.error, o.segments,
                  o.price, sent_at, o.batch_id)  # fmt: skip


def lines(results: Sequence[Result]) -> bytes:
    """The record script's rows of these results (rows.record_lines)."""
    return results.lines() if isinstance(results, Answers) else record_lines(results)


def tally(results: Sequence[Result]) -> dict[str, int]:
    """How many of ``results`` have each status."""
    if isinstance(results, Answers):
        return results.tally()
    return dict(Counter(r.status for r in results))


def sent(results: Sequence[Result], *, ids: bool) -> Sent:
    """:class:`Sent` of ``results``: message ids only if ``ids``."""
    if isinstance(results, Answers):
        return results.sent(ids=ids)
    ok = Status.ACCEPTED
    return _sent(((r.index, r.message_id, r.batch_id) for r in results if r.status == ok), ids)


def _sent(accepted: Iterable[tuple[int, str | None, str | None]], ids: bool) -> Sent:
    """:class:`Sent` of the accepted results' (index, message id, batch id)."""
    by_id: dict[str, int] = {}
    batches: set[str] = set()
    found = False
    for index, mid, batch in accepted:
        found = True
        if batch:
            batches.add(batch)
        if ids and mid:
            by_id[mid] = index
    return Sent(by_id, batches, found)
