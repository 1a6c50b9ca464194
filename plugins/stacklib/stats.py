"""Descriptive statistics of one numeric field: count, min, max, mean, median, mode and 95th percentile.

Definitions follow NumPy so results can be checked against it: the median is `numpy.median`, the 95th
percentile is `numpy.percentile(values, 95)` (linear interpolation between closest ranks), the mean is the
arithmetic mean, and the mode is the most frequent value, the smallest one on a tie.

`summarize` computes them from an array (a bucket re-read from the table). `RunningStats` keeps them up to
date as values arrive without re-reading anything: a sorted multiset in NumPy chunks (`SortedValues`)
gives min, max, median and percentiles by rank, a compensated sum gives the mean, and the mode is
maintained incrementally because counts only ever grow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["FieldStats", "RunningStats", "SortedValues", "bucket_ranges", "bucket_start", "summarize"]


@dataclass(frozen=True)
class FieldStats:
    count: int
    min: float
    max: float
    mean: float
    median: float
    mode: float
    p95: float

    def as_fields(self) -> dict[str, float | int]:
        """The analytics row's fields (count as int64, the rest float64)."""
        values = asdict(self)
        return {key: (int(value) if key == "count" else float(value)) for key, value in values.items()}


def bucket_start(time_ns: int, width_ns: int) -> int:
    """The start of the width-aligned bucket holding `time_ns` (aligned to the Unix epoch, like date_bin)."""
    return time_ns - time_ns % width_ns


def bucket_ranges(starts: Iterable[int], width_ns: int) -> list[tuple[int, int]]:
    """Sorted bucket starts as merged [start, end) ranges (adjacent buckets read in one range)."""
    ranges: list[tuple[int, int]] = []
    for start in sorted(set(starts)):
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], start + width_ns)
        else:
            ranges.append((start, start + width_ns))
    return ranges


def _lerp(low: float, high: float, weight: float) -> float:
    """NumPy's interpolation between two ranks (it computes from the nearer end for accuracy)."""
    diff = high - low
    return high - diff * (1.0 - weight) if weight >= 0.5 else low + diff * weight


def _percentile_sorted(values, count: int, q: float) -> float:
    """Linear-interpolation percentile (NumPy's default method) of an indexable sorted sequence."""
    position = (count - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, count - 1)
    return _lerp(float(values[lower]), float(values[upper]), position - lower)


def summarize(values: np.ndarray) -> FieldStats | None:
    """Statistics of the finite values in `values`, or None when there are none."""
    array = np.asarray(values, dtype=np.float64)
    array = np.sort(array[np.isfinite(array)])
    if array.size == 0:
        return None
    unique, counts = np.unique(array, return_counts=True)
    return FieldStats(
        count=int(array.size), min=float(array[0]), max=float(array[-1]), mean=float(np.mean(array)),
        median=float(np.median(array)), mode=float(unique[int(np.argmax(counts))]),
        p95=float(np.percentile(array, 95)))


class SortedValues:
    """A sorted multiset of float64: a large sorted NumPy array plus a small sorted one for recent inserts.

    Written here because sortedcontainers' SortedList (Python floats behind pointers) slowed down by ~75%
    per insert between 10k and 1M values in benchmarks/bench_statistics.py (cache misses) and needs 4x the
    memory, while inserting into one flat array moves the whole array on every batch. Inserts go to the
    small array (cost follows its size, at most MERGE_AT); it is merged into the large one when it outgrows
    that, so the O(n) merge happens once per MERGE_AT values. Ranks and counts add NumPy's searchsorted on
    both arrays; the k-th value is found by binary search over each array.
    """

    MERGE_AT = 65_536

    def __init__(self, values: np.ndarray | None = None):
        self._base = np.sort(np.asarray(values if values is not None else [], dtype=np.float64))
        self._recent = np.empty(0, dtype=np.float64)

    def __len__(self) -> int:
        return int(self._base.size + self._recent.size)

    def add(self, values: np.ndarray) -> None:
        """Insert values (any order)."""
        values = np.sort(np.asarray(values, dtype=np.float64))
        self._recent = np.insert(self._recent, np.searchsorted(self._recent, values), values)
        if self._recent.size > self.MERGE_AT:
            self._base = np.insert(self._base, np.searchsorted(self._base, self._recent), self._recent)
            self._recent = np.empty(0, dtype=np.float64)

    def _rank(self, value: float, side: str) -> int:
        """How many values are < value (side "left") or <= value (side "right")."""
        return int(np.searchsorted(self._base, value, side=side) + np.searchsorted(self._recent, value, side=side))

    def count(self, value: float) -> int:
        return self._rank(value, "right") - self._rank(value, "left")

    def __getitem__(self, rank: int) -> float:
        """The value at 0-based `rank` in sorted order (negative ranks count from the end)."""
        rank = rank + len(self) if rank < 0 else rank
        if not 0 <= rank < len(self):
            raise IndexError(rank)
        best = math.inf
        for values in (self._base, self._recent):
            # The smallest value with more than `rank` values <= it is the answer; search each array for it.
            low, high = 0, values.size
            while low < high:
                middle = (low + high) // 2
                if self._rank(float(values[middle]), "right") > rank:
                    high = middle
                else:
                    low = middle + 1
            if low < values.size:
                best = min(best, float(values[low]))
        return best

    def array(self) -> np.ndarray:
        return np.sort(np.concatenate([self._base, self._recent]))


class RunningStats:
    """Whole-history statistics of one field, updated batch by batch (see the module docstring)."""

    def __init__(self, values: Iterable[float] = ()):
        array = np.fromiter(values, dtype=np.float64)
        array = array[np.isfinite(array)]
        self._sorted = SortedValues(array)
        self._sum = 0.0
        self._compensation = 0.0
        self._add_to_sum(math.fsum(array))
        self._mode, self._mode_count = math.nan, 0
        if array.size:
            unique, counts = np.unique(array, return_counts=True)
            best = int(np.argmax(counts))
            self._mode, self._mode_count = float(unique[best]), int(counts[best])

    def __len__(self) -> int:
        return len(self._sorted)

    def _add_to_sum(self, value: float) -> None:
        # Neumaier's compensated summation of exact per-batch sums (math.fsum): the mean stays exact to a few
        # ulps over millions of values.
        total = self._sum + value
        if abs(self._sum) >= abs(value):
            self._compensation += (self._sum - total) + value
        else:
            self._compensation += (value - total) + self._sum
        self._sum = total

    def add(self, values: Iterable[float]) -> int:
        """Add the finite values; returns how many were added."""
        array = np.fromiter(values, dtype=np.float64)
        array = array[np.isfinite(array)]
        if array.size == 0:
            return 0
        self._sorted.add(array)
        self._add_to_sum(math.fsum(array))
        # Counts only grow, so only the values just added can overtake the current mode.
        for value in np.unique(array).tolist():
            count = self._sorted.count(value)
            if count > self._mode_count or (count == self._mode_count and value < self._mode):
                self._mode, self._mode_count = value, count
        return int(array.size)

    def snapshot(self) -> FieldStats | None:
        count = len(self._sorted)
        if count == 0:
            return None
        middle = count // 2
        median = self._sorted[middle] if count % 2 else (self._sorted[middle - 1] + self._sorted[middle]) / 2.0
        return FieldStats(
            count=count, min=self._sorted[0], max=self._sorted[-1],
            mean=(self._sum + self._compensation) / count, median=median, mode=self._mode,
            p95=_percentile_sorted(self._sorted, count, 0.95))
