"""The `backup` command line, configuration errors and container health."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from backup.__main__ import main
from backup.config import load_config
from backup.health import assess, update_state
from backup.job import run_backup
from backup.schedule import Schedule
from backup.sets import SetStore
from common.config import ConfigError
from tests.backup.fakestack import FakeStack, key_text


@pytest.fixture
def stack(tmp_path: Path, monkeypatch):
    with FakeStack(tmp_path) as running:
        for name, value in running.env(BACKUP_METRICS="false").items():
            monkeypatch.setenv(name, value)
        yield running


def test_now_list_verify_and_extract(stack: FakeStack, capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BACKUP_ENCRYPTION_KEY", key_text())
    assert main(["now"]) == 0
    name = capsys.readouterr().out.strip()
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert name in listing and "complete" in listing and "influxdb2 influxdb3 grafana" in listing
    assert main(["list", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["sets"][0]["name"] == name and body["sets"][0]["verified"] and body["incomplete"] == []
    assert main(["verify", "latest"]) == 0
    out = tmp_path / "extracted"
    assert main(["extract", name, str(out)]) == 0
    # The influxdb2 folder is what `influx restore` reads: the manifest's files, with the sizes it records.
    (manifest_path,) = (out / "influxdb2").glob("*.manifest")
    manifest = json.loads(manifest_path.read_text())
    for entry in [manifest["kv"], manifest["sql"]]:
        assert (out / "influxdb2" / entry["fileName"]).stat().st_size == entry["size"]
    assert gzip.decompress((out / "influxdb2" / manifest["kv"]["fileName"]).read_bytes()) == stack.influxdb2.kv
    assert (out / "influxdb3" / "stack-node0" / "catalog" / "v3" / "snapshot").read_bytes() == \
        stack.influxdb3_files["catalog/v3/snapshot"]
    assert (out / "grafana" / "grafana.db").read_bytes()[:16] == b"SQLite format 3\x00"
    assert main(["extract", name, str(out)]) == 2, "refuses a non-empty destination"


def test_restore_refuses_when_the_servers_are_in_the_wrong_state(stack: FakeStack, capsys):
    assert main(["now"]) == 0
    # the fake InfluxDB 3 answers /ping: it is "running", so its files must not be replaced
    assert main(["restore", "latest", "--only", "influxdb3"]) == 1
    assert "InfluxDB 3 is running: stop it first" in capsys.readouterr().err
    assert main(["restore", "latest", "--only", "grafana"]) == 1
    assert "Grafana is running: stop it first" in capsys.readouterr().err
    assert main(["restore", "latest", "--bucket", "telemetry", "--new-bucket", "telemetry-copy"]) == 0
    created = stack.servers["influxdb2"].matching("POST", "/api/v2/restore/bucketMetadata")
    assert created[0].json()["bucketName"] == "telemetry-copy"
    assert main(["restore", "latest", "--only", "grafana", "--bucket", "x"]) == 2
    assert main(["restore", "20990101T000000Z"]) == 1
    assert "no backup set 20990101T000000Z" in capsys.readouterr().err


def test_configuration_problems_are_all_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        load_config({"BACKUP_SCHEDULE": "every night", "TZ": "Mars/Olympus", "BACKUP_STORES": "influxdb2,mysql",
                     "BACKUP_KEEP_DAILY": "-1", "BACKUP_COMPRESSION": "lz4", "BACKUP_ENCRYPTION_KEY": "short",
                     "BACKUP_RUN_AS": "0:0"})
    text = str(caught.value)
    for fragment in ("BACKUP_SCHEDULE: 'every night' must have 5 fields", "TZ: 'Mars/Olympus'",
                     "BACKUP_STORES: unknown store(s) mysql", "BACKUP_KEEP_DAILY: -1 is below the minimum 0",
                     "BACKUP_COMPRESSION: 'lz4'", "BACKUP_ENCRYPTION_KEY: the key is too short",
                     "BACKUP_RUN_AS: refusing", "INFLUXDB2_TOKEN: is required"):
        assert fragment in text
    assert "short" not in text.replace("too short", ""), "the key itself is never echoed"


def test_the_default_schedule_is_daily_at_2359_and_keys_are_read_from_files(tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_text(key_text() + "\n")
    config = load_config({"INFLUXDB2_TOKEN": "t", "GRAFANA_USER": "a", "GRAFANA_PASSWORD": "b",
                          "BACKUP_ENCRYPTION_KEY_FILE": str(key_file), "BACKUP_RUN_AS": "1500:1500,0"})
    assert config.schedule.expression == "59 23 * * *" and config.timezone.key == "UTC"
    assert config.encryption_key == bytes(range(32))
    assert (config.run_as.uid, config.run_as.gid, config.run_as.groups) == (1500, 1500, (0,))
    assert config.compression == "zstd" and config.retention.daily == 7


def test_health_follows_the_schedule(stack: FakeStack):
    config = load_config(stack.env(BACKUP_METRICS="false"))
    store, berlin = SetStore(stack.backup_dir), ZoneInfo("Europe/Berlin")
    schedule, grace = Schedule("59 23 * * *", berlin), timedelta(hours=2)
    start = datetime(2025, 1, 7, 9, 0, tzinfo=berlin)
    assert not assess(store, schedule, grace, start).healthy, "nothing at all: unhealthy"
    update_state(stack.backup_dir, scheduler_started_at=start)
    assert assess(store, schedule, grace, start + timedelta(hours=1)).healthy, "fresh stack: nothing due yet"
    late = datetime(2025, 1, 8, 2, 0, tzinfo=berlin)  # 23:59 run + 2 h grace has passed without a backup
    verdict = assess(store, schedule, grace, late)
    assert not verdict.healthy and "older than the run due at 2025-01-07T22:59:00Z" in verdict.message
    moments = iter([datetime(2025, 1, 7, 22, 59, 30, tzinfo=UTC)] * 20)
    run_backup(config, trigger="schedule", clock=lambda: next(moments))
    assert assess(store, schedule, grace, late).healthy
    assert not assess(store, schedule, grace, late + timedelta(days=1)).healthy


def test_health_command_exit_code(stack: FakeStack, capsys):
    assert main(["health"]) == 1
    assert "no good backup" in capsys.readouterr().out
    assert main(["now"]) == 0
    assert main(["health"]) == 0


def test_privileges_are_not_touched_when_not_root(stack: FakeStack, monkeypatch):
    monkeypatch.setenv("BACKUP_RUN_AS", "1500:1500,0")
    if os.geteuid() == 0:
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["list"]) == 0


def test_drop_privileges_hands_the_folder_to_the_service_user_and_drops_root():
    """Run in a forked child: as root it must end as 1500:1500 (+0) with the folder 2770 and still the
    host's group; as anyone else it must change nothing."""
    import shutil
    import tempfile

    from backup.config import RunAs
    from backup.privileges import drop_privileges

    parent = Path(tempfile.mkdtemp())  # pytest's tmp_path sits under a 0700 folder uid 1500 cannot enter
    os.chmod(parent, 0o755)
    folder = parent / "backups"
    folder.mkdir()
    try:
        _check_drop(folder, drop_privileges, RunAs)
    finally:
        shutil.rmtree(parent)


def _check_drop(folder: Path, drop_privileges, RunAs) -> None:
    host_gid = folder.stat().st_gid
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        try:
            drop_privileges(RunAs(1500, 1500, (0,)), folder)
            (folder / "probe").write_text("written after the drop")
            report = f"{os.getuid()} {os.getgid()} {sorted(os.getgroups())}"
        except Exception as exc:
            report = f"error {exc}"
        os.write(write, report.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    report = os.read(read, 1000).decode()
    os.close(read)
    if os.geteuid() != 0:
        assert report == f"{os.getuid()} {os.getgid()} {sorted(os.getgroups())}"
        return
    assert report == f"1500 1500 {sorted({0, 1500, host_gid})}"
    status = folder.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o7777) == (1500, host_gid, 0o2770)
    assert (folder / "probe").stat().st_uid == 1500


def test_the_scheduler_sleeps_until_the_next_slot_then_runs_a_scheduled_backup(stack: FakeStack, monkeypatch):
    import backup.__main__ as cli

    clock = {"now": datetime(2025, 1, 7, 20, 0, tzinfo=UTC)}
    slept, runs = [], []

    def fake_sleep(seconds):
        slept.append(seconds)
        clock["now"] += timedelta(seconds=seconds)

    def fake_run(config, trigger):
        runs.append((trigger, clock["now"]))
        raise SystemExit(0)  # stop after the first run

    monkeypatch.setattr(cli, "utc_now", lambda: clock["now"])
    monkeypatch.setattr(cli.time, "sleep", fake_sleep)
    monkeypatch.setattr(cli, "run_backup", fake_run)
    with pytest.raises(SystemExit):
        main(["schedule"])
    assert runs == [("schedule", datetime(2025, 1, 7, 22, 59, tzinfo=UTC))]  # 23:59 in Europe/Berlin
    assert max(slept) <= cli.MAX_SLEEP and sum(slept) == 2 * 3600 + 59 * 60
    state = json.loads((stack.backup_dir / ".state.json").read_text())
    assert state["scheduler_started_at"] == "2025-01-07T20:00:00Z"
    assert state["next_run_at"] == "2025-01-07T22:59:00Z" and state["schedule"] == "59 23 * * *"
