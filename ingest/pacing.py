"""History loads in bounded steps: at most N distinct 10-minute windows of data time a second.

InfluxDB 3 Core 3.6 persists one Parquet file per table per 10-minute window (`--gen1-duration`) of every
window buffered since its last snapshot, all at once (influxdb3_write/src/write_buffer/queryable_buffer.rs:174-230
and 300-368, v3.6.0: one task per window, no bound), and a live write waits while that runs. A year of history
sent in seconds is 50,000 windows in one snapshot: tens of seconds without an answer to any write. Spreading
the windows over time bounds the windows per snapshot, and so the stall. Live data touches one or two windows
a write, far below any sane rate, so it never waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

__all__ = ["WINDOW_NS", "WindowPacer", "line_windows"]

WINDOW_NS = 600 * 10**9  # Core's default --gen1-duration (10m), which the stack keeps
_SPACE, _NEWLINE, _MINUS, _ZERO = 0x20, 0x0A, 0x2D, 0x30


def line_windows(data: np.ndarray, ends: np.ndarray, *, window_ns: int = WINDOW_NS) -> np.ndarray:
    """The window (timestamp // window_ns) of each line of line protocol in `data` (uint8) ending at `ends`
    (exclusive, each line ending in a newline): the last token of a line is its nanosecond timestamp."""
    if not len(ends):
        return np.empty(0, dtype=np.int64)
    spaces = np.flatnonzero(data == _SPACE)
    last_space = spaces[np.searchsorted(spaces, ends - 1) - 1]
    start = last_space + 1
    stop = ends - (data[ends - 1] == _NEWLINE)
    negative = data[start] == _MINUS
    start = start + negative
    length = stop - start
    values = np.zeros(len(ends), dtype=np.int64)
    for position in range(int(length.max())):
        more = position < length
        digits = data[np.where(more, start + position, 0)].astype(np.int64) - _ZERO
        values = np.where(more, values * 10 + digits, values)
    return np.where(negative, -values, values) // window_ns


class WindowPacer:
    """A token bucket of windows: `per_second` a second, at most `per_second` held. `cut` says how many rows may
    join a batch before it holds more windows than one second's budget; `wait` sleeps until a batch's windows
    are paid for. `per_second` 0 turns it off."""

    def __init__(self, per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if per_second < 0:
            raise ValueError(f"per_second must be 0 (off) or more, not {per_second}")
        self.per_second = per_second
        self.budget = max(1, int(per_second))
        self._clock, self._sleep = clock, sleep
        self._tokens = float(self.budget)
        self._at = clock()
        self.waited = 0.0
        self._lock = threading.Lock()  # one pacer for every writer of a process: the server sees them all

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def cut(self, held: set[int], windows: np.ndarray) -> int:
        """Rows of `windows` (in order) that fit a batch already holding the windows `held`: all of them, or
        up to the first row that would make the batch's windows exceed the budget. Adds their windows to
        `held`."""
        if not len(windows):
            return 0
        distinct, first = np.unique(windows, return_index=True)
        fresh = ~np.isin(distinct, np.fromiter(held, dtype=np.int64, count=len(held)))
        order = np.argsort(first[fresh], kind="stable")
        starts, names = first[fresh][order], distinct[fresh][order]
        room = self.budget - len(held)
        if len(starts) <= room:
            held.update(names.tolist())
            return len(windows)
        held.update(names[:max(room, 0)].tolist())
        return int(starts[max(room, 0)])

    def wait(self, windows: int) -> None:
        """Sleep until `windows` tokens are there (at most the budget's worth), then spend them."""
        if not self.enabled:
            return
        need = min(windows, self.budget)
        with self._lock:
            self._refill()
            if self._tokens < need:
                delay = (need - self._tokens) / self.per_second
                self._sleep(delay)
                self.waited += delay
                self._refill()
            self._tokens = max(self._tokens - need, 0.0)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.budget), self._tokens + (now - self._at) * self.per_second)
        self._at = now
