"""Descriptive statistics of one numeric field: count, min, max, mean, median, mode and 95th percentile.

Definitions follow NumPy so results can be checked against it: the median is `numpy.median`, the 95th
percentile is `numpy.percentile(values, 95)` (linear interpolation between closest ranks), the mean is the
arithmetic mean, and the mode is the most frequent value, the smallest one on a tie.

`summarize` computes them from an array (a bucket re-read from the table). `RunningStats` keeps them up to
date as values arrive without re-reading anything: a sorted list (sortedcontainers) gives min, max, median
and percentiles by rank in O(log n) per value, a compensated sum gives the mean, and the mode is maintained
incrementally because counts only ever grow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from sortedcontainers import SortedList

__all__ = ["FieldStats", "RunningStats", "bucket_start", "summarize"]


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


class RunningStats:
    """Whole-history statistics of one field, updated value by value (see the module docstring)."""

    def __init__(self, values: Iterable[float] = ()):
        finite = [float(v) for v in values if math.isfinite(v)]
        self._sorted = SortedList(finite)
        self._sum = 0.0
        self._compensation = 0.0
        for value in finite:
            self._add_to_sum(value)
        self._mode, self._mode_count = math.nan, 0
        self._recompute_mode()

    def __len__(self) -> int:
        return len(self._sorted)

    def _add_to_sum(self, value: float) -> None:
        # Neumaier's compensated summation: the mean stays exact to ~1 ulp over millions of values.
        total = self._sum + value
        if abs(self._sum) >= abs(value):
            self._compensation += (self._sum - total) + value
        else:
            self._compensation += (value - total) + self._sum
        self._sum = total

    def _recompute_mode(self) -> None:
        if not self._sorted:
            return
        unique, counts = np.unique(np.fromiter(self._sorted, dtype=np.float64, count=len(self._sorted)),
                                   return_counts=True)
        best = int(np.argmax(counts))
        self._mode, self._mode_count = float(unique[best]), int(counts[best])

    def add(self, values: Iterable[float]) -> int:
        """Add the finite values; returns how many were added."""
        finite = [float(v) for v in values if math.isfinite(v)]
        for value in finite:
            self._sorted.add(value)
            self._add_to_sum(value)
        # Counts only grow, so only the values just added can overtake the current mode.
        for value in set(finite):
            count = self._sorted.bisect_right(value) - self._sorted.bisect_left(value)
            if count > self._mode_count or (count == self._mode_count and value < self._mode):
                self._mode, self._mode_count = value, count
        return len(finite)

    def snapshot(self) -> FieldStats | None:
        count = len(self._sorted)
        if count == 0:
            return None
        middle = count // 2
        median = (float(self._sorted[middle]) if count % 2 else
                  (float(self._sorted[middle - 1]) + float(self._sorted[middle])) / 2.0)
        return FieldStats(
            count=count, min=float(self._sorted[0]), max=float(self._sorted[-1]),
            mean=(self._sum + self._compensation) / count, median=median, mode=self._mode,
            p95=_percentile_sorted(self._sorted, count, 0.95))
