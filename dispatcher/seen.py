"""The numbers (or addresses) a campaign has listed so far, kept compactly for duplicates.

A Python set of ten million E.164 strings takes about a gigabyte; the same numbers as
integers in sorted numpy arrays take 80 MB. E.164 digits never start with 0 (no country code
does), so ``int(e164)`` names a number uniquely, and at most 19 digits fit an unsigned
64-bit integer. Email addresses are kept as 128-bit BLAKE2b digests (``V16``).

Batches are looked up and added as a whole. The values are spread by hash over
:data:`PARTITIONS` partitions, each a few sorted runs merged when two neighbours grow alike
(as an LSM tree does): adding N values costs O(N log N) in all, a lookup searches a few runs
of one partition, and no merge copies more than :data:`MAX_RUN` values at once, which bounds
the memory a merge takes beside the runs themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The most values a merge makes one run of; past that runs stay side by side.
MAX_RUN = 1 << 19
#: Values are spread over 2**PARTITION_BITS partitions by hash (at most 8 bits: a byte
#: numbers them), so that a lookup searches the few runs of one partition, not every run,
#: even with tens of millions of values.
PARTITION_BITS = 6
PARTITIONS = 1 << PARTITION_BITS
NUMBER = np.dtype(np.uint64)
DIGEST = np.dtype("V16")

Array = np.ndarray[Any, Any]


def number_keys(numbers: Sequence[str]) -> Array:
    """E.164 numbers (``+`` and digits) as unsigned integers."""
    same = _same_length(numbers)
    if same is not None:
        return same
    return np.fromiter(map(int, numbers), dtype=NUMBER, count=len(numbers))


def _same_length(numbers: Sequence[str]) -> Array | None:
    """:func:`number_keys` of numbers that all have one length (a list of one country's
    mobiles, as a rule), read from their bytes at once rather than by an ``int()`` each
    (~8 ms per 100,000); None when their lengths differ or anything but ``+`` and digits
    is found."""
    if not numbers:
        return None
    width = len(numbers[0])
    if not 2 <= width <= 20:
        return None
    raw = np.frombuffer(("\n".join(numbers) + "\n").encode(), dtype=np.uint8)
    if len(raw) != len(numbers) * (width + 1):
        return None  # lengths differ (or a character took more than a byte)
    rows = raw.reshape(len(numbers), width + 1)
    digits = rows[:, 1:width] - np.uint8(48)  # wraps below '0': caught by the next line
    if (rows[:, width] != 10).any() or (rows[:, 0] != 43).any() or (digits > 9).any():
        return None
    out = np.zeros(len(numbers), dtype=NUMBER)
    ten = np.uint64(10)
    for column in digits.T:  # Horner: a column of digits at a time
        out *= ten
        out += column
    return out


def digest_keys(addresses: Sequence[str]) -> Array:
    """Addresses as 128-bit digests."""
    joined = b"".join(hashlib.blake2b(a.encode(), digest_size=16).digest() for a in addresses)
    return np.frombuffer(joined, dtype=DIGEST)


class Seen:
    """Values seen so far: :data:`PARTITIONS` sets of sorted runs of one dtype, each value
    in the partition its hash picks, so that no partition grows past a few runs."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype
        self.parts: list[list[Array]] = [[] for _ in range(PARTITIONS)]

    def __len__(self) -> int:
        return sum(len(r) for runs in self.parts for r in runs)

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for runs in self.parts for r in runs)

    def _partition(self, values: Array) -> Array:
        if self.dtype == DIGEST:  # a digest's first byte is as good as any hash
            first_bytes: Array = values.view(np.uint8).reshape(-1, 16)[:, 0]
            return first_bytes >> np.uint8(8 - PARTITION_BITS)
        mixed: Array = values * np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing
        return mixed >> np.uint64(64 - PARTITION_BITS)

    def first(self, values: Array) -> list[bool]:
        """For each value in order: True where it is its first occurrence, counting every
        earlier batch; the new values are added."""
        n = len(values)
        if n == 0:
            return []
        order = np.argsort(values, kind="stable")  # equal values keep their order
        ranked = values[order]
        starts = np.ones(n, dtype=bool)
        starts[1:] = ranked[1:] != ranked[:-1]
        candidates = ranked[starts]  # sorted, unique, each at its first position
        # As bytes: a stable sort of bytes is a radix sort, ~20 times one of intp's.
        part = self._partition(candidates).astype(np.uint8)
        by_part = np.argsort(part, kind="stable")  # sorted within each partition still
        counts = np.bincount(part, minlength=PARTITIONS)
        bounds = np.concatenate(([0], np.cumsum(counts)))
        fresh = np.empty(len(candidates), dtype=bool)
        for p in np.flatnonzero(counts).tolist():
            at = by_part[bounds[p] : bounds[p + 1]]
            mine = candidates[at]
            new = ~_contains(self.parts[p], mine)
            fresh[at] = new
            _add(self.parts[p], mine[new], self.dtype)
        keep_ranked = np.zeros(n, dtype=bool)
        keep_ranked[np.flatnonzero(starts)[fresh]] = True
        keep = np.empty(n, dtype=bool)
        keep[order] = keep_ranked
        result: list[bool] = keep.tolist()
        return result


def _contains(runs: list[Array], ranked: Array) -> Array:
    """Which of the sorted ``ranked`` values one of the ``runs`` holds."""
    found = np.zeros(len(ranked), dtype=bool)
    for run in runs:
        at = np.minimum(np.searchsorted(run, ranked), len(run) - 1)
        found |= run[at] == ranked
    return found


def _add(runs: list[Array], ranked: Array, dtype: np.dtype[Any]) -> None:
    """Add sorted new values as a run, merging it into the one before while that is at
    most 8 times its size (so a partition holds a few runs; at most
    :data:`MAX_RUN` values a merge)."""
    if not len(ranked):
        return
    runs.append(np.array(ranked, dtype=dtype))
    while len(runs) >= 2 and len(runs[-2]) <= 8 * len(runs[-1]):
        if len(runs[-2]) + len(runs[-1]) > MAX_RUN:
            break
        last = runs.pop()
        merged = np.concatenate((runs.pop(), last))
        del last
        merged.sort(kind="stable")  # two sorted runs: a linear merge
        runs.append(merged)
