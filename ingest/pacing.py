"""History loads in steps InfluxDB 3 Core persists one at a time, so live writes stay answered.

Core 3.6 answers a write after its next WAL flush, and a snapshot persists every 10-minute window of data time
buffered since the last one, one Parquet file per table per window, all at once (influxdb3_write/src/write_buffer/
queryable_buffer.rs:174-230 and 300-368, v3.6.0: one task per window, no bound). While it runs, live writes wait:
on a quiet Core 3.6.0 with 2 cores, 2,000 windows in one snapshot held a live write 1.7 s, 8,000 held it 5.5 s,
and the bird study's 11,666 held it 13.3 s. Snapshots come after 900 WAL files (1.5 x `--wal-snapshot-size`,
snapshot_tracker.rs:105-172), a file a flush, a second at most: the first after about 15 minutes while anything
writes, then every 10 (the newest window's files stay for the next one).

So a history load goes in steps of at most `windows` distinct (table, window) pairs, and a step is sent only once
Core lists the one before in `system.parquet_files` (a snapshot has persisted it). While a step waits, a progress
point a second (`ingest_steps` in `monitoring`) keeps Core's WAL files coming, and the `run` loop's live jobs run
(`between`). Live data (one or two windows a write) is never stepped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

__all__ = ["STEP_TIMEOUT", "WINDOW_NS", "SnapshotSteps", "line_windows"]

log = logging.getLogger("ingest.pacing")
WINDOW_NS = 600 * 10**9  # Core's default --gen1-duration (10m), which the stack keeps
STEP_TIMEOUT = 1800.0  # two of Core's default snapshot intervals: a step not persisted by then goes on, logged
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


class SnapshotSteps:
    """The steps of one load. `cut` says how many rows of a table may still join the current step; `next` waits
    until Core has persisted the step, then starts an empty one. `files(table, since)` is how many Parquet files
    Core lists for the table whose data starts at `since` (ns) or later (None: all): with a retention, files past
    it go at each snapshot, so only files newer than the load's cutoff are counted. `beat(step, windows,
    persisted)` is called every `poll` seconds while a step waits (the progress point), and so is `between` (the
    run loop's live jobs). `windows` 0 turns steps off."""

    def __init__(self, windows: int, files: Callable[[str, int | None], int], *,
                 beat: Callable[[int, int, int], None] | None = None, between: Callable[[], None] | None = None,
                 poll: float = 1.0, timeout: float = STEP_TIMEOUT, expired_before: int | None = None,
                 now: Callable[[], int] = time.time_ns, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, close: Callable[[], None] | None = None):
        if windows < 0:
            raise ValueError(f"windows must be 0 (off) or more, not {windows}")
        self.budget = windows
        self._files, self._beat, self._between = files, beat, between
        self.poll, self.timeout = poll, timeout
        self._expired = expired_before  # windows before it: Core's retention drops their files, never counted
        self._now, self._clock, self._sleep = now, clock, sleep
        self.close = close or (lambda: None)  # what `files` holds open (its HTTP session)
        self.held: dict[str, set[int]] = {}
        self._baseline: dict[str, int] = {}
        self.steps = 1
        self.waited = 0.0

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    @property
    def size(self) -> int:
        return sum(len(windows) for windows in self.held.values())

    def cut(self, table: str, windows: np.ndarray) -> int:
        """Rows of `windows` (in order) that fit the step: all of them, or up to the first row whose window
        would take the step past its budget. Their windows join the step."""
        if not len(windows) or not self.enabled:
            return len(windows)
        held = self.held.get(table)
        if held is None:
            self._baseline[table] = self._count(table)  # before any row of the step is sent
            if not self.enabled:
                return len(windows)
            held = self.held[table] = set()
        distinct, first = np.unique(windows, return_index=True)
        fresh = ~np.isin(distinct, np.fromiter(held, dtype=np.int64, count=len(held)))
        order = np.argsort(first[fresh], kind="stable")
        starts, names = first[fresh][order], distinct[fresh][order]
        room = self.budget - self.size
        if len(starts) <= room:
            held.update(names.tolist())
            return len(windows)
        held.update(names[:max(room, 0)].tolist())
        return int(starts[max(room, 0)])

    def next(self) -> None:
        """Wait until Core lists a new file for every window of the step it can persist, then start a new step.
        A step not persisted within `timeout` (or a server that cannot say) goes on with a warning."""
        if not self.held:
            return
        started, size = self._clock(), self.size
        while True:
            waiting = self._waiting()
            if not waiting:
                if self.enabled:
                    log.info("step %d: %d windows persisted by InfluxDB 3 after %.0f s", self.steps, size,
                             self._clock() - started)
                break
            if self._clock() - started >= self.timeout:
                log.warning("step %d: InfluxDB 3 has not persisted %d of its %d windows (%s) after %.0f s; going on",
                            self.steps, sum(waiting.values()), size, ", ".join(sorted(waiting)), self.timeout)
                break
            if self._beat is not None:
                self._beat(self.steps, size, size - sum(waiting.values()))
            if self._between is not None:
                self._between()
            self._sleep(self.poll)
        self.waited += self._clock() - started
        self.steps += 1
        self.held, self._baseline = {}, {}

    def _waiting(self) -> dict[str, int]:
        """Per table of the step, how many of its windows Core has yet to list a file for (none once it cannot
        tell). Windows from the current one on are left out: an in-order snapshot persists only older ones."""
        current = self._now() // WINDOW_NS
        left = {}
        for table, windows in self.held.items():
            due = sum(1 for window in windows if window < current
                      and (self._expired is None or window >= self._expired))
            persisted = self._count(table) - self._baseline[table]
            if not self.enabled:
                return {}
            missing = due - persisted
            if missing > 0:
                left[table] = missing
        return left

    def _count(self, table: str) -> int:
        try:
            return self._files(table, None if self._expired is None else self._expired * WINDOW_NS)
        except Exception as exc:  # any failure to ask turns steps off; the load itself goes on
            log.warning("%s: InfluxDB 3 cannot list its Parquet files (%s); the rest of the load is not stepped",
                        table, exc)
            self.budget = 0
            self.held = {}
            return 0

