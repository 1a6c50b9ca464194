"""InfluxDB 3 Core: the object-store copy and its restore, on node directories written as
`influxdb3 serve --object-store=file --data-dir=... --node-id=...` writes them (tests/backup/influxdb3_server.py),
including a server that writes, snapshots and deletes WAL and Parquet files while the copy runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backup import influxdb3
from backup.archive import Codec
from backup.setfiles import StoreReader, StoreWriter
from tests.backup.influxdb3_server import GEN1_NS, FakeInfluxDB3Files, PacedWriter, ServerThread, rows_after_restart

NODE = "stack-node0"


def _put(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _files(node_dir: Path) -> dict[str, bytes]:
    return {path.relative_to(node_dir).as_posix(): path.read_bytes() for path in node_dir.rglob("*") if path.is_file()}


def server_tree(data_dir: Path, node: str = NODE) -> dict[str, bytes]:
    """A 3.10 node directory: WAL files, snapshots and Parquet files from a dozen flushes of the stand-in, a
    catalog v3 and the 3.x indexes (influxdb3_write/src/paths.rs, influxdb3_catalog)."""
    FakeInfluxDB3Files(data_dir, node).run(12)
    for relative, data in {
        # catalog v3 (3.10+): a snapshot overwritten in place and 20-digit log files
        "catalog/v3/snapshot": b"catalog-snapshot\x00" * 20,
        "catalog/v3/logs/00000000000000000001.catalog": b"log-1",
        "catalog/v3/logs/00000000000000000002.catalog": b"log-2",
        # 3.x indexes that the docs do not mention
        "db-indices/0/0/index.info.json": b'{"files":[]}',
        "table-index-conversion-completed": b'{\n  "last_sequence_number": 5\n}',
        # regenerated on restart: the docs leave them out
        "table-snapshots/0/0/00000000000000000002.info.json": b'{"x":1}',
    }.items():
        _put(data_dir / node, relative, data)
    return _files(data_dir / node)


def _restored_rows(tmp_path: Path, writer: StoreWriter, details: dict) -> set:
    """Restore the set into a new data directory and start the server's restart model on it."""
    reader = StoreReader(writer.set_dir, "influxdb3", writer.entries, writer.codec.key)
    influxdb3.restore_node(reader, tmp_path / "restored", NODE, server_running=lambda: False)
    return rows_after_restart(tmp_path / "restored" / NODE)


def _reader(writer: StoreWriter, leave_out: frozenset[str] = frozenset()) -> StoreReader:
    """The set's InfluxDB 3 files as verify reads them, less `leave_out` (names as the server wrote them)."""
    whole = StoreReader(writer.set_dir, "influxdb3", writer.entries, writer.codec.key)
    kept = [entry for entry in writer.entries if whole.original_name(entry) not in leave_out]
    return StoreReader(writer.set_dir, "influxdb3", kept, writer.codec.key)


def test_copy_order_puts_the_wal_first_and_the_catalog_last(tmp_path: Path):
    server_tree(tmp_path)
    assert influxdb3.copy_order(tmp_path / NODE) == [
        "wal", "db-indices", "table-index-conversion-completed", "snapshots", "dbs", "catalog"]
    legacy = tmp_path / "legacy"
    for relative in ("snapshots/1.info.json", "dbs/x/y.parquet", "wal/1.wal", "catalogs/1.catalog",
                     "_catalog_checkpoint"):
        _put(legacy, relative, b"x")
    assert influxdb3.copy_order(legacy) == ["wal", "snapshots", "dbs", "catalogs", "_catalog_checkpoint"]


class RecordingWriter(StoreWriter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order: list[str] = []

    def add_stream(self, relative, source, **kwargs):
        self.order.append(relative)
        return super().add_stream(relative, source, **kwargs)


def test_backup_copies_files_in_order_and_skips_table_snapshots_and_in_flight_uploads(tmp_path: Path):
    data_dir = tmp_path / "data"
    files = server_tree(data_dir)
    _put(data_dir / NODE, "wal/00000000013.wal#1", b"upload in flight")
    writer = RecordingWriter(tmp_path / "set", "influxdb3", Codec("zstd", 3, None))
    details = influxdb3.backup_node(data_dir, NODE, writer)
    tops = [relative.split("/")[1] for relative in writer.order]
    first_seen = list(dict.fromkeys(tops))
    assert first_seen == ["wal", "db-indices", "table-index-conversion-completed", "snapshots", "dbs", "catalog"]
    assert tops == sorted(tops, key=first_seen.index), "each entry is copied whole before the next"
    copied = {relative.split("/", 1)[1] for relative in writer.order}
    assert copied == {name for name in files if not name.startswith("table-snapshots/")}
    assert details["in_flight_skipped"] == 1 and details["excluded"] == ["table-snapshots"]
    assert (details["wal_at_start"], details["newest_snapshot"], details["newest_snapshot_wal"]) == (12, 5, 10)


def test_backup_names_the_node_directories_when_the_node_id_is_wrong(tmp_path: Path):
    server_tree(tmp_path / "data", node="other-node")
    writer = StoreWriter(tmp_path, "influxdb3", Codec())
    with pytest.raises(influxdb3.InfluxDB3Error, match=r"node 'stack-node0'.*other-node"):
        influxdb3.backup_node(tmp_path / "data", NODE, writer)


def test_a_snapshot_during_the_copy_loses_no_acknowledged_write(tmp_path: Path):
    """The server keeps writing while the backup copies: every flush adds a WAL file, every 14th or so a
    snapshot (Parquet files, then the snapshot file), which then deletes all but the newest five snapshotted WAL
    files (--wal-snapshot-size 10 --snapshotted-wal-files-to-keep 5: the defaults, 600 and 300, scaled down).
    InfluxData's order (snapshots, dbs, wal) made a set whose newest snapshot predates WAL files already gone:
    the restored server replayed around the gap and lost the writes not yet in a snapshot when the copy began."""
    data_dir = tmp_path / "data"
    files = FakeInfluxDB3Files(data_dir, NODE, snapshot_size=10, keep=5).run(40)
    _put(data_dir / NODE, "catalog/v3/snapshot", b"catalog")
    server = ServerThread(files)
    with server.running():
        acknowledged, snapshots_before = files.acknowledged_rows(), files.snapshot_sequence
        writer = PacedWriter(tmp_path / "set", "influxdb3", Codec("zstd", 3, None), server=server)
        details = influxdb3.backup_node(data_dir, NODE, writer)
    assert files.snapshot_sequence - snapshots_before >= 3 and files.wal_deleted > 30, "the race did happen"
    restored = _restored_rows(tmp_path, writer, details)
    assert not acknowledged - restored, f"{len(acknowledged - restored)} acknowledged rows lost"
    assert influxdb3.check(_reader(writer), details) == []


def test_a_wal_file_the_server_deletes_while_it_is_copied_is_noted_and_its_snapshot_is_in_the_set(
        tmp_path: Path, monkeypatch):
    data_dir = tmp_path / "data"
    files = FakeInfluxDB3Files(data_dir, NODE).run(12)
    _put(data_dir / NODE, "catalog/v3/snapshot", b"catalog")
    acknowledged = files.acknowledged_rows()
    original = StoreWriter.add_stream

    def snapshot_first(self, relative, source, **kwargs):
        if relative == f"{NODE}/wal/00000000008.wal":  # the oldest one listed: the server snapshots just now
            while (data_dir / NODE / "wal/00000000009.wal").exists():
                files.tick()
        return original(self, relative, source, **kwargs)

    monkeypatch.setattr(StoreWriter, "add_stream", snapshot_first)
    writer = StoreWriter(tmp_path / "set", "influxdb3", Codec())
    details = influxdb3.backup_node(data_dir, NODE, writer)
    assert f"{NODE}/wal/00000000009.wal" in details["vanished"]
    assert details["newest_snapshot_wal"] >= 9, "the snapshot that deleted it is in the set"
    assert not acknowledged - _restored_rows(tmp_path, writer, details)
    assert influxdb3.check(_reader(writer), details) == []


def test_a_parquet_file_retention_deletes_mid_copy_is_explained_by_the_snapshot_that_removes_it(
        tmp_path: Path, monkeypatch):
    """A snapshot deletes expired Parquet files before it writes its own file (which records the removal): the
    backup waits for that file and adds it, so the set never names a Parquet file it does not hold."""
    data_dir = tmp_path / "data"
    files = FakeInfluxDB3Files(data_dir, NODE, retention_ns=8 * GEN1_NS).run(12)
    _put(data_dir / NODE, "catalog/v3/snapshot", b"catalog")
    acknowledged, removed_before = files.acknowledged_rows(), set(files.removed_rows)
    original = StoreWriter.add_stream
    removal: list[threading.Timer] = []

    def expire_when_dbs_begins(self, relative, source, **kwargs):
        if "/dbs/" in relative and not removal:
            files.hold_snapshot_files = True  # the snapshot file comes 0.3 s after its deletions
            before = files.snapshot_sequence
            while files.snapshot_sequence == before:
                files.tick()
            files.hold_snapshot_files = False
            removal.append(threading.Timer(0.3, files.release_held))
            removal[0].start()
        return original(self, relative, source, **kwargs)

    monkeypatch.setattr(StoreWriter, "add_stream", expire_when_dbs_begins)
    writer = StoreWriter(tmp_path / "set", "influxdb3", Codec())
    details = influxdb3.backup_node(data_dir, NODE, writer)
    removal[0].join()
    assert files.removed_rows - removed_before, "retention deleted Parquet files while the copy ran"
    assert not acknowledged - files.removed_rows - _restored_rows(tmp_path, writer, details)
    assert influxdb3.check(_reader(writer), details) == []
    assert details["snapshots_added_after_copy"] == [f"{NODE}/snapshots/{2**64 - 1 - files.snapshot_sequence:020}"
                                                     ".info.json"]


def test_a_copy_that_cannot_be_made_whole_fails_with_the_reason(tmp_path: Path):
    data_dir = tmp_path / "data"
    server_tree(data_dir)
    (data_dir / NODE / "wal/00000000011.wal").unlink()  # after snapshot 5 (WAL 10): the server lost it
    with pytest.raises(influxdb3.InfluxDB3Error, match=r"00000000011\.wal missing \(snapshot 5 holds WAL files up to "
                                                       r"00000000010\.wal"):
        influxdb3.backup_node(data_dir, NODE, StoreWriter(tmp_path / "set", "influxdb3", Codec()), settle_timeout=0.3)


def test_verify_reads_the_set_as_the_server_would_on_start(tmp_path: Path):
    data_dir = tmp_path / "data"
    files = server_tree(data_dir)
    writer = StoreWriter(tmp_path / "set", "influxdb3", Codec("zstd", 3, b"key material!"))
    details = influxdb3.backup_node(data_dir, NODE, writer)
    assert influxdb3.check(_reader(writer), details) == []
    parquet = sorted(name for name in files if name.endswith(".parquet"))[-1]
    gap = _reader(writer, frozenset({f"{NODE}/wal/00000000011.wal", f"{NODE}/{parquet}"}))
    assert influxdb3.check(gap, details) == [
        f"influxdb3: {NODE}/wal: 00000000011.wal missing (snapshot 5 holds WAL files up to 00000000010.wal; the "
        "server would replay around the gap and lose the writes in it)",
        f"influxdb3: 1 Parquet file(s) named by the snapshots are missing: {NODE}/{parquet}"]
    short = _reader(writer, frozenset({f"{NODE}/wal/00000000012.wal"}))
    assert influxdb3.check(short, details) == [
        f"influxdb3: {NODE}/wal: ends at 00000000011.wal but 00000000012.wal existed when the backup began "
        "(snapshot 5 holds WAL files up to 00000000010.wal): writes acknowledged before the backup are missing"]
    renamed = StoreWriter(tmp_path / "renamed", "influxdb3", Codec())
    renamed.add_bytes(f"{NODE}/catalog/v3/snapshot", b"catalog")
    newest = f"{NODE}/snapshots/{2**64 - 1 - 5:020}.info.json"
    renamed.add_bytes(newest, b'{"snapshot_sequence_number": 4, "wal_file_sequence_number": 8}')
    assert influxdb3.check(_reader(renamed), {}) == [
        f"influxdb3: {newest}: the name says snapshot 5, the content 4"]


@pytest.mark.parametrize("key", [None, b"secret passphrase!"], ids=["plain", "encrypted"])
def test_restore_round_trip_replaces_the_node_directory_with_the_backup(tmp_path: Path, key):
    data_dir = tmp_path / "data"
    files = server_tree(data_dir)
    writer = StoreWriter(tmp_path / "set", "influxdb3", Codec("gzip", 6, key))
    influxdb3.backup_node(data_dir, NODE, writer)
    # After the backup the server writes more and a disk problem eats a parquet file.
    _put(data_dir / NODE, "wal/00000000099.wal", b"written after the backup")
    (data_dir / NODE / next(name for name in files if name.endswith(".parquet"))).unlink()
    reader = StoreReader(tmp_path / "set", "influxdb3", writer.entries, key)
    result = influxdb3.restore_node(reader, data_dir, NODE, server_running=lambda: False)
    restored = {path.relative_to(data_dir / NODE).as_posix(): path.read_bytes()
                for path in (data_dir / NODE).rglob("*") if path.is_file()}
    assert restored == {name: data for name, data in files.items() if not name.startswith("table-snapshots/")}
    assert result["order"] == ["catalog", "dbs", "snapshots", "table-index-conversion-completed", "db-indices",
                               "wal"], "reverse of the backup order"
    assert sorted(path.name for path in data_dir.iterdir()) == [NODE], "no staging or old copy left behind"


def test_restore_refuses_while_the_server_runs_and_leaves_the_data_alone(tmp_path: Path):
    data_dir = tmp_path / "data"
    server_tree(data_dir)
    writer = StoreWriter(tmp_path / "set", "influxdb3", Codec())
    influxdb3.backup_node(data_dir, NODE, writer)
    before = sorted(p.as_posix() for p in data_dir.rglob("*"))
    reader = StoreReader(tmp_path / "set", "influxdb3", writer.entries, None)
    with pytest.raises(influxdb3.InfluxDB3Error, match="running: stop it first"):
        influxdb3.restore_node(reader, data_dir, NODE, server_running=lambda: True)
    with pytest.raises(influxdb3.InfluxDB3Error, match="restore into the same node id"):
        influxdb3.restore_node(reader, data_dir, "another-node", server_running=lambda: False)
    assert sorted(p.as_posix() for p in data_dir.rglob("*")) == before


def test_a_restore_that_fails_midway_puts_nothing_in_place(tmp_path: Path, monkeypatch):
    data_dir = tmp_path / "data"
    files = server_tree(data_dir)
    writer = StoreWriter(tmp_path / "set", "influxdb3", Codec())
    influxdb3.backup_node(data_dir, NODE, writer)
    reader = StoreReader(tmp_path / "set", "influxdb3", writer.entries, None)
    calls = {"n": 0}
    original = StoreReader.copy_to

    def fail_on_fifth(self, relative, target, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        return original(self, relative, target, **kwargs)

    monkeypatch.setattr(StoreReader, "copy_to", fail_on_fifth)
    with pytest.raises(OSError, match="disk full"):
        influxdb3.restore_node(reader, data_dir, NODE, server_running=lambda: False)
    assert {p.relative_to(data_dir / NODE).as_posix() for p in (data_dir / NODE).rglob("*") if p.is_file()} == \
        set(files)
    assert sorted(path.name for path in data_dir.iterdir()) == [NODE]


def test_server_answers_is_false_when_nothing_listens(unused_port: int):
    assert influxdb3.server_answers(f"http://127.0.0.1:{unused_port}", timeout=1) is False
