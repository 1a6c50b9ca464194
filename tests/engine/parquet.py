"""InfluxDB 3 Core's Parquet file accounting, as the local engine models it (source: v3.10.1).

What the server does, and what this module keeps of it:

- Writes land in the write buffer, chunked per gen1 window of DATA time: `chunk_time = t - t % gen1`
  (influxdb3_wal/src/lib.rs `Gen1Duration::chunk_time_for_timestamp`, Rust `%`: truncation toward zero).
  Buffered chunks are queried from memory and are not files.
- A WAL snapshot persists the buffered chunks of every table as one Parquet file per (table, chunk_time)
  (write_buffer/queryable_buffer.rs `buffer_wal_contents_and_persist_snapshotted_data`, table_buffer.rs
  `snapshot`) and records them in a `PersistedSnapshot` (snapshot sequence number, files). Core never
  compacts: every snapshot adds files, so a window written by N snapshots has N files.
- A query of a table counts the persisted files whose [min_time, max_time] overlaps the time range its
  filters imply (write_buffer/persisted_files.rs `get_files_filtered`, lib.rs
  `ChunkFilter::test_time_stamp_min_max`) and fails above `--query-file-limit` (default 432,
  write_buffer/mod.rs `query_file_limit.unwrap_or(432)`) with `FILE_LIMIT_MESSAGE`.
- On start the file index is rebuilt from object storage, not from everything ever persisted
  (write_buffer/mod.rs `WriteBufferImpl::new`, persister.rs): N = max(100, gen1_lookback / gen1)
  (influxdb3/src/commands/serve.rs, `MIN_SNAPSHOTS_TO_LOAD_ON_START`, `--gen1-lookback-duration` default
  1month); the cutoff is `latest_snapshot_sequence - N`; when monthly checkpoints exist, the latest
  checkpoint per month whose sequence (or whose next month's sequence) is >= the cutoff is loaded
  whole, plus the newest N snapshots after the newest checkpoint; when none exists, the newest N
  snapshots are loaded and checkpoints are built from them, one per month of the snapshots'
  persist time (`build_and_persist_checkpoints_from_snapshots`, always, even without
  `--checkpoint-interval`). Files of snapshots left out are invisible to queries until they are
  loaded again: their data disappears, as on the server.

  v3.6.0 has no checkpoints: it always loads the newest N snapshots, and N is lookback / gen1 without the
  minimum of 100 (`git show v3.6.0:influxdb3_write/src/write_buffer/mod.rs`, `...:influxdb3/src/commands/
  serve.rs`). Set `checkpoints=False` on restart to model the loading (not the missing minimum). Its file-limit
  error also reads differently: "Query would exceed file limit of {} parquet files. Please specify a smaller
  time range for your query. ..." (`FILE_LIMIT_MESSAGE_V3_6`).

Not modelled: `--checkpoint-interval` (disabled by default; with it, checkpoints are also updated on
every snapshot), in-order snapshots that keep the newest window buffered (`snapshot(older_than=...)` does
it by hand), more than one file per window in one snapshot (a chunk over the buffer's string-size limit),
retention-period deletion of files (only the query-time lower bound is modelled), file sizes (0).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = [
    "DEFAULT_QUERY_FILE_LIMIT",
    "FILE_LIMIT_MESSAGE",
    "FILE_LIMIT_MESSAGE_V3_6",
    "MIN_SNAPSHOTS_TO_LOAD_ON_START",
    "Checkpoint",
    "ParquetFile",
    "PersistedSnapshot",
    "SnapshotStore",
    "chunk_time",
    "file_limit_message",
    "snapshots_to_load",
]

# influxdb3_write/src/write_buffer/mod.rs (v3.10.1): `query_file_limit.unwrap_or(432)`
DEFAULT_QUERY_FILE_LIMIT = 432
# influxdb3/src/commands/serve.rs (v3.10.1): `const MIN_SNAPSHOTS_TO_LOAD_ON_START: u64 = 100`
MIN_SNAPSHOTS_TO_LOAD_ON_START = 100
# influxdb3_wal/src/lib.rs (v3.10.1): Gen1Duration accepts 1m, 5m, 10m only
GEN1_DURATIONS_NS = {"1m": 60 * 10**9, "5m": 300 * 10**9, "10m": 600 * 10**9}

# influxdb3_write/src/write_buffer/mod.rs (v3.10.1) `get_table_chunks`: note that the number printed is
# the LIMIT, not the number of files the query would have scanned.
FILE_LIMIT_MESSAGE = (
    "Query would scan {} Parquet files, exceeding the file limit. InfluxDB 3 Core caps file access to prevent "
    "performance degradation and memory issues. Use a narrower time range, or increase the limit with "
    "--query-file-limit (this may cause slower queries or instability).\n\nTo remove this limitation, upgrade "
    "to InfluxDB 3 Enterprise, which automatically compacts files for efficient querying across any time "
    "range. Free for non-commercial and home use, and free trials for commercial evaluation: "
    "https://www.influxdata.com/downloads")


# v3.6.0 influxdb3_write/src/write_buffer/mod.rs `get_table_chunks`
FILE_LIMIT_MESSAGE_V3_6 = (
    "Query would exceed file limit of {} parquet files. Please specify a smaller time range for your query. You can "
    "increase the file limit with the `--query-file-limit` option in the serve command, however, query performance "
    "will be slower and the server may get OOM killed or become unstable as a result")


def file_limit_message(limit: int) -> str:
    return FILE_LIMIT_MESSAGE.format(limit)


def chunk_time(time_ns: int, gen1_ns: int) -> int:
    """influxdb3_wal/src/lib.rs `chunk_time_for_timestamp`: `t - (t % gen1)` with Rust's truncating `%`."""
    remainder = abs(time_ns) % gen1_ns
    return time_ns - (remainder if time_ns >= 0 else -remainder)


def snapshots_to_load(gen1_lookback_ns: int, gen1_ns: int) -> int:
    """influxdb3/src/commands/serve.rs: max(100, lookback_secs / gen1_secs) (integer seconds, then division)."""
    return max(MIN_SNAPSHOTS_TO_LOAD_ON_START, (gen1_lookback_ns // 10**9) // (gen1_ns // 10**9))


def year_month(time_ms: int) -> tuple[int, int]:
    """influxdb3_write `year_month_from_timestamp_ms`: the UTC calendar month."""
    moment = datetime.fromtimestamp(time_ms / 1000, UTC)
    return moment.year, moment.month


@dataclass(frozen=True)
class ParquetFile:
    """One persisted file (influxdb3_write/src/lib.rs `ParquetFile`), plus where it lives in our catalog."""

    id: int
    path: str
    database: str
    table: str
    chunk_time: int
    min_time: int
    max_time: int
    row_count: int
    snapshot: int
    size_bytes: int = 0

    def overlaps(self, lower: int | None, upper: int | None) -> bool:
        """influxdb3_write/src/lib.rs (v3.10.1) `ChunkFilter::test_time_stamp_min_max`."""
        if lower is not None and self.max_time < lower:
            return False
        return not (upper is not None and self.min_time > upper)


@dataclass
class PersistedSnapshot:
    """influxdb3_write/src/lib.rs `PersistedSnapshot`: the files one snapshot added."""

    sequence: int
    wal_file_sequence: int
    persisted_at_ms: int  # the object's last_modified: wall-clock time of the snapshot
    files: list[ParquetFile] = field(default_factory=list)


@dataclass
class Checkpoint:
    """influxdb3_write/src/lib.rs `PersistedSnapshotCheckpoint`: one month's merged snapshot files."""

    year_month: tuple[int, int]
    last_snapshot_sequence: int
    files: list[ParquetFile]


class SnapshotStore:
    """The snapshot and checkpoint objects in object storage, and the restart rule that reads them back."""

    def __init__(self) -> None:
        self.snapshots: list[PersistedSnapshot] = []  # ascending sequence
        self.checkpoints: list[Checkpoint] = []
        self.next_sequence = 1  # SnapshotSequenceNumber starts at 0 and is incremented before use
        self.next_file_id = 0

    def add(self, snapshot: PersistedSnapshot) -> None:
        # queryable_buffer.rs: a snapshot file is only written when it persisted files (or removed some).
        if snapshot.files:
            self.snapshots.append(snapshot)

    def _latest_checkpoint_per_month(self, min_sequence: int | None) -> list[Checkpoint]:
        """persister.rs (v3.10.1) `list_latest_checkpoints_per_month`."""
        latest: dict[tuple[int, int], Checkpoint] = {}
        for checkpoint in self.checkpoints:
            known = latest.get(checkpoint.year_month)
            if known is None or checkpoint.last_snapshot_sequence > known.last_snapshot_sequence:
                latest[checkpoint.year_month] = checkpoint
        ordered = [latest[month] for month in sorted(latest)]
        if min_sequence is None:
            return ordered
        return [checkpoint for index, checkpoint in enumerate(ordered)
                if checkpoint.last_snapshot_sequence >= min_sequence
                or (index + 1 < len(ordered) and ordered[index + 1].last_snapshot_sequence >= min_sequence)]

    def _newest(self, count: int) -> list[PersistedSnapshot]:
        """persister.rs `load_snapshots(most_recent_n)`: newest first."""
        return list(reversed(self.snapshots[-count:])) if count > 0 else []

    def load(self, n_snapshots: int, *, checkpoints: bool = True) -> list[ParquetFile]:
        """The files a starting server puts in its index (write_buffer/mod.rs `WriteBufferImpl::new`)."""
        if not self.snapshots:
            return []
        latest = self.snapshots[-1].sequence
        cutoff = max(0, latest - n_snapshots)  # `latest.saturating_sub(n_snapshots_to_load_on_start)`
        chosen = self._latest_checkpoint_per_month(cutoff) if checkpoints else []
        if chosen:
            newest_checkpoint = max(checkpoint.last_snapshot_sequence for checkpoint in chosen)
            additional = [snapshot for snapshot in self._newest(n_snapshots) if snapshot.sequence > newest_checkpoint]
            files: dict[int, ParquetFile] = {}
            for checkpoint in chosen:
                files.update((item.id, item) for item in checkpoint.files)
            for snapshot in additional:
                files.update((item.id, item) for item in snapshot.files)
            return list(files.values())
        loaded = self._newest(n_snapshots)
        if checkpoints:
            self._build_checkpoints(loaded)
        return [item for snapshot in loaded for item in snapshot.files]

    def _build_checkpoints(self, loaded: Iterable[PersistedSnapshot]) -> None:
        """persister.rs (v3.10.1) `build_and_persist_checkpoints_from_snapshots`: grouped by the month of
        `persisted_at`; a month's checkpoint carries the sequence of its newest snapshot."""
        by_month: dict[tuple[int, int], list[PersistedSnapshot]] = {}
        for snapshot in loaded:
            by_month.setdefault(year_month(snapshot.persisted_at_ms), []).append(snapshot)
        for month, snapshots in sorted(by_month.items()):
            files = [item for snapshot in sorted(snapshots, key=lambda s: s.sequence) for item in snapshot.files]
            self.checkpoints.append(Checkpoint(month, max(s.sequence for s in snapshots), files))
