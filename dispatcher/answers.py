"""A chunk's send results as its run holds them: each recipient and the provider's outcome.

A batch chunk records tens of thousands of results, and the record needs of them only their
rows (rows.py), their statuses and the ids of the accepted ones. :class:`Answers` gives those
straight from the outcomes, where a :class:`~dispatcher.model.Result` each cost as much
again as packing the rows. It is still a sequence of Results, each made when asked for, so
whatever takes results takes it as it takes a list; :func:`lines`, :func:`statuses` and
:func:`accepted` take either.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from dispatcher.model import Result, Status
from dispatcher.providers.base import ChunkRecipient, Outcome, Verdict
from dispatcher.rows import pack_row, plain_field, record_lines, row_around

__all__ = ["Accepted", "Answers", "accepted", "lines", "statuses"]

#: (index, message id, batch id) of an accepted result: what polling and reports need.
Accepted = tuple[int, str | None, str | None]


class Answers(Sequence[Result]):
    """The results of ``recipients`` (their ``outcomes``, in the same order), sent at
    ``sent_at``; a transient failure that outlasted every attempt (RETRY) is ``failed``."""

    __slots__ = ("outcomes", "recipients", "sent_at")

    def __init__(
        self, recipients: list[ChunkRecipient], outcomes: list[Outcome], sent_at: int
    ) -> None:
        if len(recipients) != len(outcomes):
            raise ValueError(f"{len(outcomes)} outcomes for {len(recipients)} recipients")
        self.recipients = recipients
        self.outcomes = outcomes
        self.sent_at = sent_at

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

    def statuses(self) -> list[str]:
        retry, failed = Verdict.RETRY, Status.FAILED  # _status, inline: one a recipient
        return [failed if o.verdict is retry else o.status for o in self.outcomes]

    def accepted(self) -> list[Accepted]:
        retry, accepted = Verdict.RETRY, Status.ACCEPTED
        return [
            (r.index, o.message_id, o.batch_id)
            for r, o in zip(self.recipients, self.outcomes, strict=True)
            if o.status == accepted and o.verdict is not retry
        ]

    def lines(self) -> bytes:
        """rows.record_lines of these results, packed from the outcomes: a row is its
        message id between what the other fields make (rows.row_around), and those are
        the same for most of a chunk, so they are made once per distinct fields. A batch
        provider's answer is often one outcome shared by every recipient: its row is made
        once, and written once with a count (rows.Lines, inlined: this runs per recipient)."""
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


def _result(r: ChunkRecipient, o: Outcome, sent_at: int, *, with_id: bool = True) -> Result:
    mid = o.message_id if with_id else None
    return Result(r.index, r.number, _status(o), mid, o.error_code, o.error, o.segments,
                  o.price, sent_at, o.batch_id)  # fmt: skip


def lines(results: Sequence[Result]) -> bytes:
    """The record script's rows of these results (rows.record_lines)."""
    return results.lines() if isinstance(results, Answers) else record_lines(results)


def statuses(results: Sequence[Result]) -> list[str]:
    return results.statuses() if isinstance(results, Answers) else [r.status for r in results]


def accepted(results: Sequence[Result]) -> list[Accepted]:
    """(index, message id, batch id) of the accepted results."""
    if isinstance(results, Answers):
        return results.accepted()
    return [(r.index, r.message_id, r.batch_id) for r in results if r.status == Status.ACCEPTED]
