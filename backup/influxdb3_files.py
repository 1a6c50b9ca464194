"""InfluxDB 3 Core's object-store files as its source names and fills them, and what a copy of them must hold
for the server to start again with every write it acknowledged.

From the v3.10.1 source (v3.6.0 does the same):
- A write is acknowledged once its WAL file `<node>/wal/<n:011>.wal` is in place; flushes run one after the
  other, so the numbers have no gaps (influxdb3_wal/src/object_store.rs `flush_buffer`, `wal_path`).
- A snapshot writes its Parquet files, then `<node>/snapshots/<u64::MAX - n:020>.info.json` naming them
  (influxdb3_write/src/paths.rs `SnapshotInfoFilePath`, write_buffer/queryable_buffer.rs). Its
  `wal_file_sequence_number` is the last WAL file whose rows are in those files; `databases` lists the files it
  added, `removed_files` those it deleted (retention, a deleted table). Snapshot files are never deleted.
- Only after the snapshot file is written does the server delete WAL files up to that number less
  --snapshotted-wal-files-to-keep (influxdb3_wal/src/lib.rs `background_wal_flush`, object_store.rs
  `remove_snapshot_wal_files`).
- On start it loads the newest snapshots (influxdb3_write/src/write_buffer/mod.rs) and replays every WAL file
  after the newest one's `wal_file_sequence_number` in name order, without looking for gaps (object_store.rs
  `load_existing_wal_file_paths`, `replay`). A missing WAL file is data lost without an error, and the WAL file
  that carried a later snapshot makes it snapshot again from what it replayed, over that snapshot's Parquet files.

So a copy restores everything acknowledged before it began when the WAL files after its newest snapshot's
number are all there up to the newest WAL file that existed when it began, and every Parquet file its
snapshots name is there (less those a snapshot records as removed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

__all__ = ["NodeFiles", "Snapshot", "SnapshotFormatError", "is_checkpoint", "parse_checkpoint", "parse_snapshot",
           "read_by_server", "snapshot_number", "wal_number"]

U64_MAX = 2**64 - 1
WAL_NAME = re.compile(r"^(\d+)\.wal$")  # influxdb3_wal/src/object_store.rs wal_path: {:011}.wal
SNAPSHOT_NAME = re.compile(r"^(\d{20})\.info\.json$")  # influxdb3_write/src/paths.rs SNAPSHOT_INFO_FILE_PATH_REGEX
CHECKPOINT_NAME = re.compile(r"^\d{20}\.checkpoint\.json$")  # paths.rs SNAPSHOT_CHECKPOINT_PATH_REGEX (3.9+)
SHOWN = 5  # names listed in one problem before "and N more"


class SnapshotFormatError(ValueError):
    """A snapshot or checkpoint file the server could not read either."""


def wal_number(relative: str) -> int | None:
    """The sequence number of `<node>/wal/<n>.wal`, else None."""
    path = PurePosixPath(relative)
    match = WAL_NAME.match(path.name)
    return int(match.group(1)) if match and path.parent.name == "wal" else None


def snapshot_number(relative: str) -> int | None:
    """The snapshot sequence number of `<node>/snapshots/<u64::MAX - n:020>.info.json`, else None
    (paths.rs `SnapshotInfoFilePath::parse_sequence_number`: the name is inverted so the newest sorts first)."""
    path = PurePosixPath(relative)
    match = SNAPSHOT_NAME.match(path.name)
    return U64_MAX - int(match.group(1)) if match and path.parent.name == "snapshots" else None


def is_checkpoint(relative: str) -> bool:
    """`<node>/snapshot-checkpoints/<YYYY-MM>/<u64::MAX - n:020>.checkpoint.json`."""
    path = PurePosixPath(relative)
    return bool(CHECKPOINT_NAME.match(path.name)) and path.parent.parent.name == "snapshot-checkpoints"


def read_by_server(relative: str) -> bool:
    """A snapshot or checkpoint: a file whose content says which other files the server needs."""
    return snapshot_number(relative) is not None or is_checkpoint(relative)


@dataclass(frozen=True)
class Snapshot:
    """What restoring needs from a PersistedSnapshot (or a month's checkpoint of them)."""

    sequence: int
    wal: int
    parquet: frozenset[str]
    removed: frozenset[str]


def _paths(pairs: Any, where: str) -> set[str]:
    """Parquet paths in a `SerdeVecMap<DbId, DatabaseTables>`: serialised as a list of [id, value] pairs
    (influxdb3_id/src/serialize.rs), each DatabaseTables `{"tables": [[table_id, [ParquetFile, ...]], ...]}`."""
    try:
        return {file["path"] for _, tables in pairs for _, files in tables["tables"] for file in files}
    except (TypeError, KeyError, ValueError) as exc:
        raise SnapshotFormatError(f"{where}: its Parquet file list is not what the server writes ({exc!r})") from exc


def _load(data: bytes, where: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotFormatError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise SnapshotFormatError(f"{where}: not a JSON object")
    return body


def _number(body: dict[str, Any], key: str, where: str) -> int:
    value = body.get(key)
    if not isinstance(value, int) or value < 0:
        raise SnapshotFormatError(f"{where}: {key} is {value!r}, not a sequence number")
    return value


def parse_snapshot(data: bytes, where: str) -> Snapshot:
    """A `PersistedSnapshotVersion` file (influxdb3_write/src/lib.rs), checked against its file name."""
    body = _load(data, where)
    snapshot = Snapshot(_number(body, "snapshot_sequence_number", where),
                        _number(body, "wal_file_sequence_number", where),
                        frozenset(_paths(body.get("databases", []), where)),
                        frozenset(_paths(body.get("removed_files", []), where)))
    named = snapshot_number(where)
    if named is not None and named != snapshot.sequence:
        raise SnapshotFormatError(f"{where}: the name says snapshot {named}, the content {snapshot.sequence}")
    return snapshot


def parse_checkpoint(data: bytes, where: str) -> Snapshot:
    """A `PersistedSnapshotCheckpointVersion` file (3.9+, `snapshot-checkpoints/<YYYY-MM>/`, lib.rs): a month's
    snapshots merged; the server loads it instead of them, so the Parquet files it names must be there too."""
    body = _load(data, where)
    return Snapshot(_number(body, "last_snapshot_sequence_number", where),
                    _number(body, "wal_file_sequence_number", where),
                    frozenset(_paths(body.get("databases", []), where)),
                    frozenset(_paths(body.get("pending_removed_files", []), where)))


def _gaps(after: int, numbers: list[int]) -> list[tuple[int, int]]:
    """The spans of WAL numbers missing from `numbers` (sorted, all above `after`) counting from `after + 1`."""
    spans, expected = [], after + 1
    for number in numbers:
        if number > expected:
            spans.append((expected, number - 1))
        expected = number + 1
    return spans


def _ranges(spans: list[tuple[int, int]]) -> str:
    """`[(3, 5), (9, 9)]` → `00000000003.wal–00000000005.wal, 00000000009.wal`."""
    return ", ".join(f"{a:011}.wal" if a == b else f"{a:011}.wal–{b:011}.wal" for a, b in spans)


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


@dataclass
class NodeFiles:
    """The files of one node a copy holds (names relative to the data directory, as the server's object-store
    paths are) and the snapshots and checkpoints among them, read."""

    node: str
    names: set[str] = field(default_factory=set)
    snapshots: dict[int, Snapshot] = field(default_factory=dict)
    checkpoints: list[Snapshot] = field(default_factory=list)

    def add(self, relative: str, data: bytes = b"") -> None:
        """Record a file; a snapshot's or checkpoint's `data` is read (SnapshotFormatError when the server
        could not read it either)."""
        if snapshot_number(relative) is not None:
            snapshot = parse_snapshot(data, relative)
            self.snapshots[snapshot.sequence] = snapshot
        elif is_checkpoint(relative):
            self.checkpoints.append(parse_checkpoint(data, relative))
        self.names.add(relative)

    def newest(self) -> Snapshot | None:
        return self.snapshots[max(self.snapshots)] if self.snapshots else None

    def wal_numbers(self) -> list[int]:
        return sorted(number for name in self.names if (number := wal_number(name)) is not None)

    def missing_parquet(self) -> list[str]:
        """Parquet files a loaded snapshot or checkpoint names that are not in the copy."""
        named: set[str] = set()
        removed: set[str] = set()
        for snapshot in [*self.snapshots.values(), *self.checkpoints]:
            named |= snapshot.parquet
            removed |= snapshot.removed
        return sorted(named - removed - self.names)

    def problems(self, wal_at_start: int | None) -> list[str]:
        """Why the server, started on these files, would not have every write acknowledged before the copy
        began (the newest WAL file then was `wal_at_start`; None when not recorded)."""
        problems = []
        newest = self.newest()
        after = newest.wal if newest else 0
        source = (f"snapshot {newest.sequence} holds WAL files up to {after:011}.wal" if newest
                  else "there is no snapshot, so the server replays every WAL file from 00000000001.wal")
        replayed = [number for number in self.wal_numbers() if number > after]
        gaps = _gaps(after, replayed)
        if gaps:
            problems.append(f"{self.node}/wal: {_ranges(gaps)} missing ({source}; the server would replay around "
                            "the gap and lose the writes in it)")
        reached = max(after, replayed[-1] if replayed else 0)
        if wal_at_start is not None and reached < wal_at_start:
            problems.append(f"{self.node}/wal: ends at {reached:011}.wal but {wal_at_start:011}.wal existed when "
                            f"the backup began ({source}): writes acknowledged before the backup are missing")
        missing = self.missing_parquet()
        if missing:
            problems.append(f"{len(missing)} Parquet file(s) named by the snapshots are missing: {_listed(missing)}")
        return problems
