"""From encoded lines to requests: batches cut within a memory budget, gzip'd once, handed to every sink.

A batch closes when it reaches `batch_bytes` of line protocol or `batch_rows` lines, whichever comes first,
and always on a line boundary. Lines are referenced, not copied, until the batch is sent, so memory stays at
about one batch plus the chunk being encoded however large the input is. The sinks share the gzip'd body
(InfluxDB 2 and 3 both take nanosecond line protocol).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ingest.lineprotocol import Encoded
from ingest.pacing import SnapshotSteps, line_windows
from ingest.sinks import Batch, SinkCounters

__all__ = ["Writer"]

log = logging.getLogger("ingest.writer")


class Deliverer(Protocol):
    name: str
    counters: SinkCounters

    def deliver(self, batch: Batch) -> None: ...
    def settle(self) -> None: ...
    def drain(self, *, force: bool = False) -> bool: ...
    def close(self) -> None: ...


class Writer:
    def __init__(self, sinks: Sequence[Deliverer], database: str, *, batch_bytes: int = 4 << 20,
                 batch_rows: int = 100_000, gzip_level: int = 1, steps: SnapshotSteps | None = None):
        if not sinks:
            raise ValueError("no sink to write to")
        self.sinks = list(sinks)
        self.database = database
        self.batch_bytes, self.batch_rows, self.gzip_level = batch_bytes, batch_rows, gzip_level
        self._views: list[memoryview] = []
        self._keep: list[object] = []  # the Arrow arrays the views point into
        self._bytes = 0
        self._rows = 0
        self.rows_handed = 0
        self.steps = steps if steps is not None and steps.enabled else None  # a history load's (ingest/pacing.py)

    def write(self, encoded: Encoded) -> None:
        for chunk in encoded.chunks:
            ends = encoded.line_ends(chunk)
            buffer = memoryview(chunk.buffers()[2])
            origin = int(np.frombuffer(chunk.buffers()[1], dtype=np.int32)[chunk.offset])
            row, total = 0, len(ends)
            windows = None
            if self.steps is not None and total:
                data = np.frombuffer(buffer, dtype=np.uint8)[origin:origin + int(ends[-1])]
                windows = line_windows(data, ends)
            while row < total:
                base = int(ends[row - 1]) if row else 0
                fits = int(np.searchsorted(ends, base + self.batch_bytes - self._bytes, side="right")) - row
                take = min(fits, self.batch_rows - self._rows, total - row)
                if windows is not None and self.steps is not None and take > 0:
                    take = self.steps.cut(encoded.measurement, windows[row:row + take])
                    if take == 0:  # the step is full: it is all acknowledged, then Core persists it
                        self.settle()  # (nothing of it in flight while the run loop's live jobs count theirs)
                        self.steps.next()
                        continue
                if take <= 0:
                    if self._rows:
                        self.flush()
                        continue
                    take = 1  # one line longer than the whole budget still goes, alone
                end = int(ends[row + take - 1])
                self._views.append(buffer[origin + base:origin + end])
                self._keep.append(chunk)
                self._bytes += end - base
                self._rows += take
                row += take
                if self._bytes >= self.batch_bytes or self._rows >= self.batch_rows:
                    self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        batch = Batch(b"".join(self._views), self._rows, self.database, self.gzip_level)
        self._views, self._keep, self._bytes, self._rows = [], [], 0, 0
        failure = self._every_sink(lambda sink: sink.deliver(batch))
        self.rows_handed += batch.rows
        if failure is not None:
            raise failure

    def settle(self) -> None:
        """Send what is pending and wait for the batches in flight: afterwards every line handed to this writer
        is written, refused or in a spool (a failure among them is raised)."""
        self.flush()
        failure = self._every_sink(lambda sink: sink.settle())
        if failure is not None:
            raise failure

    def _every_sink(self, action: Callable[[Deliverer], None]) -> Exception | None:
        """`action` on every sink, even after one failed; the first failure (for the caller to raise)."""
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                action(sink)
            except Exception as exc:
                failure = failure or exc
        return failure

    def close(self, *, drain: bool = True) -> None:
        """Settle; with `drain`, replay every sink's spool once more, retrying fully (the end of a command). The
        `run` loop does not: its replay job retries on a schedule, so a dead database does not stall every job."""
        self.settle()
        if self.steps is not None:
            self.steps.close()
        if not drain:
            return
        for sink in self.sinks:
            if not sink.drain(force=True):
                log.warning("%s: rows remain in the spool; they are replayed on the next run", sink.name)
