"""Restores that do not lock the stack out and can be undone.

A restore on a new host is simulated on disk: a second stack, set up with the credentials its own `make up`
generated, gets a copy of the first stack's sets. The stand-ins answer as the servers' source does
(tests/support/influxdb2.py, tests/support/influxdb3.py), Grafana's users are in a real grafana.db with Grafana's own
password hash.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from backup.__main__ import main
from backup.config import load_config
from backup.credentials import fingerprint_matches, grafana_encode_password, influxdb3_hash_prefix
from backup.job import PRE_RESTORE, run_backup
from backup.manifest import MANIFEST_NAME, utc_now
from backup.restore import RestoreFailed, RestoreRefused, RestoreRequest, prepare_restore, restore_set
from backup.sets import BackupSet, SetStore
from tests.backup.fakestack import INFLUXDB3_TOKEN, FakeStack

NEW_HOST = {"influxdb2_token": "generated-on-the-new-host", "influxdb3_token": "apiv3_" + "N" * 43,
            "grafana_password": "generated-on-the-new-host-too"}
STOPPED = {"influxdb3_running": lambda: False, "grafana_running": lambda: False}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[FakeStack]:
    with FakeStack(tmp_path / "host") as running:
        yield running


@pytest.fixture
def use_env(monkeypatch):
    """The backup container's environment for `main`."""
    def apply(stack: FakeStack, **overrides: str) -> None:
        for name, value in stack.env(BACKUP_METRICS="false", **overrides).items():
            monkeypatch.setenv(name, value)
    return apply


def _set(stack: FakeStack, day: int | None = None, **env: str) -> BackupSet:
    """A new set; `day` n: taken n days from now (retention keeps one set a day)."""
    clock = (lambda: utc_now() + timedelta(days=day)) if day is not None else utc_now
    outcome = run_backup(load_config(stack.env(BACKUP_METRICS="false", **env)), trigger="manual", clock=clock)
    assert outcome.backup_set is not None, outcome.error
    return outcome.backup_set


def _dashboards(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT count(*) FROM dashboard").fetchone()[0]
    finally:
        connection.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


# ----------------------------------------------------------------------------------------------- credentials
def test_grafana_passwords_are_encoded_as_grafana_does():
    """pkg/util/encoding_test.go TestEncodePassword (grafana/grafana)."""
    assert grafana_encode_password("iamgod", "pepper") == (
        "e59c568621e57756495a468f47c74e07c911b037084dd464bb2ed72410970dc849cabd71b48c394faf08a5405dae53741ce9")


def test_a_set_records_what_a_restore_checks_credentials_with_and_no_secret(stack: FakeStack):
    backup_set = _set(stack)
    text = (backup_set.path / MANIFEST_NAME).read_text()
    for secret in (stack.influxdb2.token, INFLUXDB3_TOKEN, stack.grafana_password):
        assert secret not in text
    stores = json.loads(text)["stores"]
    assert fingerprint_matches(stack.influxdb2.token, stores["influxdb2"]["details"]["credential"])
    assert not fingerprint_matches("another-token", stores["influxdb2"]["details"]["credential"])
    assert stores["influxdb3"]["details"]["admin_tokens"] == [
        {"name": "_admin", "hash": influxdb3_hash_prefix(INFLUXDB3_TOKEN)}]
    assert stores["grafana"]["details"]["admin_login"] == "admin"
    assert (backup_set.path / MANIFEST_NAME).stat().st_mode & 0o007 == 0


def test_a_backup_whose_influxdb3_token_is_refused_says_so(stack: FakeStack, caplog):
    """Changing INFLUXDB3_ADMIN_TOKEN after the first start does nothing: the server keeps its first token. The
    backup still copies the files, and says why it cannot list the catalog's admin tokens."""
    backup_set = _set(stack, INFLUXDB3_TOKEN="apiv3_" + "C" * 43)
    details = backup_set.manifest.stores["influxdb3"].details
    assert details["admin_tokens"] is None and "HTTP 401" in details["admin_tokens_error"]
    assert "InfluxDB 3 refuses INFLUXDB3_TOKEN" in caplog.text and "Rotating credentials" in caplog.text


def test_a_restore_on_a_new_host_with_its_own_credentials_changes_nothing_and_says_what_to_do(
        tmp_path: Path, use_env, capsys):
    with FakeStack(tmp_path / "old-host") as old:
        taken = _set(old)
    with FakeStack(tmp_path / "new-host", **NEW_HOST) as new:
        shutil.copytree(taken.path, new.backup_dir / taken.name)
        before = (_files(new.data_dir), new.grafana_db.read_bytes())
        use_env(new)
        assert main(["restore", "latest", "--prepare"]) == 1
        err = capsys.readouterr().err
        assert f"refusing to restore {taken.name}" in err
        for told in ("INFLUXDB2_ADMIN_TOKEN is not the token this set was taken with",
                     "INFLUXDB3_ADMIN_TOKEN is none of the admin tokens in this set's catalog (_admin)",
                     "Admin token '_admin' already exists, skipping initialization",
                     "GRAFANA_ADMIN_PASSWORD does not open the set's grafana.db for user 'admin'",
                     "copy it into place before the first `make up`"):
            assert told in err
        for secret in (*NEW_HOST.values(), old.influxdb2.token, INFLUXDB3_TOKEN):
            assert secret not in err
        with pytest.raises(RestoreRefused, match="INFLUXDB2_ADMIN_TOKEN"):
            restore_set(load_config(new.env()), SetStore(new.backup_dir), taken, RestoreRequest(), **STOPPED)
        assert not new.servers["influxdb2"].matching("POST", "/api/v2/restore/kv")
        assert [item.name for item in SetStore(new.backup_dir).sets()] == [taken.name], "no pre-restore set"
        assert (_files(new.data_dir), new.grafana_db.read_bytes()) == before


def test_with_the_sets_env_in_place_a_new_host_restores_everything(tmp_path: Path):
    """The README's way: the .env kept with the sets is copied before the first `make up`, so the new host's
    servers start with the credentials the set holds."""
    with FakeStack(tmp_path / "old-host") as old:
        taken = _set(old)
    with FakeStack(tmp_path / "new-host") as new:
        shutil.copytree(taken.path, new.backup_dir / taken.name)
        shutil.rmtree(new.data_dir / "stack-node0")  # a volume the server never wrote into
        config, sets = load_config(new.env(BACKUP_METRICS="false")), SetStore(new.backup_dir)
        with sets.lock():
            backup_set = sets.get(taken.name)
            prepare_restore(config, sets, backup_set, RestoreRequest())
            results = restore_set(config, sets, backup_set, RestoreRequest(), **STOPPED)
    assert list(results) == ["influxdb3", "grafana", "influxdb2"]


def test_a_new_token_name_lets_influxdb3_add_the_new_hosts_token(tmp_path: Path, use_env, capsys):
    """The catalog keeps `_admin` with the set's hash; a token file under a name the set does not have makes the
    server add .env's token at its next start, so the restore may go on."""
    with FakeStack(tmp_path / "old-host") as old:
        taken = _set(old)
    with FakeStack(tmp_path / "new-host", influxdb3_token=NEW_HOST["influxdb3_token"]) as new:
        shutil.copytree(taken.path, new.backup_dir / taken.name)
        use_env(new)
        assert main(["restore", taken.name, "--only", "influxdb3", "--prepare"]) == 1
        capsys.readouterr()
        use_env(new, INFLUXDB3_TOKEN_NAME="_admin-2")
        assert main(["restore", taken.name, "--only", "influxdb3", "--prepare"]) == 0
    assert "its name '_admin-2' is new to it: InfluxDB 3 adds it as an admin token" in capsys.readouterr().err


def test_accepting_the_mismatch_restores_influxdb3_and_grafana_but_never_a_full_influxdb2(tmp_path: Path):
    with FakeStack(tmp_path / "old-host") as old:
        taken = _set(old)
    with FakeStack(tmp_path / "new-host", **NEW_HOST) as new:
        shutil.copytree(taken.path, new.backup_dir / taken.name)
        config, sets = load_config(new.env(BACKUP_METRICS="false")), SetStore(new.backup_dir)
        accept = RestoreRequest(accept_credential_mismatch=True)
        with pytest.raises(RestoreRefused, match="INFLUXDB2_ADMIN_TOKEN") as refused:
            prepare_restore(config, sets, sets.get(taken.name), accept)
        assert "INFLUXDB3" not in str(refused.value) and "GRAFANA" not in str(refused.value)
        for store in ("influxdb3", "grafana"):
            request = RestoreRequest(only=store, accept_credential_mismatch=True)
            with sets.lock():
                prepare_restore(config, sets, sets.get(taken.name), request)
                restore_set(config, sets, sets.get(taken.name), request, **STOPPED)
        assert _dashboards(new.grafana_db) == 5
        # A bucket restore keeps this install's tokens: it is never refused for them.
        bucket = RestoreRequest(only="influxdb2", bucket="telemetry", new_bucket="telemetry-old")
        assert restore_set(config, sets, sets.get(taken.name), bucket, **STOPPED)["influxdb2"]["shards"] == 2


# -------------------------------------------------------------------------------------- a way back, `latest`
def test_a_restore_without_a_pre_restore_set_changes_nothing(stack: FakeStack):
    backup_set = _set(stack)
    before = (_files(stack.data_dir), stack.grafana_db.read_bytes())
    config, sets = load_config(stack.env(BACKUP_METRICS="false")), SetStore(stack.backup_dir)
    with pytest.raises(RestoreRefused, match=r"no pre-restore set of influxdb3, grafana, influxdb2 from the last hour"):
        restore_set(config, sets, backup_set, RestoreRequest(), **STOPPED)
    assert not stack.servers["influxdb2"].matching("POST", "/api/v2/restore/kv")
    assert (_files(stack.data_dir), stack.grafana_db.read_bytes()) == before
    later = utc_now() + timedelta(hours=2)  # a pre-restore set is only good for the restore it was taken for
    with sets.lock():
        prepare_restore(config, sets, backup_set, RestoreRequest())
    with pytest.raises(RestoreRefused, match="no pre-restore set"):
        restore_set(config, sets, backup_set, RestoreRequest(), clock=lambda: later, **STOPPED)


def test_a_restore_that_stops_half_way_names_the_set_that_undoes_it(stack: FakeStack):
    config, sets = load_config(stack.env(BACKUP_METRICS="false")), SetStore(stack.backup_dir)
    backup_set = _set(stack)
    connection = sqlite3.connect(stack.grafana_db)  # the state the restore will replace: dashboards deleted since
    connection.execute("DELETE FROM dashboard WHERE id > 2")
    connection.commit()
    connection.close()
    with sets.lock():
        undo = prepare_restore(config, sets, backup_set, RestoreRequest())
    assert undo.manifest.trigger == PRE_RESTORE and undo.verified and undo.complete
    assert [item.name for item in sets.sets()] == [backup_set.name, undo.name], "the restored set is not pruned"
    stack.influxdb2.fail_next = {"/api/v2/restore/shards/3": 10}
    with pytest.raises(RestoreFailed) as stopped:
        restore_set(config, sets, backup_set, RestoreRequest(), **STOPPED)
    message = str(stopped.value)
    assert "stopped at influxdb2" in message and "2 of 4 shards are restored" in message
    assert "already restored from the set: influxdb3, grafana" in message
    assert f"make restore SET={undo.name}" in message
    assert _dashboards(stack.grafana_db) == 5

    stack.influxdb2.fail_next = {}
    with sets.lock():
        prepare_restore(config, sets, undo, RestoreRequest())
        restore_set(config, sets, undo, RestoreRequest(), **STOPPED)
    assert _dashboards(stack.grafana_db) == 2, "back to the state before the first restore"
    uploads = [r.path for r in stack.servers["influxdb2"].matching("POST") if "/restore/shards/" in r.path]
    assert uploads[-4:] == [f"/api/v2/restore/shards/{shard}" for shard in (1, 2, 3, 4)]


def test_latest_is_the_newest_complete_verified_set(stack: FakeStack, use_env, capsys):
    """Partial and failed sets are newer here: `latest` never means one of them, and it is resolved once, by the
    first step, whose answer make restore passes on."""
    good = _set(stack, day=-3)
    broken = _set(stack, day=-2)
    SetStore(stack.backup_dir).record_verification(broken, False, ["a file changed"])
    stack.grafana.auth = "Basic nobody"
    partial = _set(stack, day=-1)
    assert partial.manifest.status == "partial"
    use_env(stack)
    capsys.readouterr()
    assert main(["restore", "latest", "--prepare", "--no-pre-restore-backup"]) == 0
    assert capsys.readouterr().out.strip() == good.name
    assert [item.name for item in SetStore(stack.backup_dir).sets()] == [good.name, broken.name, partial.name]
