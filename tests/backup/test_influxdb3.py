"""InfluxDB 3 Core: the object-store copy in the documented order, and the restore round trip, on a directory
tree laid out as `influxdb3 serve --object-store=file --data-dir=... --node-id=...` lays it out (3.10)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backup import influxdb3
from backup.archive import Codec
from backup.setfiles import StoreReader, StoreWriter

NODE = "stack-node0"


def _put(root: Path, relative: str, data: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def server_tree(data_dir: Path, node: str = NODE) -> dict[str, bytes]:
    """Files as the server names them (influxdb3_write/src/paths.rs, influxdb3_wal, catalog v3)."""
    files = {
        # catalog v3 (3.10+): a snapshot overwritten in place and 20-digit log files
        "catalog/v3/snapshot": b"catalog-snapshot\x00" * 20,
        "catalog/v3/logs/00000000000000000001.catalog": b"log-1",
        "catalog/v3/logs/00000000000000000002.catalog": b"log-2",
        # WAL: 11-digit sequence numbers
        "wal/00000000041.wal": os.urandom(3000),
        "wal/00000000042.wal": os.urandom(2000),
        # snapshots: u64::MAX - sequence, 20 digits
        "snapshots/18446744073709551613.info.json": b'{"snapshot_sequence_number":2}',
        "snapshots/18446744073709551614.info.json": b'{"snapshot_sequence_number":1}',
        # parquet: dbs/<db>-<id>/<table>-<id>/<YYYY-MM-DD>/<HH-MM>/<wal seq:010>.parquet
        "dbs/telemetry-0/weather-0/2025-01-07/23-50/0000000041.parquet": b"PAR1" + os.urandom(5000) + b"PAR1",
        "dbs/telemetry-0/sensors-1/2025-01-07/23-50/0000000041.parquet": b"PAR1" + os.urandom(4000) + b"PAR1",
        "dbs/monitoring-1/backup_run-0/2025-01-07/23-00/0000000040.parquet": b"PAR1" + os.urandom(100) + b"PAR1",
        # 3.x indexes that the docs do not mention
        "db-indices/0/0/index.info.json": b'{"files":[]}',
        "table-index-conversion-completed": b'{"last_snapshot_sequence_number":2}',
        # regenerated on restart: the docs leave them out
        "table-snapshots/0/0/00000000000000000002.info.json": b'{"x":1}',
    }
    for relative, data in files.items():
        _put(data_dir / node, relative, data)
    return files


def test_copy_order_follows_the_vendor_documentation(tmp_path: Path):
    server_tree(tmp_path)
    assert influxdb3.copy_order(tmp_path / NODE) == [
        "db-indices", "table-index-conversion-completed", "snapshots", "dbs", "wal", "catalog"]
    legacy = tmp_path / "legacy"
    for relative in ("snapshots/1.info.json", "dbs/x/y.parquet", "wal/1.wal", "catalogs/1.catalog",
                     "_catalog_checkpoint"):
        _put(legacy, relative, b"x")
    assert influxdb3.copy_order(legacy) == ["snapshots", "dbs", "wal", "catalogs", "_catalog_checkpoint"]


class RecordingWriter(StoreWriter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order: list[str] = []

    def add_file(self, relative, path, **kwargs):
        self.order.append(relative)
        return super().add_file(relative, path, **kwargs)


def test_backup_copies_files_in_order_and_skips_table_snapshots_and_in_flight_uploads(tmp_path: Path):
    data_dir = tmp_path / "data"
    files = server_tree(data_dir)
    _put(data_dir / NODE, "wal/00000000043.wal#1", b"upload in flight")
    writer = RecordingWriter(tmp_path / "set", "influxdb3", Codec("zstd", 3, None))
    details = influxdb3.backup_node(data_dir, NODE, writer)
    tops = [relative.split("/")[1] for relative in writer.order]
    first_seen = list(dict.fromkeys(tops))
    assert first_seen == ["db-indices", "table-index-conversion-completed", "snapshots", "dbs", "wal", "catalog"]
    assert tops == sorted(tops, key=first_seen.index), "each entry is copied whole before the next"
    copied = {relative.split("/", 1)[1] for relative in writer.order}
    assert copied == {name for name in files if not name.startswith("table-snapshots/")}
    assert details["in_flight_skipped"] == 1 and details["excluded"] == ["table-snapshots"]


def test_backup_names_the_node_directories_when_the_node_id_is_wrong(tmp_path: Path):
    server_tree(tmp_path / "data", node="other-node")
    writer = StoreWriter(tmp_path, "influxdb3", Codec())
    with pytest.raises(influxdb3.InfluxDB3Error, match=r"node 'stack-node0'.*other-node"):
        influxdb3.backup_node(tmp_path / "data", NODE, writer)


def test_a_wal_file_deleted_while_copying_is_noted_not_fatal(tmp_path: Path, monkeypatch):
    data_dir = tmp_path / "data"
    server_tree(data_dir)
    writer = StoreWriter(tmp_path, "influxdb3", Codec())
    original = StoreWriter.add_file

    def vanish_wal(self, relative, path, **kwargs):
        if relative.endswith("00000000041.wal"):
            path.unlink()  # the server folded it into a snapshot just now
        return original(self, relative, path, **kwargs)

    monkeypatch.setattr(StoreWriter, "add_file", vanish_wal)
    details = influxdb3.backup_node(data_dir, NODE, writer)
    assert details["vanished"] == [f"{NODE}/wal/00000000041.wal"]


@pytest.mark.parametrize("key", [None, b"secret passphrase!"], ids=["plain", "encrypted"])
def test_restore_round_trip_replaces_the_node_directory_with_the_backup(tmp_path: Path, key):
    data_dir = tmp_path / "data"
    files = server_tree(data_dir)
    writer = StoreWriter(tmp_path / "set", "influxdb3", Codec("gzip", 6, key))
    influxdb3.backup_node(data_dir, NODE, writer)
    # After the backup the server writes more and a disk problem eats a parquet file.
    _put(data_dir / NODE, "wal/00000000099.wal", b"written after the backup")
    (data_dir / NODE / "dbs/telemetry-0/weather-0/2025-01-07/23-50/0000000041.parquet").unlink()
    reader = StoreReader(tmp_path / "set", "influxdb3", writer.entries, key)
    result = influxdb3.restore_node(reader, data_dir, NODE, server_running=lambda: False)
    restored = {path.relative_to(data_dir / NODE).as_posix(): path.read_bytes()
                for path in (data_dir / NODE).rglob("*") if path.is_file()}
    assert restored == {name: data for name, data in files.items() if not name.startswith("table-snapshots/")}
    assert result["order"][:3] == ["catalog", "wal", "dbs"], "reverse of the backup order"
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
