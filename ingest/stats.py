"""What one job run did, per source and per sink: the summary a user reads and the points `monitoring` gets."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import pyarrow as pa

from ingest.schema import INGEST_RUNS
from ingest.sinks import SinkCounters

__all__ = ["RunSummary", "SinkResult", "Tracker"]


@dataclass
class SinkResult(SinkCounters):
    """What one run changed in a sink's counters, plus what its spool holds at the end of the run."""

    spool_files: int = 0
    spool_bytes: int = 0
    spool_rows: int = 0


@dataclass
class RunSummary:
    source: str
    duration: float
    read: int = 0
    rejected: int = 0
    sinks: dict[str, SinkResult] = field(default_factory=dict)
    rejects_file: str | None = None

    @property
    def pending(self) -> int:
        """Rows still waiting in a spool after the run (the largest over the sinks)."""
        return max((result.spool_rows for result in self.sinks.values()), default=0)

    def text(self) -> str:
        parts = [f"{self.source}: read {self.read:,} rows, rejected {self.rejected:,}"]
        for name, result in self.sinks.items():
            rate = result.written / self.duration if self.duration > 0 else 0.0
            detail = f"{name}: written {result.written:,} ({rate:,.0f} rows/s)"
            if result.unchanged:
                detail += f", already stored unchanged {result.unchanged:,}"
            if result.replayed:
                detail += f", replayed {result.replayed:,} from the spool"
            if result.spooled:
                detail += f", spooled {result.spooled:,}"
            if result.refused:
                detail += f", refused by the database {result.refused:,}"
            if result.spool_files:
                detail += (f", {result.spool_rows:,} rows wait in the spool ({result.spool_files} batches, "
                           f"{result.spool_bytes:,} bytes)")
            parts.append(detail)
        text = "; ".join(parts) + f" in {self.duration:.1f}s"
        if self.rejects_file and self.rejected:
            text += f"; rejected rows are in {self.rejects_file}"
        return text

    def add(self, other: RunSummary) -> RunSummary:
        """Two runs of the same source as one (for metrics flushed once a minute)."""
        merged = {name: replace(result) for name, result in self.sinks.items()}
        for name, result in other.sinks.items():
            mine = merged.setdefault(name, SinkResult())
            for item in fields(SinkResult):
                if item.name.startswith("spool_"):
                    setattr(mine, item.name, getattr(result, item.name))
                else:
                    setattr(mine, item.name, getattr(mine, item.name) + getattr(result, item.name))
        return RunSummary(self.source, self.duration + other.duration, self.read + other.read,
                          self.rejected + other.rejected, merged, other.rejects_file or self.rejects_file)

    def table(self, now_ns: int | None = None) -> pa.Table:
        """One `ingest` point per sink for the monitoring bucket (all fields float64, see schema)."""
        stamp = now_ns if now_ns is not None else time.time_ns()
        rows = []
        for name, result in self.sinks.items():
            rate = result.written / self.duration if self.duration > 0 else 0.0
            rows.append({"time": stamp, "source": self.source, "sink": name, "rows_read": self.read,
                         "rows_rejected": self.rejected, "rows_written": result.written,
                         "rows_spooled": result.spooled, "rows_replayed": result.replayed,
                         "rows_refused": result.refused, "batches": result.batches, "retries": result.retries,
                         "spool_files": result.spool_files, "spool_bytes": result.spool_bytes,
                         "write_rate": rate, "duration": self.duration})
        columns: dict[str, pa.Array] = {"time": pa.array([row["time"] for row in rows], pa.int64())}
        for tag in INGEST_RUNS.tags:
            columns[tag] = pa.array([row[tag] for row in rows], pa.string())
        for name in INGEST_RUNS.field_names:
            columns[name] = pa.array([float(row[name]) for row in rows], pa.float64())
        return pa.table(columns)


class Tracker:
    """Snapshots the sinks' cumulative counters at the start of a run to report what this run changed."""

    def __init__(self, source: str, sinks: Sequence[object]):
        self.source = source
        self.sinks = list(sinks)
        self.started = time.monotonic()
        self._before = self.counters()

    def counters(self) -> dict[str, SinkCounters]:
        return {sink.name: replace(sink.counters) for sink in self.sinks}  # type: ignore[attr-defined]

    def discount(self, before: dict[str, SinkCounters], after: dict[str, SinkCounters]) -> None:
        """Leave out of this run what the sinks counted between `before` and `after`: the run loop's live jobs,
        which run while a history load waits for its step (ingest/pacing.py) and report for themselves."""
        for name, start in self._before.items():
            for item in fields(SinkCounters):
                moved = getattr(after[name], item.name) - getattr(before[name], item.name)
                setattr(start, item.name, getattr(start, item.name) + moved)

    def finish(self, read: int, rejected: int, rejects_file: str | None = None) -> RunSummary:
        results = {}
        for sink in self.sinks:
            now: SinkCounters = sink.counters  # type: ignore[attr-defined]
            before = self._before[sink.name]  # type: ignore[attr-defined]
            spool = getattr(sink, "spool", None)
            changed = {item.name: getattr(now, item.name) - getattr(before, item.name) for item in fields(SinkCounters)}
            results[sink.name] = SinkResult(  # type: ignore[attr-defined]
                **changed,
                spool_files=len(spool) if spool is not None else 0,
                spool_bytes=spool.size_bytes if spool is not None else 0,
                spool_rows=spool.rows if spool is not None else 0)
        return RunSummary(self.source, time.monotonic() - self.started, read, rejected, results, rejects_file)
