"""Whole stack: back up the running stack, lose every store, restore, and find the same data.

This module runs last (conftest.py): it wipes the stack's stores and restores them from the set it took, so
the stack ends where it was at the backup. A second test restores the set's InfluxDB 2 part with InfluxData's
own `influx restore` (the native provider, with INFLUX_BIN or `influx` on PATH), to prove the set is what that
tool reads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from grafana_client.client import GrafanaException

pytestmark = pytest.mark.integration

MEASUREMENT = "backup_it"


def _influxdb2_write(stack, lines: str) -> None:
    response = requests.post(f"{stack.influxdb2_url}/api/v2/write",
                             params={"org": stack.env["INFLUXDB2_ORG"], "bucket": stack.env["INFLUXDB2_BUCKET"],
                                     "precision": "s"},
                             data=lines, headers=stack.influxdb2_headers, timeout=30)
    assert response.status_code == 204, response.text


def _influxdb2_values(stack, marker: str, url: str | None = None) -> list[str]:
    flux = (f'from(bucket: "{stack.env["INFLUXDB2_BUCKET"]}") |> range(start: -30d) '
            f'|> filter(fn: (r) => r._measurement == "{MEASUREMENT}" and r.marker == "{marker}") '
            '|> keep(columns: ["_value"])')
    response = requests.post(f"{url or stack.influxdb2_url}/api/v2/query", params={"org": stack.env["INFLUXDB2_ORG"]},
                             json={"query": flux, "type": "flux"},
                             headers={**stack.influxdb2_headers, "Accept": "application/csv"}, timeout=60)
    assert response.status_code == 200, response.text
    rows = [line.split(",") for line in response.text.splitlines() if line.strip() and not line.startswith(",result")]
    return sorted(row[-1].strip() for row in rows if len(row) > 3)


def _influxdb3_write(stack, lines: str) -> None:
    response = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp",
                             params={"db": stack.env["INFLUXDB3_DATABASE"], "precision": "second"},
                             data=lines, headers=stack.influxdb3_headers, timeout=30)
    assert response.status_code in (200, 204), response.text


def _influxdb3_values(stack, marker: str) -> list[float]:
    try:
        rows = stack.sql(stack.env["INFLUXDB3_DATABASE"],
                         f"SELECT value FROM {MEASUREMENT} WHERE marker = '{marker}' ORDER BY time")
    except requests.HTTPError:  # table not found after the wipe
        return []
    return [row["value"] for row in rows]


def _grafana_dashboard(stack, uid: str) -> int:
    """200 when Grafana has the dashboard, else the status it answered (GET /api/dashboards/uid/<uid>)."""
    try:
        stack.grafana_api().dashboard.get_dashboard(uid)
    except GrafanaException as exc:
        return exc.status_code
    return 200


def _ok(result: subprocess.CompletedProcess, what: str) -> str:
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def backed_up(stack):
    """Points in both databases (and a dashboard in Grafana), then a verified set of all of it."""
    marker = uuid.uuid4().hex[:12]
    now = int(time.time())
    _influxdb2_write(stack, "\n".join(f"{MEASUREMENT},marker={marker} value={i}.5 {now - i}" for i in range(5)))
    _influxdb3_write(stack, "\n".join(f"{MEASUREMENT},marker={marker} value={i}.25 {now - i}" for i in range(5)))
    dashboard_uid = f"backup-it-{marker}"
    if stack.has_grafana:
        created = stack.grafana_api().dashboard.update_dashboard(
            {"dashboard": {"uid": dashboard_uid, "title": f"Backup IT {marker}", "panels": []}, "overwrite": True})
        assert created["status"] == "success", created
    time.sleep(3)  # InfluxDB 3 flushes its WAL to the object store every second by default
    before = (_influxdb2_values(stack, marker), _influxdb3_values(stack, marker))
    assert len(before[0]) == 5 and len(before[1]) == 5

    set_name = _ok(stack.backup("now"), "backup now").strip().splitlines()[-1]
    _ok(stack.backup("verify", set_name), "backup verify")
    listing = _ok(stack.backup("list"), "backup list")
    assert set_name in listing and "complete" in listing
    manifest = json.loads((Path(stack.env["BACKUP_DIR"]) / set_name / "manifest.json").read_text())
    copied = manifest["stores"]["influxdb3"]["details"]
    if stack.env.get("INFLUXDB3_OBJECT_STORE") == "s3":
        # Core on a bucket: the set was downloaded from that bucket (backup/influxdb3_s3.py), not a folder.
        assert copied["object_store"]["bucket"] == stack.env["INFLUXDB3_BUCKET"], copied
        assert copied["object_store"]["objects"] > 0, copied
    else:
        assert "object_store" not in copied, copied
    return marker, dashboard_uid, set_name, before


def test_a_set_restores_into_influxdb2_with_influx_restore(stack, backed_up, tmp_path: Path):
    """The set's InfluxDB 2 part is what `influx backup` writes: InfluxData's own `influx restore --full` reads
    it into a second, empty server, and the points are there (with the set's operator token)."""
    influx = os.environ.get("INFLUX_BIN") or shutil.which("influx")
    binaries = getattr(stack, "binaries", None)
    if influx is None or binaries is None:
        pytest.skip("needs the native provider and the influx CLI (INFLUX_BIN or `influx` on PATH)")
    from tests.integration.stacks.native import start_influxd

    marker, _, set_name, (before_v2, _) = backed_up
    folder = Path(stack.env["BACKUP_DIR"]) / set_name / "influxdb2"
    server, url = start_influxd(binaries.influxd, tmp_path, {
        "username": "restorer", "password": "restore-password-1", "org": "other", "bucket": "other",
        "token": "second-server-token"}, name="influxdb2-second")
    try:
        command = [influx, "restore", "--full", "--host", url, "-t", "second-server-token"]
        helps = subprocess.run([influx, "restore", "--help"], capture_output=True, text=True, timeout=60).stdout
        if "--operator-token" in helps:
            # InfluxDB 2.9 hashes tokens: the restore cannot learn the set's operator token from the server, so
            # CLI 2.8 takes it (the stack's INFLUXDB2_ADMIN_TOKEN, kept with the set's .env).
            command += ["--operator-token", stack.env["INFLUXDB2_ADMIN_TOKEN"]]
        # The CLI takes its flags before the path (urfave/cli stops reading flags at the first argument).
        restored = subprocess.run([*command, str(folder)], capture_output=True, text=True, timeout=600, check=False)
        assert restored.returncode == 0, restored.stdout + restored.stderr
        assert _influxdb2_values(stack, marker, url) == before_v2
    finally:
        server.stop()


def test_backup_wipe_restore_finds_the_same_data(stack, backed_up):
    """With the optional S3 server (native: WEED_BIN), the set is also in its bucket: the local copy is deleted
    first, so the wiped stack is restored from the bucket alone, as on a new host with an empty BACKUP_DIR."""
    marker, dashboard_uid, set_name, (before_v2, before_v3) = backed_up
    off_host = bool(stack.env.get("BACKUP_S3_BUCKET")) and getattr(stack, "has_seaweedfs", False)
    if off_host:
        listing = _ok(stack.backup("list", "--json"), "backup list --json")

        body = json.loads(listing)
        assert next(item for item in body["sets"] if item["name"] == set_name)["remote"], body
        shutil.rmtree(Path(stack.env["BACKUP_DIR"]) / set_name)
        body = json.loads(_ok(stack.backup("list", "--json"), "backup list --json"))
        assert set_name in [item["name"] for item in body["remote_only"]], body
        _ok(stack.backup("verify", set_name), "backup verify from the bucket")
        shutil.rmtree(Path(stack.env["BACKUP_DIR"]) / set_name)

    # Lose everything but the backup directory (and the bucket, which stands for another machine).
    stack.wipe()
    assert _influxdb2_values(stack, marker) == [] and _influxdb3_values(stack, marker) == []
    if stack.has_grafana:
        assert _grafana_dashboard(stack, dashboard_uid) == 404

    if off_host:
        assert not (Path(stack.env["BACKUP_DIR"]) / set_name).exists()
    stack.restore(set_name)  # what `make restore SET=...` runs

    assert _influxdb2_values(stack, marker) == before_v2
    assert _influxdb3_values(stack, marker) == before_v3
    if getattr(stack, "core_on_bucket", False):
        # The rows came back through the bucket: the restore wrote the node there, none of it into the volume.
        node = stack.env.get("INFLUXDB3_NODE_ID") or "stack-node0"
        assert stack.core_bucket().objects_under(f"{node}/catalog/", limit=1)
        volume = stack.service("influxdb3").host_path("/var/lib/influxdb3/data")
        assert not [path for path in volume.rglob("*") if path.is_file()], "Core on a bucket wrote into its volume"
    if stack.has_grafana:
        assert _grafana_dashboard(stack, dashboard_uid) == 200
    health = stack.backup("health")
    assert health.returncode == 0, health.stdout + health.stderr


def test_a_set_restored_onto_a_new_influxdb3_with_another_token_is_refused_then_guided(tmp_path: Path):
    """The fresh-host case on a real `influxdb3 serve`: the set comes from a server set up with one admin token, the
    new server with another (its own `make up`). `backup restore --prepare` refuses and says why; the restored
    catalog then really keeps the set's token and ignores the token file ("Admin token '_admin' already exists,
    skipping initialization"); with a new INFLUXDB3_ADMIN_TOKEN_NAME the check passes and the server accepts the
    new host's token as well. Needs only INFLUXDB3_BIN (or `influxdb3` on PATH)."""
    import sys

    from tests.integration.stacks import run
    from tests.integration.stacks.native import Process, binary, free_port, start_influxdb3
    from tests.support.paths import REPO

    server_binary = binary("INFLUXDB3_BIN", "influxdb3")
    if server_binary is None:
        pytest.skip("needs an InfluxDB 3 Core binary (INFLUXDB3_BIN or `influxdb3` on PATH)")
    node = "stack-node0"
    old_token, new_token = "apiv3_" + "o" * 43, "apiv3_" + "n" * 43
    ports = {"old": free_port(), "new": free_port()}

    def serve(host: str, token: str, name: str = "_admin") -> Process:
        secrets = tmp_path / host / "secrets"
        secrets.mkdir(parents=True, exist_ok=True)
        return start_influxdb3(server_binary, f"influxdb3-{host}", tmp_path / f"{host}.log", "--node-id", node,
                               "--object-store", "file", "--data-dir", str(tmp_path / host / "data"),
                               port=ports[host], admin_token=(secrets / "admin-token.json", token, name),
                               home=tmp_path)[0]

    def rows(host: str, token: str) -> int | list:
        answer = requests.post(f"http://127.0.0.1:{ports[host]}/api/v3/query_sql", timeout=30,
                               headers={"Authorization": f"Bearer {token}"},
                               json={"db": "restoreit", "q": "SELECT value FROM m ORDER BY value", "format": "json"})
        return [row["value"] for row in answer.json()] if answer.status_code == 200 else answer.status_code

    def backup(host: str, token: str, *args: str, **extra: str) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "TZ": "UTC", "BACKUP_METRICS": "false",
               "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_STORES": "influxdb3",
               "INFLUXDB3_URL": f"http://127.0.0.1:{ports[host]}", "INFLUXDB3_TOKEN": token,
               "INFLUXDB3_DATA_DIR": str(tmp_path / host / "data"), "INFLUXDB3_NODE_ID": node, **extra}
        return run([sys.executable, "-m", "backup", *args], timeout=300, env=env, cwd=REPO)

    old = serve("old", old_token)
    try:
        written = requests.post(f"http://127.0.0.1:{ports['old']}/api/v3/write_lp", timeout=30,
                                params={"db": "restoreit"}, headers={"Authorization": f"Bearer {old_token}"},
                                data="\n".join(f"m value={value}i {1_700_000_000 + value}000000000"
                                               for value in range(5)))
        assert written.status_code == 204, written.text
        taken = backup("old", old_token, "now")
        assert taken.returncode == 0, taken.stderr
    finally:
        old.stop()
    set_name = taken.stdout.split()[-1]
    new = serve("new", new_token)  # the new host's first start: its own catalog, its own token
    new.stop()

    refused = backup("new", new_token, "restore", "latest", "--prepare")
    assert refused.returncode == 1
    assert "INFLUXDB3_ADMIN_TOKEN is none of the admin tokens in this set's catalog (_admin)" in refused.stderr
    assert "INFLUXDB3_ADMIN_TOKEN_NAME=_admin-2" in refused.stderr and new_token not in refused.stderr

    prepared = backup("new", new_token, "restore", "latest", "--prepare", INFLUXDB3_TOKEN_NAME="_admin-2")
    assert prepared.returncode == 0, prepared.stderr
    assert prepared.stdout.split()[-1] == set_name, "latest is the set taken, not the pre-restore set"
    restored = backup("new", new_token, "restore", set_name, "--skip-verify", INFLUXDB3_TOKEN_NAME="_admin-2")
    assert restored.returncode == 0, restored.stderr

    new = serve("new", new_token)  # the token file as before: name _admin, which the restored catalog has
    try:
        assert rows("new", new_token) == 401
        assert rows("new", old_token) == [0, 1, 2, 3, 4]
    finally:
        new.stop()
    assert "Admin token '_admin' already exists, skipping initialization" in (tmp_path / "new.log").read_text()
    new = serve("new", new_token, name="_admin-2")  # INFLUXDB3_ADMIN_TOKEN_NAME=_admin-2, as the check told
    try:
        assert rows("new", new_token) == [0, 1, 2, 3, 4]
    finally:
        new.stop()


def test_influxdb3_copy_during_snapshots_restores_every_acknowledged_write(tmp_path: Path):
    """A real `influxdb3 serve` that snapshots about every six WAL flushes (--wal-snapshot-size 4, keeping one
    snapshotted WAL file) takes writes all through a copy slowed to span several snapshots; the set, restored into
    an empty data directory, gives a second server every row acknowledged before the copy began. Needs only
    INFLUXDB3_BIN (or `influxdb3` on PATH), not the whole stack."""
    from backup import influxdb3
    from backup.archive import Codec
    from backup.influxdb3_files import snapshot_number
    from backup.setfiles import StoreReader, StoreWriter
    from tests.integration.races import FAST_SNAPSHOTS, assert_none_lost, copy_under_snapshots
    from tests.integration.stacks.native import Process, binary, start_influxdb3

    server_binary = binary("INFLUXDB3_BIN", "influxdb3")
    if server_binary is None:
        pytest.skip("needs an InfluxDB 3 Core binary (INFLUXDB3_BIN or `influxdb3` on PATH)")
    node = "race-node"

    def serve(data_dir: Path, name: str) -> tuple[Process, str]:
        return start_influxdb3(server_binary, name, tmp_path / f"{name}.log", "--node-id", node, "--object-store",
                               "file", "--data-dir", str(data_dir), "--without-auth", *FAST_SNAPSHOTS, home=tmp_path)

    def newest_snapshot() -> int:
        folder = live / node / "snapshots"
        return max((snapshot_number(f"snapshots/{p.name}") or 0 for p in folder.iterdir()), default=0) \
            if folder.is_dir() else 0

    def post(lines: str) -> None:
        answer = requests.post(f"{url}/api/v3/write_lp", params={"db": "race"}, data=lines, timeout=30)
        assert answer.status_code == 204, answer.text

    class SlowWriter(StoreWriter):
        """Copies a file every 100 ms, so the copy spans several of the server's snapshots."""

        def add_stream(self, *args, **kwargs):
            time.sleep(0.1)
            return super().add_stream(*args, **kwargs)

    live = tmp_path / "live"
    store = SlowWriter(tmp_path / "set", "influxdb3", Codec("zstd", 3, None))
    server, url = serve(live, "influxdb3-live")
    try:
        before, details = copy_under_snapshots(post, "race", newest_snapshot,
                                               lambda: influxdb3.backup_node(live, node, store))
    finally:
        server.stop()
    reader = StoreReader(store.set_dir, "influxdb3", store.entries, None)
    assert influxdb3.check(reader, details) == [], "backup verify on the real server's files"

    restored = tmp_path / "restored"
    influxdb3.restore_node(reader, restored, node, server_running=lambda: False)
    second, url = serve(restored, "influxdb3-restored")
    try:
        answer = requests.post(f"{url}/api/v3/query_sql", timeout=60,
                               json={"db": "race", "q": "SELECT value FROM race", "format": "json"})
        assert answer.status_code == 200, answer.text
        values = {row["value"] for row in answer.json()}
    finally:
        second.stop()
    assert_none_lost(before, values)
