"""A stand-in for what InfluxDB 3 Core writes to and deletes from a file object store, on disk, flush by flush:
a writer's rows in WAL files, snapshots that persist them as Parquet files and then delete old WAL files, and
retention removing Parquet files. `rows_after_restart` reads a node directory as the server does when it starts.

Each behaviour names the v3.10.1 source it follows (v3.6.0 does the same; a real v3.6.0 server's files are
compared with these in tests/integration/test_backup.py). File names, paths and the snapshot JSON are the
server's; a WAL file's header is too, but its body is JSON rows rather than bitcode-encoded `WalContents`:
nothing in the backup reads it, and the restart model here needs the rows.
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import takewhile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from backup.setfiles import StoreWriter

U64_MAX = 2**64 - 1
GEN1_NS = 60 * 10**9  # --gen1-duration 1m
BASE_NS = int(datetime(2025, 1, 7, 23, 0, tzinfo=UTC).timestamp()) * 10**9
TABLES = {"weather": (0, 0), "sensors": (0, 1)}  # name → (database id, table id), as the catalog numbers them
WAL_IDENTIFIER = b"idb3.001"  # influxdb3_wal/src/serialize.rs FILE_TYPE_IDENTIFIER

Row = tuple[str, int, float]  # table, time (ns), value


def put(path: Path, data: bytes, *, create: bool) -> None:
    """object_store 0.12.4 local.rs `put_opts`: write `<path>#1`, then hard-link it into place and remove it
    (PutMode::Create: WAL files) or rename it over the target (PutMode::Overwrite: Parquet, snapshots)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + "#1")
    staging.write_bytes(data)
    if create:
        os.link(staging, path)
        staging.unlink()
    else:
        os.replace(staging, path)


def wal_bytes(contents: dict[str, Any]) -> bytes:
    """serialize.rs `serialize_to_file_bytes`: identifier, CRC-32 (crc32fast, big-endian) of the body, body."""
    body = json.dumps(contents).encode()
    return WAL_IDENTIFIER + struct.pack(">I", zlib.crc32(body)) + body


def wal_rows(data: bytes) -> list[Row]:
    body = data[len(WAL_IDENTIFIER) + 4:]
    assert data.startswith(WAL_IDENTIFIER) and struct.unpack(">I", data[8:12])[0] == zlib.crc32(body)
    return [tuple(row) for row in json.loads(body)["ops"]]


@dataclass
class Period:
    """snapshot_tracker.rs `WalPeriod`."""

    wal: int
    min_time: int
    max_time: int


class FakeInfluxDB3Files:
    """One node's object store under `data_dir/node`, written as the server writes it."""

    def __init__(self, data_dir: Path, node: str, *, snapshot_size: int = 2, keep: int = 2,
                 retention_ns: int | None = None):
        self.node, self.node_dir = node, data_dir / node
        self.snapshot_size, self.keep, self.retention_ns = snapshot_size, keep, retention_ns
        self.lock = threading.Lock()
        self.ticks = 0
        self.next_wal = 1
        self.oldest_wal = 1
        self.periods: list[Period] = []
        self.snapshot_sequence = 0
        self.buffer: list[Row] = []
        self.persisted: dict[str, dict[str, Any]] = {}  # path → ParquetFile, for retention
        self.next_file_id = 0
        self.acknowledged: set[Row] = set()
        self.rows_in_files: dict[str, list[Row]] = {}
        self.removed_rows: set[Row] = set()  # in Parquet files retention deleted
        self.wal_deleted = 0
        self.hold_snapshot_files = False  # True: a snapshot's file waits in `held` (it is still being written)
        self.held: list[tuple[Path, bytes]] = []

    # ---- the writer --------------------------------------------------------------------------------------
    def tick(self) -> None:
        """One second of a writer: a row per table, stamped with the stand-in's clock (a minute per tick), then
        the WAL flush that acknowledges them."""
        with self.lock:
            now = BASE_NS + self.ticks * GEN1_NS
            self.flush([(table, now, float(self.ticks * 10 + index)) for index, table in enumerate(TABLES)])
            self.ticks += 1

    def run(self, ticks: int) -> FakeInfluxDB3Files:
        for _ in range(ticks):
            self.tick()
        return self

    def acknowledged_rows(self) -> set[Row]:
        with self.lock:
            return set(self.acknowledged)

    # ---- the server --------------------------------------------------------------------------------------
    def flush(self, rows: list[Row]) -> None:
        """object_store.rs `flush_buffer`: the buffered writes become WAL file n, which carries the snapshot
        details when this flush triggers one; the writes are acknowledged once it is in place; then the snapshot
        is persisted and, once done, old WAL files are deleted (lib.rs `background_wal_flush`)."""
        number = self.next_wal
        self.next_wal += 1
        times = [row[1] for row in rows]
        self.periods.append(Period(number, min(times), max(times)))
        details = self.snapshot_details()
        put(self.node_dir / "wal" / f"{number:011}.wal", wal_bytes({
            "wal_file_number": number, "min_timestamp_ns": min(times), "max_timestamp_ns": max(times),
            "ops": rows, "snapshot": details}), create=True)
        self.buffer += rows
        self.acknowledged |= set(rows)
        if details:
            self.persist_snapshot(details)
            self.remove_wal_files(details["last_wal_sequence_number"])

    def snapshot_details(self) -> dict[str, Any] | None:
        """snapshot_tracker.rs `snapshot(false)`: after snapshot_size * 1.5 periods, everything when there are 3x
        snapshot_size, else the periods whose data ends before the last period's gen1 window."""
        size = self.snapshot_size
        if len(self.periods) < size + size // 2:
            return None
        if len(self.periods) >= 3 * size:
            taken, self.periods = self.periods, []
            newest = max(period.max_time for period in taken)
            end, forced = newest - newest % GEN1_NS + GEN1_NS, True
        else:
            last = self.periods[-1].max_time
            end, forced = last - last % GEN1_NS, False
            taken = list(takewhile(lambda period: period.max_time < end, self.periods))
            if not taken:
                return None
            self.periods = self.periods[len(taken):]
        self.snapshot_sequence += 1
        return {"snapshot_sequence_number": self.snapshot_sequence, "end_time_marker": end,
                "first_wal_sequence_number": taken[0].wal, "last_wal_sequence_number": taken[-1].wal,
                "forced": forced}

    def persist_snapshot(self, details: dict[str, Any]) -> None:
        """queryable_buffer.rs `buffer_wal_contents_and_persist_snapshotted_data`: files past retention are
        deleted first (persisted_files.rs `remove_files_for_deletion`: max_time < cutoff), then every chunk of
        the buffer older than the end marker becomes a Parquet file named for the snapshot's last WAL file
        (paths.rs `ParquetFilePath`), then the snapshot file names them, if there is anything to name."""
        removed = self.expired()
        for file in removed:
            (self.node_dir.parent / file["path"]).unlink(missing_ok=True)
        last_wal = details["last_wal_sequence_number"]
        chunks: dict[tuple[str, int], list[Row]] = {}
        for row in self.buffer:
            if row[1] - row[1] % GEN1_NS < details["end_time_marker"]:
                chunks.setdefault((row[0], row[1] - row[1] % GEN1_NS), []).append(row)
        added = []
        for (table, chunk_time), rows in sorted(chunks.items()):
            db_id, table_id = TABLES[table]
            when = datetime.fromtimestamp(chunk_time / 10**9, UTC).strftime("%Y-%m-%d/%H-%M")
            path = f"{self.node}/dbs/{db_id}/{table_id}/{when}/{last_wal:010}.parquet"
            size = write_parquet(self.node_dir.parent / path, rows)
            file = {"id": self.next_file_id, "path": path, "size_bytes": size, "row_count": len(rows),
                    "chunk_time": chunk_time, "min_time": min(r[1] for r in rows), "max_time": max(r[1] for r in rows)}
            self.next_file_id += 1
            self.persisted[path] = file
            self.rows_in_files[path] = rows
            added.append((table, file))
        persisted = {row for rows in chunks.values() for row in rows}
        self.buffer = [row for row in self.buffer if row not in persisted]
        if added or removed:
            self.write_snapshot(details, added, [(self.table_of(file["path"]), file) for file in removed])

    def write_snapshot(self, details: dict[str, Any], added: list[tuple[str, dict]],
                       removed: list[tuple[str, dict]]) -> None:
        """persister.rs `persist_snapshot`: a `PersistedSnapshotVersion` (lib.rs) as pretty JSON, named
        `u64::MAX - sequence` (paths.rs `SnapshotInfoFilePath`)."""
        files = [file for _, file in added]
        body = {"version": "1", "node_id": self.node, "next_file_id": self.next_file_id,
                "snapshot_sequence_number": details["snapshot_sequence_number"],
                "wal_file_sequence_number": details["last_wal_sequence_number"], "catalog_sequence_number": 4,
                "parquet_size_bytes": sum(file["size_bytes"] for file in files),
                "row_count": sum(file["row_count"] for file in files),
                "min_time": min((file["min_time"] for file in files), default=2**63 - 1),
                "max_time": max((file["max_time"] for file in files), default=-(2**63)),
                "databases": serde_vec_map(added), "removed_files": serde_vec_map(removed)}
        path = self.node_dir / "snapshots" / f"{U64_MAX - details['snapshot_sequence_number']:020}.info.json"
        data = json.dumps(body, indent=2).encode()
        if self.hold_snapshot_files:
            self.held.append((path, data))
        else:
            put(path, data, create=False)

    def release_held(self) -> None:
        """The snapshots held back are written now (their Parquet files are done)."""
        with self.lock:
            for path, data in self.held:
                put(path, data, create=False)
            self.held.clear()

    def remove_wal_files(self, last: int) -> None:
        """object_store.rs `remove_snapshot_wal_files`: keep the newest `--snapshotted-wal-files-to-keep`
        snapshotted WAL files (and `last` itself); delete the ones before them."""
        if last - self.oldest_wal > self.keep:
            last_to_delete = self.oldest_wal + (last - self.oldest_wal - self.keep)
            for number in range(self.oldest_wal, last_to_delete):
                (self.node_dir / "wal" / f"{number:011}.wal").unlink(missing_ok=True)
                self.wal_deleted += 1
            self.oldest_wal = last_to_delete

    def expired(self) -> list[dict[str, Any]]:
        if self.retention_ns is None:
            return []
        cutoff = BASE_NS + self.ticks * GEN1_NS - self.retention_ns
        gone = [file for file in self.persisted.values() if file["max_time"] < cutoff]
        for file in gone:
            del self.persisted[file["path"]]
            self.removed_rows |= set(self.rows_in_files.pop(file["path"]))
        return gone

    @staticmethod
    def table_of(path: str) -> str:
        ids = tuple(int(part) for part in path.split("/")[2:4])
        return next(name for name, known in TABLES.items() if known == ids)


def serde_vec_map(files: list[tuple[str, dict]]) -> list:
    """influxdb3_id/src/serialize.rs `SerdeVecMap`: a list of [key, value] pairs, here DbId → DatabaseTables
    {"tables": [[TableId, [ParquetFile, ...]], ...]}."""
    databases: dict[int, dict[int, list]] = {}
    for table, file in files:
        db_id, table_id = TABLES[table]
        databases.setdefault(db_id, {}).setdefault(table_id, []).append(file)
    return [[db_id, {"tables": [[table_id, listed] for table_id, listed in tables.items()]}]
            for db_id, tables in databases.items()]


def write_parquet(path: Path, rows: list[Row]) -> int:
    """persister.rs `persist_parquet_file` (an overwriting put); returns the size."""
    table = pa.table({"time": pa.array([row[1] for row in rows], pa.timestamp("ns")),
                      "value": pa.array([row[2] for row in rows], pa.float64())})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    put(path, data, create=False)
    return len(data)


def rows_after_restart(node_dir: Path) -> set[Row]:
    """The rows a server started on `node_dir` has: the Parquet files its snapshots name, less those removed
    (write_buffer/mod.rs `load_snapshots`, persisted_files.rs), and the rows of every WAL file after the newest
    snapshot's `wal_file_sequence_number`, in name order, with no gap check (object_store.rs
    `load_existing_wal_file_paths`, `replay`). A named Parquet file that is missing fails the query."""
    snapshots = [json.loads(path.read_bytes()) for path in sorted((node_dir / "snapshots").glob("*.info.json"))]
    named = {file["path"] for body in snapshots for _, db in body["databases"]
             for _, files in db["tables"] for file in files}
    removed = {file["path"] for body in snapshots for _, db in body["removed_files"]
               for _, files in db["tables"] for file in files}
    rows: set[Row] = set()
    for path in sorted(named - removed):
        table = FakeInfluxDB3Files.table_of(path)
        assert (node_dir.parent / path).is_file(), f"the snapshots name {path}, which is missing: queries fail"
        data = pq.read_table(node_dir.parent / path)
        rows |= {(table, stamp, value) for stamp, value in zip(data["time"].cast(pa.int64()).to_pylist(),
                                                                 data["value"].to_pylist(), strict=True)}
    newest = max(snapshots, key=lambda body: body["snapshot_sequence_number"], default=None)
    after = newest["wal_file_sequence_number"] if newest else 0
    for path in sorted((node_dir / "wal").glob("*.wal")):
        if int(path.name.split(".")[0]) > after:
            rows |= set(wal_rows(path.read_bytes()))
    return rows


class ServerThread:
    """The stand-in running by itself in a thread while the backup copies: a flush every millisecond or so."""

    def __init__(self, files: FakeInfluxDB3Files):
        self.files = files
        self.ticked = threading.Condition()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self.run, name="fake-influxdb3", daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.files.tick()
            except BaseException as exc:
                self.error = exc
                raise
            finally:
                with self.ticked:
                    self.ticked.notify_all()
            time.sleep(0.001)

    def wait_for_a_tick(self) -> None:
        """Return once the server has flushed at least once more (it keeps going meanwhile)."""
        seen = self.files.ticks
        with self.ticked:
            assert self.ticked.wait_for(lambda: self.files.ticks > seen or self.error is not None, timeout=30)
        assert self.error is None, self.error

    @contextmanager
    def running(self) -> Iterator[ServerThread]:
        self.thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            self.thread.join(30)
        assert self.error is None, self.error


class PacedWriter(StoreWriter):
    """A StoreWriter that lets the running server flush at least once while each file is copied, so a copy of
    dozens of files spans dozens of flushes and many snapshots, however fast the machine."""

    def __init__(self, *args: Any, server: ServerThread, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.server = server

    def add_stream(self, *args: Any, **kwargs: Any):
        self.server.wait_for_a_tick()
        return super().add_stream(*args, **kwargs)
