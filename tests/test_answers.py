"""A chunk's results packed straight from its outcomes (answers.py) come to exactly what the
same results as Result objects come to: rows, the tally of statuses and what the accepted
give polling (their ids and batches)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dispatcher import answers, rows
from dispatcher.answers import Answers
from dispatcher.model import Result, Status
from dispatcher.providers.base import ChunkRecipient, Outcome, Verdict
from tests.test_rows import ROW_FIELDS

SENT_AT = 1795998888719

_OUTCOMES = st.builds(
    Outcome,
    verdict=st.sampled_from([Verdict.OK, Verdict.OK, Verdict.PERMANENT, Verdict.RETRY]),
    status=st.sampled_from(list(Status)),
    **ROW_FIELDS,
)
_CHUNKS = st.lists(st.tuples(st.integers(0, 400), _OUTCOMES), max_size=30)


def _answers(chunk: list[tuple[int, Outcome]]) -> Answers:
    """Answers as a chunk gives them: ``in_order`` when the indexes only increase."""
    recipients = [ChunkRecipient(i, f"+4479110{i:05d}") for i, _ in chunk]
    indexes = [i for i, _ in chunk]
    in_order = all(a < b for a, b in pairwise(indexes))
    return Answers(recipients, [o for _, o in chunk], SENT_AT, in_order=in_order)


def _same_as_results(got: Answers, results: list[Result]) -> None:
    assert got.lines() == rows.record_lines(results)
    assert got.tally() == Counter(r.status for r in results)
    for ids in (True, False):
        assert got.sent(ids=ids) == answers.sent(results, ids=ids)
        accepted = [r for r in results if r.status == Status.ACCEPTED]
        assert got.sent(ids=ids).any == bool(accepted)
        assert got.sent(ids=ids).batches == {r.batch_id for r in accepted if r.batch_id}
    by_id = {r.message_id: r.index for r in results if r.status == Status.ACCEPTED and r.message_id}
    assert got.sent(ids=True).ids == by_id
    assert got.sent(ids=False).ids == {}


def _expected(chunk: list[tuple[int, Outcome]]) -> list[Result]:
    """Each result as chunkrun made it one by one before: RETRY is failed."""
    return [
        Result(i, f"+4479110{i:05d}", Status.FAILED if o.verdict is Verdict.RETRY else o.status,
               o.message_id, o.error_code, o.error, o.segments, o.price, SENT_AT, o.batch_id)
        for i, o in chunk
    ]  # fmt: skip


@example([(i, Outcome(Verdict.OK, Status.ACCEPTED, f"m{i}", segments=1)) for i in (3, 4, 5, 9, 8)])
@example(
    [(i, Outcome(Verdict.OK, Status.ACCEPTED, segments=s)) for i, s in enumerate([1, True, 1])]
)
@example(
    [(0, Outcome(Verdict.OK, Status.ACCEPTED, "m0")), (1, Outcome(Verdict.RETRY, Status.ACCEPTED))]
)
@given(_CHUNKS)
def test_answers_come_to_what_their_results_come_to(chunk: list[tuple[int, Outcome]]) -> None:
    got, results = _answers(chunk), _expected(chunk)
    assert list(got) == results and len(got) == len(results)
    _same_as_results(got, results)
    if results:
        assert got[-1] == results[-1] and got[1:3] == results[1:3]


_SHARED = st.tuples(
    st.lists(_OUTCOMES, min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 2)), max_size=30),
)


@example(([Outcome(Verdict.OK, Status.ACCEPTED, segments=1, batch_id="c")],
          [(0, 0), (1, 0), (2, 0), (7, 0), (8, 0)]))  # fmt: skip
@example(([Outcome(Verdict.OK, Status.ACCEPTED, "m", batch_id="c")], [(4, 0), (5, 0), (6, 0)]))
@example(([Outcome(Verdict.OK, Status.ACCEPTED, segments=1)], [(4, 0), (6, 0), (5, 0)]))
@example(([Outcome(Verdict.RETRY, Status.ACCEPTED, batch_id="c")], [(0, 0), (1, 0)]))
@example(  # equal, not the same: 1 and True segments are written differently
    ([Outcome(Verdict.OK, Status.ACCEPTED, segments=1),
      Outcome(Verdict.OK, Status.ACCEPTED, segments=True)], [(0, 0), (1, 1), (2, 0)])
)  # fmt: skip
@example(([Outcome(Verdict.PERMANENT, Status.REJECTED, error_code="E|1")], [(0, 0), (1, 0)]))
@given(_SHARED)
def test_an_outcome_shared_by_recipients_comes_to_the_same(
    shared: tuple[list[Outcome], list[tuple[int, int]]],
) -> None:
    """A batch provider's answer is often one Outcome object for every recipient (a row
    made once): the rows are still each recipient's, as Result objects give them."""
    pool, picks = shared
    chunk = [(i, pool[k % len(pool)]) for i, k in picks]
    got, results = _answers(chunk), _expected(chunk)
    _same_as_results(got, results)


def test_a_run_of_recipients_sharing_an_outcome_is_one_row_and_a_count() -> None:
    one = Outcome(Verdict.OK, Status.ACCEPTED, segments=2, batch_id="camp7")
    got = _answers([(i, one) for i in range(40, 25_040)])
    assert got.in_order and got.shared() is one
    assert got.lines() == b"=40\na|||2||1795998888719|camp7\n*24999"
    assert got.tally() == {"accepted": 25_000}
    assert got.sent(ids=True) == answers.Sent({}, {"camp7"}, any=True)
    # the same outcomes but one recipient missing from the run: still each row in place
    gap = _answers([(i, one) for i in range(40, 60) if i != 50])
    assert gap.lines() == rows.record_lines(_expected([(i, one) for i in range(40, 60) if i != 50]))
    assert gap.lines().count(b"=") == 2


def test_the_module_functions_take_a_list_or_answers_alike() -> None:
    chunk = [(0, Outcome(Verdict.OK, Status.ACCEPTED, "m0", batch_id="b")),
             (1, Outcome(Verdict.RETRY, Status.FAILED, error_code="HTTP_503"))]  # fmt: skip
    got, results = _answers(chunk), _expected(chunk)
    for given_ in (got, results):
        assert answers.lines(given_) == b"=0\nam0|||||1795998888719|b\nf|HTTP_503||||1795998888719"
        assert answers.tally(given_) == {"accepted": 1, "failed": 1}
        assert answers.sent(given_, ids=True) == answers.Sent({"m0": 0}, {"b"}, any=True)


def test_answers_need_an_outcome_for_each_recipient() -> None:
    with pytest.raises(ValueError, match="1 outcomes for 2 recipients"):
        Answers(
            [ChunkRecipient(0, "+1"), ChunkRecipient(1, "+1")],
            [Outcome(Verdict.OK, Status.ACCEPTED)],
            0,
        )
