"""Whole backup runs against the three stores: the set, its manifest and checksums, metrics, failures."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup import metrics
from backup.config import load_config
from backup.job import run_backup
from backup.manifest import MANIFEST_NAME, SetManifest
from backup.restore import RestoreRequest, prepare_restore, restore_set
from backup.sets import SetStore
from backup.verify import verify_directory
from tests.backup.fakestack import FakeStack, key_text
from tests.support.lineprotocol import parse_lines


@pytest.fixture
def stack(tmp_path: Path):
    with FakeStack(tmp_path) as running:
        yield running


def test_a_run_writes_one_complete_verified_set_with_a_manifest(stack: FakeStack):
    config = load_config(stack.env())
    outcome = run_backup(config, trigger="manual")
    assert outcome.success, outcome.error
    backup_set = outcome.backup_set
    manifest = json.loads((backup_set.path / MANIFEST_NAME).read_text())
    assert manifest["status"] == "complete" and manifest["trigger"] == "manual"
    assert {store: result["status"] for store, result in manifest["stores"].items()} == {
        "influxdb2": "ok", "influxdb3": "ok", "grafana": "ok"}
    assert manifest["stores"]["influxdb2"]["server_version"] == "v2.9.1"
    assert manifest["stores"]["influxdb3"]["server_version"] == "3.10.5"
    assert manifest["stores"]["grafana"]["server_version"] == "12.4.11"
    assert manifest["duration_seconds"] > 0 and manifest["bytes"] == sum(f["size"] for f in manifest["files"])
    on_disk = sorted(p.relative_to(backup_set.path).as_posix() for p in backup_set.path.rglob("*") if p.is_file())
    assert on_disk == sorted([f["path"] for f in manifest["files"]] + [MANIFEST_NAME, "verification.json"])
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    assert backup_set.verified and not list(stack.backup_dir.glob(".partial-*"))
    assert any(f["path"].startswith("influxdb3/stack-node0/catalog/v3/") for f in manifest["files"])


def test_every_run_records_its_outcome_in_both_databases_in_the_declared_schema(stack: FakeStack):
    stack.influxdb2.add_bucket("monitoring")
    config = load_config(stack.env())
    outcome = run_backup(config, trigger="schedule")
    assert outcome.metrics == {"influxdb2": "written 4", "influxdb3": "written 4"}
    (bucket, v2_text), = stack.influxdb2.written
    (database, v3_text), = stack.influxdb3.written
    assert bucket == database == metrics.TARGET
    assert v2_text == v3_text
    points = parse_lines(v3_text)
    assert {point.tags["store"] for point in points} == set(metrics.TAGS["store"])
    for point in points:
        assert point.measurement == metrics.MEASUREMENT
        assert set(point.tags) == set(metrics.TAGS) and point.tags["trigger"] == "schedule"
        assert {key: point.field_types[key] for key in point.fields} == \
            {key: spec[0] for key, spec in metrics.FIELDS.items()}
        assert point.fields["success"] is True and point.fields["set"] == outcome.backup_set.name
    overall = next(point for point in points if point.tags["store"] == "all")
    assert overall.fields["bytes"] == outcome.backup_set.manifest.bytes
    write = next(r for r in stack.servers["influxdb3"].requests if r.path == "/api/v3/write_lp")
    assert write.param("precision") == "nanosecond"


def test_metrics_wait_for_the_ingest_service_to_create_monitoring_spooled_then_replayed(stack):
    stack.influxdb3.drop_database("monitoring")
    stack.influxdb3.accept_writes = False
    config = load_config(stack.env())
    first = run_backup(config, trigger="manual")
    assert first.success, "metrics never fail a backup"
    assert first.metrics["influxdb2"] == "spooled: bucket 'monitoring' does not exist yet (the ingest service " \
        "creates it)"
    assert first.metrics["influxdb3"].startswith("spooled: database 'monitoring' does not exist yet")
    assert "monitoring" not in stack.influxdb2.buckets, "the bucket is the ingest service's to create"
    assert not stack.servers["influxdb3"].matching("POST", "/api/v3/write_lp"), "no write auto-creates it"
    spooled = (stack.backup_dir / ".metrics-spool" / "influxdb3.lp").read_text().splitlines()
    assert len(spooled) == 4
    stack.influxdb3.add_database("monitoring")  # the ingest service started meanwhile
    second = run_backup(config, trigger="manual")
    assert second.metrics["influxdb3"].startswith("spooled: HTTP 503")
    stack.influxdb3.accept_writes = True
    stack.influxdb2.add_bucket("monitoring")
    third = run_backup(config, trigger="manual")
    assert third.metrics == {"influxdb2": "written 12", "influxdb3": "written 12"}
    assert not list((stack.backup_dir / ".metrics-spool").glob("*.lp"))
    assert len(parse_lines(stack.influxdb3.written[-1][1])) == 12


def test_a_failing_store_is_logged_with_its_reason_and_the_others_still_run(stack, caplog):
    stack.grafana.auth = "Basic nobody"
    config = load_config(stack.env())
    with caplog.at_level(logging.ERROR):
        outcome = run_backup(config, trigger="manual")
    assert not outcome.success and outcome.error == "failed: grafana"
    assert "backup of grafana failed: GrafanaError: GET /api/health answered HTTP 401" in caplog.text
    manifest = outcome.backup_set.manifest
    assert manifest.status == "partial"
    assert manifest.stores["grafana"].status == "failed" and "401" in manifest.stores["grafana"].error
    assert not manifest.files_of("grafana") and not (outcome.backup_set.path / "grafana").exists()
    assert manifest.stores["influxdb2"].ok and manifest.stores["influxdb3"].ok


def test_when_every_store_fails_no_set_is_kept(stack, tmp_path):
    config = load_config(stack.env(INFLUXDB2_TOKEN="wrong", INFLUXDB3_NODE_ID="nope", GRAFANA_PASSWORD="x"))
    outcome = run_backup(config, trigger="manual")
    assert not outcome.success and outcome.backup_set is None
    assert SetStore(stack.backup_dir).sets() == [] and not list(stack.backup_dir.glob(".partial-*"))


def test_encrypted_zstd_set_round_trips_through_restore_of_every_store(stack: FakeStack):
    config = load_config(stack.env(BACKUP_ENCRYPTION_KEY=key_text(), BACKUP_COMPRESSION="zstd"))
    outcome = run_backup(config, trigger="manual")
    assert outcome.success
    backup_set = outcome.backup_set
    assert all(f.path.endswith(".enc") for f in backup_set.manifest.files)
    # Lose the InfluxDB 3 node directory and Grafana's dashboards, then restore everything.
    import shutil
    shutil.rmtree(stack.data_dir / "stack-node0")
    connection = sqlite3.connect(stack.grafana_db)
    connection.execute("DELETE FROM dashboard")
    connection.commit()
    connection.close()
    sets = SetStore(stack.backup_dir)
    undo = prepare_restore(config, sets, backup_set, RestoreRequest())
    assert sorted(undo.manifest.stores) == ["grafana", "influxdb2"], "the wiped InfluxDB 3 had nothing to keep"
    results = restore_set(config, sets, backup_set, RestoreRequest(), influxdb3_running=lambda: False,
                          grafana_running=lambda: False)
    assert list(results) == ["influxdb3", "grafana", "influxdb2"]
    restored = {p.relative_to(stack.data_dir / "stack-node0").as_posix(): p.read_bytes()
                for p in (stack.data_dir / "stack-node0").rglob("*") if p.is_file()}
    assert restored == {k: v for k, v in stack.influxdb3_files.items() if not k.startswith("table-snapshots")}
    connection = sqlite3.connect(stack.grafana_db)
    assert connection.execute("SELECT count(*) FROM dashboard").fetchone()[0] == 5
    connection.close()
    kv = next(r for r in stack.servers["influxdb2"].requests if r.path == "/api/v2/restore/kv")
    assert kv.body == stack.influxdb2.kv


def test_verify_without_the_key_says_the_contents_were_not_checked(stack: FakeStack):
    config = load_config(stack.env(BACKUP_ENCRYPTION_KEY=key_text()))
    backup_set = run_backup(config, trigger="manual").backup_set
    problems = verify_directory(backup_set.path, SetManifest.read(backup_set.path), None)
    assert problems == ["the set is encrypted and BACKUP_ENCRYPTION_KEY is not set: contents not checked"]


def test_manifest_times_are_utc_and_the_set_is_named_for_the_start(stack: FakeStack):
    moments = iter([datetime(2025, 1, 7, 22, 59, 0, tzinfo=UTC)] + [datetime(2025, 1, 7, 23, 0, 5, tzinfo=UTC)] * 10)
    outcome = run_backup(load_config(stack.env(BACKUP_METRICS="false")), trigger="schedule",
                         clock=lambda: next(moments))
    assert outcome.backup_set.name == "20250107T225900Z"
    assert outcome.backup_set.manifest.started_at == "2025-01-07T22:59:00Z"
