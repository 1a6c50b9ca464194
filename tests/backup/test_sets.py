"""Sets on disk: atomicity (a killed run), `list`, `verify` catching corruption, retention over past sets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backup.__main__ import main
from backup.config import RetentionPolicy, load_config
from backup.job import apply_retention, run_backup
from backup.manifest import SetManifest, StoreResult, iso, write_json_atomic
from backup.retention import plan_retention
from backup.sets import SetStore
from backup.verify import verify_directory
from tests.backup.fakestack import FakeStack
from tests.support.paths import REPO


@pytest.fixture
def stack(tmp_path: Path):
    with FakeStack(tmp_path) as running:
        yield running


# ------------------------------------------------------------------------------------------- atomicity
KILLED_RUN = textwrap.dedent("""
    import sys, time
    from backup import job
    from backup.config import load_config
    original = job.STORE_FUNCTIONS["influxdb3"]

    def slow_influxdb3(config, writer, base, scratch):
        entry = writer.open("stack-node0/wal/99999999999.wal")
        entry.write(b"x" * 100_000)
        print("WRITING", flush=True)
        time.sleep(60)  # killed here, mid-file

    job.STORE_FUNCTIONS["influxdb3"] = slow_influxdb3
    job.run_backup(load_config(), trigger="manual")
""")


def test_a_run_killed_midway_leaves_nothing_that_looks_complete(stack: FakeStack, capsys):
    env = {**os.environ, **stack.env(BACKUP_METRICS="false"), "PYTHONPATH": str(REPO)}
    good = run_backup(load_config(stack.env(BACKUP_METRICS="false")), trigger="manual").backup_set
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "WRITING"  # influxdb2 is done, influxdb3 is mid-file
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    store = SetStore(stack.backup_dir)
    (partial,) = store.partials()
    assert any(partial.path.rglob("*.wal*")), "the killed run really was writing"
    assert [item.name for item in store.sets()] == [good.name], "the partial set is not listed as a set"
    os.environ.update(stack.env(BACKUP_METRICS="false"))
    try:
        assert main(["list"]) == 0
        listing = capsys.readouterr().out
        assert f"{partial.name:<20} -" in listing and "INCOMPLETE" in listing and "not usable" in listing
        assert main(["verify", partial.name]) == 1
        assert main(["restore", partial.name, "--only", "grafana"]) == 1
        decisions = plan_retention(store.sets(), RetentionPolicy(1, 0, 0), ZoneInfo("UTC"))
        assert [d.backup_set.name for d in decisions] == [good.name], "retention never counts it"
        run_backup(load_config(stack.env(BACKUP_METRICS="false")), trigger="manual")
        assert store.partials() == [], "the next run removes what the killed one left"
    finally:
        for name in stack.env():
            os.environ.pop(name, None)


def test_an_interrupted_set_is_refused_by_name(stack: FakeStack):
    store = SetStore(stack.backup_dir)
    partial = store.begin(datetime(2025, 1, 7, 22, 59, tzinfo=UTC))
    with pytest.raises(LookupError, match="incomplete: its run was interrupted"):
        store.get(partial.name)


# ---------------------------------------------------------------------------------------------- verify
def _fresh_set(stack: FakeStack, **env):
    config = load_config(stack.env(BACKUP_METRICS="false", **env))
    return config, run_backup(config, trigger="manual").backup_set


@pytest.mark.parametrize("damage", ["flip-a-byte", "truncate", "delete", "add-stray-file", "edit-manifest-size"])
def test_verify_catches_a_corrupted_set(stack: FakeStack, damage: str):
    config, backup_set = _fresh_set(stack)
    target = next(p for p in backup_set.path.rglob("*.parquet.zst"))
    if damage == "flip-a-byte":
        raw = bytearray(target.read_bytes())
        raw[len(raw) // 2] ^= 0x40
        target.write_bytes(bytes(raw))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-10])
    elif damage == "delete":
        target.unlink()
    elif damage == "add-stray-file":
        (backup_set.path / "influxdb3" / "stray.bin").write_bytes(b"?")
    else:
        body = json.loads((backup_set.path / "manifest.json").read_text())
        body["files"][0]["size"] += 1
        write_json_atomic(backup_set.path / "manifest.json", body)
    problems = verify_directory(backup_set.path, SetManifest.read(backup_set.path), config.encryption_key)
    assert problems, damage
    os.environ.update(stack.env(BACKUP_METRICS="false"))
    try:
        assert main(["verify", backup_set.name]) == 1
    finally:
        for name in stack.env():
            os.environ.pop(name, None)
    assert SetStore(stack.backup_dir).get(backup_set.name).verification["ok"] is False


def test_verify_catches_a_bit_flip_that_keeps_the_checksum_story_consistent(stack: FakeStack):
    """An attacker (or a bug) who rewrites a file AND its manifest hashes is still caught by authentication."""
    from backup.archive import sha256_file
    from tests.backup.fakestack import key_text
    config, backup_set = _fresh_set(stack, BACKUP_ENCRYPTION_KEY=key_text())
    target = next(p for p in backup_set.path.rglob("grafana.db.zst.enc"))
    raw = bytearray(target.read_bytes())
    raw[-20] ^= 0x01
    target.write_bytes(bytes(raw))
    body = json.loads((backup_set.path / "manifest.json").read_text())
    entry = next(f for f in body["files"] if f["path"].endswith("grafana.db.zst.enc"))
    entry["size"], entry["sha256"] = sha256_file(target)
    write_json_atomic(backup_set.path / "manifest.json", body)
    problems = verify_directory(backup_set.path, SetManifest.read(backup_set.path), config.encryption_key)
    assert len(problems) == 1 and "failed authentication" in problems[0]


# ------------------------------------------------------------------------------------------- retention
def _past_set(store: SetStore, finished: datetime, *, complete: bool = True, verified: bool | None = True) -> str:
    """A set as this service writes it, finished at a time in the past (`verified` None: never verified)."""
    partial = store.begin(finished)
    stores = {"influxdb2": StoreResult("ok"), "grafana": StoreResult("ok" if complete else "failed", error="x")}
    manifest = SetManifest(name=partial.name, started_at=iso(finished - timedelta(minutes=5)),
                           finished_at=iso(finished), duration_seconds=300.0, trigger="schedule", timezone="UTC",
                           compression="zstd", encrypted=False, stores=stores, files=[])
    backup_set = store.finalize(partial, manifest)
    if verified is not None:
        store.record_verification(backup_set, verified, [] if verified else ["broken"])
    stamp = finished.timestamp()
    os.utime(backup_set.path, (stamp, stamp))
    return backup_set.name


def test_retention_keeps_daily_weekly_monthly_and_prunes_the_rest(tmp_path: Path):
    store = SetStore(tmp_path)
    now = datetime(2025, 6, 30, 23, 59, tzinfo=UTC)
    names = [_past_set(store, now - timedelta(days=days)) for days in range(0, 120)]
    (tmp_path / "20200101T000000Z").mkdir()  # someone else's folder that only looks like a set
    (tmp_path / "notes.txt").write_text("mine")
    config = load_config({"BACKUP_DIR": str(tmp_path), "TZ": "UTC", "BACKUP_KEEP_DAILY": "7",
                          "BACKUP_KEEP_WEEKLY": "4", "BACKUP_KEEP_MONTHLY": "3", "INFLUXDB2_TOKEN": "t",
                          "BACKUP_STORES": "influxdb2"})
    with store.lock():
        pruned = apply_retention(config, store)
    kept = [item.name for item in store.sets()]
    expected_days = {(now - timedelta(days=days)).strftime("%Y%m%d") for days in range(7)}
    assert expected_days <= {name[:8] for name in kept}
    # weekly: newest of each of the last 4 ISO weeks; monthly: newest of June, May, April
    assert {"20250629", "20250622", "20250615"} <= {name[:8] for name in kept}
    assert {"20250531", "20250430"} <= {name[:8] for name in kept}
    assert len(kept) == len(set(kept)) and len(kept) + len(pruned) == len(names)
    assert len(kept) == 7 + 2 + 2  # weekly #1 and monthly #1 are today's set, week #2 is day 1..6's week
    assert (tmp_path / "20200101T000000Z").is_dir() and (tmp_path / "notes.txt").is_file(), "only ours is pruned"


def test_the_newest_verified_set_survives_even_when_no_rule_keeps_it(tmp_path: Path):
    store = SetStore(tmp_path)
    now = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
    oldest_verified = _past_set(store, now - timedelta(days=40))
    _past_set(store, now - timedelta(days=2), verified=None)
    newest = _past_set(store, now - timedelta(hours=1), verified=None)
    decisions = {d.backup_set.name: d for d in plan_retention(store.sets(), RetentionPolicy(1, 0, 0), ZoneInfo("UTC"))}
    assert decisions[newest].keep and decisions[newest].reasons == ("daily #1",)
    assert decisions[oldest_verified].keep and decisions[oldest_verified].reasons == ("newest verified set",)
    assert sum(d.keep for d in decisions.values()) == 2


def test_partial_sets_never_take_a_keep_slot(tmp_path: Path):
    store = SetStore(tmp_path)
    now = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
    complete_old = _past_set(store, now - timedelta(days=1))
    partial_old = _past_set(store, now - timedelta(days=3), complete=False)
    partial_new = _past_set(store, now - timedelta(hours=1), complete=False)
    decisions = {d.backup_set.name: d for d in plan_retention(store.sets(), RetentionPolicy(7, 0, 0), ZoneInfo("UTC"))}
    assert decisions[complete_old].reasons[0] == "daily #1"
    assert decisions[partial_new].keep and "newer than every good set" in decisions[partial_new].reasons[0]
    assert not decisions[partial_old].keep


def test_partial_sets_newer_than_the_last_complete_one_do_not_fill_the_disk(tmp_path: Path):
    """InfluxDB 2 down for three weeks: every nightly run is partial and newer than the last complete set. Only
    the newest BACKUP_KEEP_PARTIAL of them stay, so the disk does not fill until every backup fails."""
    store = SetStore(tmp_path)
    now = datetime(2025, 6, 30, 23, 59, tzinfo=UTC)
    complete = _past_set(store, now - timedelta(days=22))
    partials = [_past_set(store, now - timedelta(days=days), complete=False) for days in range(21)]
    config = load_config({"BACKUP_DIR": str(tmp_path), "TZ": "UTC", "INFLUXDB2_TOKEN": "t",
                          "BACKUP_STORES": "influxdb2", "BACKUP_KEEP_PARTIAL": "2"})
    with store.lock():
        pruned = apply_retention(config, store)
    assert [item.name for item in store.sets()] == [complete, partials[1], partials[0]]
    assert len(pruned) == 19


def test_a_set_that_failed_verification_takes_no_keep_slot(tmp_path: Path):
    """A set whose verification failed cannot be restored: it must not push a good set out of its slot."""
    store = SetStore(tmp_path)
    now = datetime(2025, 6, 30, 23, 59, tzinfo=UTC)
    older = _past_set(store, now - timedelta(days=2))
    newer = _past_set(store, now - timedelta(days=1))
    failed = _past_set(store, now, verified=False)
    decisions = {d.backup_set.name: d for d in plan_retention(store.sets(), RetentionPolicy(2, 0, 0, keep_partial=1),
                                                              ZoneInfo("UTC"))}
    assert decisions[older].reasons == ("daily #2",) and decisions[newer].reasons[0] == "daily #1"
    assert decisions[failed].reasons == ("failed verification, but newer than every good set (#1 of 1)",)
    bounded = plan_retention(store.sets(), RetentionPolicy(2, 0, 0, keep_partial=0), ZoneInfo("UTC"))
    assert [d.backup_set.name for d in bounded if not d.keep] == [failed]


def test_days_are_counted_in_the_configured_time_zone(tmp_path: Path):
    store = SetStore(tmp_path)
    # 23:30 and 00:30 UTC are the same local day in New York (UTC-4 in June)
    first = _past_set(store, datetime(2025, 6, 29, 23, 30, tzinfo=UTC))
    second = _past_set(store, datetime(2025, 6, 30, 0, 30, tzinfo=UTC))
    new_york = {d.backup_set.name: d.keep for d in plan_retention(store.sets(), RetentionPolicy(2, 0, 0),
                                                                  ZoneInfo("America/New_York"))}
    utc = {d.backup_set.name: d.keep for d in plan_retention(store.sets(), RetentionPolicy(2, 0, 0), ZoneInfo("UTC"))}
    assert utc == {first: True, second: True}
    assert new_york[second] and not new_york[first]


def test_the_lock_serialises_runs(tmp_path: Path):
    store = SetStore(tmp_path)
    with store.lock():
        started = time.monotonic()
        with pytest.raises(Exception, match="another backup or restore"), \
                SetStore(tmp_path).lock(timeout=0.3, poll=0.05):
            pass
        assert time.monotonic() - started >= 0.3
