"""InfluxDB 3 Core: a file-level copy of the object store that restores every acknowledged write, and its restore.

InfluxDB 3 Core has no backup API. Its "Back up and restore" page (docs.influxdata.com/influxdb3/core/admin/
backup-restore/) says to copy `<data-dir>/<node-id>/` in the order snapshots, dbs, wal, catalog, and warns that
a copy of a running server "cannot guarantee 100% reliability". It cannot: a snapshot that lands after
snapshots/ was copied deletes WAL files before wal/ is reached, and the set then holds neither the rows of
those WAL files nor the snapshot's Parquet files that hold them (backup/influxdb3_files.py has the server's
rules). So wal/ is copied first: a WAL file that vanishes while it is copied was deleted by a snapshot that was
written before it vanished, and so is in the snapshots/ copied next. Then come the entries the page does not
name (e.g. `db-indices/`, `snapshot-checkpoints/`, `table-index-conversion-completed`: indexes over snapshots,
which the server brings up to date from newer snapshots on start), snapshots, dbs (every Parquet file a copied
snapshot names existed before it), and the catalog (`catalog/` since 3.4, `catalogs/` and
`_catalog_checkpoint` before) last, so it knows every table the data uses. `table-snapshots/` is regenerated on
restart and left out.

The copy is then checked as the server would read it: WAL files contiguous from the newest snapshot's
`wal_file_sequence_number` up to the newest WAL file when the copy began, and every Parquet file the snapshots
name present. A Parquet file deleted mid-copy (retention, a deleted table) is explained by the snapshot that
records its removal; newer snapshots are added (their Parquet files first) until nothing is missing, waiting for
a snapshot still being written. A copy that cannot be made whole fails with the reason instead of making a set
that would lose data. Restore: the server must be stopped; files are written in the reverse order into a
staging directory beside the node directory, which then replaces it with two renames, so an interrupted restore
leaves the old data in place.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from backup.influxdb3_files import (
    NodeFiles,
    SnapshotFormatError,
    parse_snapshot,
    read_by_server,
    snapshot_number,
    wal_number,
)
from backup.manifest import fsync_dir
from backup.setfiles import StoreReader, StoreWriter

__all__ = ["COPY_ORDER", "InfluxDB3Error", "backup_node", "check", "copy_order", "restore_node", "server_answers"]

log = logging.getLogger("backup.influxdb3")

FIRST = ("wal",)
COPY_ORDER = ("snapshots", "dbs", "catalog", "catalogs", "_catalog_checkpoint")
EXCLUDED = frozenset({"table-snapshots"})
CATALOG_ENTRIES = ("catalog", "catalogs", "_catalog_checkpoint")
# object_store's LocalFileSystem writes `<path>#<n>` and links or renames it into place: an upload in flight.
IN_FLIGHT = re.compile(r"#\d+$")
# How long to wait for a snapshot the server is still writing (its Parquet files first) to record the removal
# of a Parquet file that vanished mid-copy.
SETTLE_SECONDS = 120.0
POLL_SECONDS = 0.2


class InfluxDB3Error(RuntimeError):
    """The data directory is not what the server lays out, a copy cannot be made whole, or the server is
    running during a restore."""


def _ordered(present: set[str]) -> list[str]:
    extras = sorted(present - set(FIRST) - set(COPY_ORDER) - EXCLUDED)
    return [name for name in FIRST if name in present] + extras + [name for name in COPY_ORDER if name in present]


def copy_order(node_dir: Path) -> list[str]:
    """Top-level entries of the node directory in the order they must be copied."""
    return _ordered({entry.name for entry in node_dir.iterdir()})


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _newest_wal(node_dir: Path) -> int | None:
    """The newest WAL file now: every write acknowledged so far is in it or an older one."""
    wal = node_dir / "wal"
    numbers = [number for entry in (wal.iterdir() if wal.is_dir() else ())
               if (number := wal_number(f"wal/{entry.name}")) is not None]
    return max(numbers, default=None)


class _NodeCopy:
    """One node's files going into a set, with what the server will read from them kept track of."""

    def __init__(self, data_dir: Path, node_id: str, writer: StoreWriter):
        self.data_dir, self.writer = data_dir, writer
        self.files = NodeFiles(node_id)
        self.vanished: dict[str, None] = {}  # in the order seen, once each
        self.in_flight = 0
        self.added_late: list[str] = []

    def copy(self, path: Path, data: bytes | None = None) -> bool:
        """Copy one live file (reading snapshots and checkpoints as they go in, unless their `data` is already
        read); False when it is gone."""
        relative = path.relative_to(self.data_dir).as_posix()
        if relative in self.files.names:
            return True
        if IN_FLIGHT.search(path.name):
            self.in_flight += 1
            return False
        try:
            if read_by_server(relative):
                data = path.read_bytes() if data is None else data
                self.files.add(relative, data)
                self.writer.add_bytes(relative, data)
            else:
                self.writer.add_file(relative, path)
                self.files.add(relative)
        except FileNotFoundError:
            self.vanished[relative] = None
            return False
        except SnapshotFormatError as exc:
            raise InfluxDB3Error(f"{exc}; the server could not start on it either") from exc
        return True

    def copy_tree(self, top: str) -> None:
        for path in _walk(self.data_dir / self.files.node / top):
            self.copy(path)

    def add_newer_snapshots(self) -> bool:
        """Add every snapshot written since snapshots/ was copied, oldest first, each after its Parquet files."""
        folder = self.data_dir / self.files.node / "snapshots"
        copied = max(self.files.snapshots, default=-1)
        newer = sorted((number, entry) for entry in (folder.iterdir() if folder.is_dir() else ())
                       if (number := snapshot_number(f"snapshots/{entry.name}")) is not None and number > copied)
        for _, entry in newer:
            name, data = entry.relative_to(self.data_dir).as_posix(), entry.read_bytes()
            try:
                snapshot = parse_snapshot(data, name)
            except SnapshotFormatError as exc:
                raise InfluxDB3Error(f"{exc}; the server could not start on it either") from exc
            for relative in sorted(snapshot.parquet - self.files.names):
                self.copy(self.data_dir / relative)
            if self.copy(entry, data):
                self.added_late.append(name)
        return bool(newer)

    def settle(self, wal_at_start: int | None, timeout: float) -> None:
        """Make the copy whole: fetch what the snapshots name, add newer snapshots, wait for one being written."""
        deadline = time.monotonic() + timeout
        while self.files.problems(wal_at_start) and time.monotonic() < deadline:
            for relative in self.files.missing_parquet():
                self.copy(self.data_dir / relative)
            if self.files.problems(wal_at_start) and not self.add_newer_snapshots():
                time.sleep(max(0.0, min(POLL_SECONDS, deadline - time.monotonic())))


def backup_node(data_dir: Path, node_id: str, writer: StoreWriter, *, settle_timeout: float = SETTLE_SECONDS) -> dict:
    """Copy `<data_dir>/<node_id>/` into the set so that it restores every write acknowledged before the copy
    began, or raise InfluxDB3Error saying why it cannot. Files the server deletes meanwhile are noted."""
    node_dir = data_dir / node_id
    if not node_dir.is_dir():
        nodes = sorted(entry.name for entry in data_dir.iterdir() if entry.is_dir()) if data_dir.is_dir() else []
        raise InfluxDB3Error(f"no InfluxDB 3 data for node {node_id!r} in {data_dir} (node directories there: "
                             f"{', '.join(nodes) or 'none'}); check INFLUXDB3_NODE_ID")
    order = copy_order(node_dir)
    if not any(name in order for name in CATALOG_ENTRIES):
        raise InfluxDB3Error(f"{node_dir} has no catalog (catalog/, catalogs/ or _catalog_checkpoint): "
                             "it is not an InfluxDB 3 object store, or the server never started")
    wal_at_start = _newest_wal(node_dir)
    node = _NodeCopy(data_dir, node_id, writer)
    data = [top for top in order if top not in CATALOG_ENTRIES]
    for top in data:
        node.copy_tree(top)
    node.settle(wal_at_start, settle_timeout)
    for top in order[len(data):]:  # the catalog, last: it knows every table the copied data uses
        node.copy_tree(top)
    problems = node.files.problems(wal_at_start)
    if problems:
        raise InfluxDB3Error(f"the copy of {node_dir} would not restore every acknowledged write: "
                             + "; ".join(problems))
    if node.vanished:
        log.info("%d file(s) were deleted by the server while copying (WAL files a snapshot holds, or Parquet "
                 "files it removed): %s", len(node.vanished), ", ".join(list(node.vanished)[:5]))
    newest = node.files.newest()
    wal = node.files.wal_numbers()
    counts = Counter(name.split("/")[1] for name in node.files.names)
    return {"node_id": node_id, "order": order, "files_per_entry": dict(counts), "vanished": list(node.vanished),
            "in_flight_skipped": node.in_flight, "excluded": sorted(EXCLUDED & {p.name for p in node_dir.iterdir()}),
            "wal_at_start": wal_at_start, "newest_snapshot": newest.sequence if newest else None,
            "newest_snapshot_wal": newest.wal if newest else None, "wal_files": [wal[0], wal[-1]] if wal else None,
            "snapshots_added_after_copy": node.added_late}


def _node_of(reader: StoreReader) -> str:
    nodes = {name.split("/", 1)[0] for name in reader.names()}
    if len(nodes) != 1:
        raise InfluxDB3Error(f"expected the files of one node in the set, found {sorted(nodes) or 'none'}")
    return nodes.pop()


def check(reader: StoreReader, details: dict | None = None) -> list[str]:
    """Dry run of a restore, reading the set as the server would on start: one node with a catalog, WAL files
    contiguous after the newest snapshot's and reaching the newest one when the backup began (`details`, as
    backup_node returned them), every Parquet file the snapshots name present. Decoding is done by the caller."""
    try:
        node = _node_of(reader)
    except InfluxDB3Error as exc:
        return [f"influxdb3: {exc}"]
    tops = {name.split("/")[1] for name in reader.names() if name.count("/") >= 1}
    if not tops & set(CATALOG_ENTRIES):
        return [f"influxdb3: node {node} has no catalog in the set"]
    files, problems = NodeFiles(node), []
    for name in reader.names():
        try:
            files.add(name, reader.read_bytes(name) if read_by_server(name) else b"")
        except SnapshotFormatError as exc:
            problems.append(f"influxdb3: {exc}")
    return problems + [f"influxdb3: {problem}" for problem in files.problems((details or {}).get("wal_at_start"))]


def server_answers(url: str, timeout: float = 3.0) -> bool:
    """True when an InfluxDB 3 server answers at `url` (then its files must not be replaced)."""
    try:
        requests.get(f"{url}/ping", timeout=timeout)
    except requests.RequestException:
        return False
    return True


def restore_node(reader: StoreReader, data_dir: Path, node_id: str, *, server_running: Callable[[], bool]) -> dict:
    """Replace `<data_dir>/<node_id>/` with the set's copy. The server must be stopped."""
    set_node = _node_of(reader)
    if set_node != node_id:
        raise InfluxDB3Error(f"the set holds node {set_node!r} but INFLUXDB3_NODE_ID is {node_id!r}; object-store "
                             "paths and the catalog are tied to the node id, so restore into the same node id")
    if server_running():
        raise InfluxDB3Error("InfluxDB 3 is running: stop it first (docker compose stop influxdb3 ingest), "
                             "its files must not change under it")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    staging = data_dir / f".{node_id}.restoring-{stamp}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    by_top: dict[str, list[str]] = {}
    for name in reader.names():
        by_top.setdefault(name.split("/")[1], []).append(name)
    order = list(reversed(_ordered(set(by_top))))
    node_dir = data_dir / node_id
    previous = data_dir / f".{node_id}.pre-restore-{stamp}"
    try:
        for top in order:
            for name in sorted(by_top[top]):
                target = staging / name.split("/", 1)[1]
                reader.copy_to(name, target)
                with open(target, "rb") as handle:
                    os.fsync(handle.fileno())
        if node_dir.exists():
            os.rename(node_dir, previous)
        os.rename(staging, node_dir)
        fsync_dir(data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if previous.exists() and not node_dir.exists():
            os.rename(previous, node_dir)  # put the old data back
        raise
    shutil.rmtree(previous, ignore_errors=True)
    return {"node_id": node_id, "order": order, "files": sum(len(names) for names in by_top.values())}
