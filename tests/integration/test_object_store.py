"""InfluxDB 3 Core on object storage (README, "InfluxDB 3 on object storage"), on real servers: `influxdb3 serve
--object-store s3` with the compose file's S3 settings against a real SeaweedFS `weed server`, and the backup
service's own commands backing it up and restoring it through that bucket. Needs INFLUXDB3_BIN and WEED_BIN (or
`influxdb3` and `weed` on PATH); skipped with the reason otherwise, never faked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from backup.remote import Remote, RemoteConfig

pytestmark = pytest.mark.integration

ACCESS, SECRET = "OBJECTSTORETEST00001", "object-store-test-secret-key-0001"
NODE, BUCKET = "stack-node0", "influxdb3"
TOKEN = "apiv3_" + "s" * 43


@pytest.fixture
def servers(tmp_path: Path):
    from tests.integration.stacks.native import binary, start_weed

    core, weed = binary("INFLUXDB3_BIN", "influxdb3"), binary("WEED_BIN", "weed")
    if core is None or weed is None:
        pytest.skip("needs InfluxDB 3 Core and SeaweedFS binaries (INFLUXDB3_BIN and WEED_BIN, or `influxdb3` and "
                    "`weed` on PATH)")
    process, url = start_weed(weed, tmp_path / "weed", ACCESS, SECRET)
    try:
        Remote(RemoteConfig(bucket=BUCKET, endpoint=url, access_key_id=ACCESS, secret_access_key=SECRET)) \
            .create_bucket()
        yield core, url
    finally:
        process.stop(60)


def _serve(core: Path, tmp_path: Path, endpoint: str, name: str, *extra: str):
    """Core as the compose file starts it with INFLUXDB3_OBJECT_STORE=s3: the same --data-dir (the volume, which
    then holds nothing the server needs), the bucket and S3 settings in the environment variables compose sets;
    `extra`: more `serve` arguments."""
    from tests.integration.stacks.native import Process, _started, free_port

    port = free_port()
    secrets = tmp_path / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "admin-token.json").write_text(f'{{"token": "{TOKEN}", "name": "_admin"}}')
    (secrets / "admin-token.json").chmod(0o600)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "INFLUXDB3_BUCKET": BUCKET,
           "AWS_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    command = [str(core), "serve", f"--node-id={NODE}", "--object-store=s3", f"--data-dir={tmp_path / 'data'}",
               f"--admin-token-file={secrets / 'admin-token.json'}", "--disable-authz=health,ping",
               "--disable-telemetry-upload", f"--http-bind=127.0.0.1:{port}", *extra]
    process = Process(name, command, env, tmp_path / f"{name}.log")
    process.start()
    return _started(process, f"http://127.0.0.1:{port}", 120)


def _rows(url: str) -> list[int] | int:
    answer = requests.post(f"{url}/api/v3/query_sql", timeout=60, headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"db": "objects", "q": "SELECT value FROM m ORDER BY value", "format": "json"})
    return [row["value"] for row in answer.json()] if answer.status_code == 200 else answer.status_code


def test_core_on_a_bucket_keeps_every_row_when_its_machine_loses_its_disk(servers, tmp_path: Path):
    """Written, stopped, every local folder wiped (the data dir, the token file, the server's home), started again
    on the same bucket: every row is back, from the WAL and catalog in the bucket alone."""
    core, endpoint = servers
    first, url = _serve(core, tmp_path / "host-a", endpoint, "influxdb3-a")
    try:
        written = requests.post(f"{url}/api/v3/write_lp", params={"db": "objects"}, timeout=30,
                                headers={"Authorization": f"Bearer {TOKEN}"},
                                data="\n".join(f"m value={v}i {1_700_000_000 + v}000000000" for v in range(50)))
        assert written.status_code == 204, written.text
        assert _rows(url) == list(range(50))
    finally:
        first.stop()
    local = tmp_path / "host-a" / "data"
    assert not [path for path in local.rglob("*") if path.is_file()], "with s3 the data dir holds no data"
    keys = Remote(RemoteConfig(bucket=BUCKET, prefix=NODE, endpoint=endpoint, access_key_id=ACCESS,
                               secret_access_key=SECRET)).client.list_objects_v2(Bucket=BUCKET, Prefix=f"{NODE}/")
    names = [item["Key"] for item in keys.get("Contents") or []]
    assert any("/wal/" in key for key in names) and any("/catalog/" in key for key in names), names
    shutil.rmtree(tmp_path / "host-a")

    second, url = _serve(core, tmp_path / "host-b", endpoint, "influxdb3-b")
    try:
        assert _rows(url) == list(range(50))
    finally:
        second.stop()


def _write(url: str, values: range) -> None:
    written = requests.post(f"{url}/api/v3/write_lp", params={"db": "objects"}, timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}"},
                            data="\n".join(f"m value={v}i {1_700_000_000 + v}000000000" for v in values))
    assert written.status_code == 204, written.text


def _backup(tmp_path: Path, url: str, endpoint: str, *args: str) -> subprocess.CompletedProcess:
    """`backup <args>` as the backup service runs it for Core on a bucket: the variables compose gives it with
    INFLUXDB3_OBJECT_STORE=s3 (its bucket, endpoint and keys); the data dir is the volume, which stays empty."""
    from tests.integration.stacks import run
    from tests.support.paths import REPO

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "TZ": "UTC", "BACKUP_METRICS": "false",
           "BACKUP_DIR": str(tmp_path / "backups"), "BACKUP_STORES": "influxdb3", "INFLUXDB3_URL": url,
           "INFLUXDB3_TOKEN": TOKEN, "INFLUXDB3_NODE_ID": NODE, "INFLUXDB3_DATA_DIR": str(tmp_path / "volume"),
           "INFLUXDB3_OBJECT_STORE": "s3", "INFLUXDB3_BUCKET": BUCKET, "INFLUXDB3_S3_ENDPOINT": endpoint,
           "INFLUXDB3_S3_ACCESS_KEY_ID": ACCESS, "INFLUXDB3_S3_SECRET_ACCESS_KEY": SECRET}
    return run([sys.executable, "-m", "backup", *args], timeout=300, env=env, cwd=REPO)


def test_a_set_of_core_on_a_bucket_restores_exactly_its_rows_into_the_bucket(servers, tmp_path: Path):
    """The backup service's `backup now` copies Core's node out of the bucket; rows written afterwards are not in
    the set. `backup restore --prepare` (server running) keeps the newer state in a pre-restore set, `backup restore`
    (server stopped) writes the set back over `<node>/` and deletes the rest, and a Core started on the bucket from
    an empty machine answers exactly the rows backed up; the pre-restore set brings the newer rows back the same way."""
    core, endpoint = servers
    (tmp_path / "volume").mkdir()
    server, url = _serve(core, tmp_path / "host-a", endpoint, "influxdb3-a")
    try:
        _write(url, range(40))
        taken = _backup(tmp_path, url, endpoint, "now")
        assert taken.returncode == 0, taken.stderr
        set_name = taken.stdout.split()[-1]
        _write(url, range(40, 70))
        assert _rows(url) == list(range(70))
        prepared = _backup(tmp_path, url, endpoint, "restore", set_name, "--prepare")
        assert prepared.returncode == 0, prepared.stderr
        assert prepared.stdout.split()[-1] == set_name
    finally:
        server.stop()
    manifests = {path.parent.name: json.loads(path.read_text())
                 for path in (tmp_path / "backups").glob("*/manifest.json")}
    assert set(manifests) >= {set_name} and len(manifests) == 2, sorted(manifests)
    for manifest in manifests.values():  # both copied from the bucket, not from a folder
        details = manifest["stores"]["influxdb3"]["details"]
        assert details["object_store"]["bucket"] == BUCKET and details["object_store"]["objects"] > 0, details
    undo = next(name for name in manifests if name != set_name)
    assert manifests[undo]["trigger"] == "pre-restore"

    restored = _backup(tmp_path, url, endpoint, "restore", set_name, "--skip-verify")
    assert restored.returncode == 0, restored.stderr
    assert not [path for path in (tmp_path / "volume").rglob("*") if path.is_file()], "restored into the volume"
    shutil.rmtree(tmp_path / "host-a")
    second, url = _serve(core, tmp_path / "host-b", endpoint, "influxdb3-b")
    try:
        assert _rows(url) == list(range(40))
    finally:
        second.stop()

    back = _backup(tmp_path, url, endpoint, "restore", undo, "--skip-verify")  # the way back: the newer state
    assert back.returncode == 0, back.stderr
    third, url = _serve(core, tmp_path / "host-c", endpoint, "influxdb3-c")
    try:
        assert _rows(url) == list(range(70))
    finally:
        third.stop()


def test_a_copy_of_core_on_a_bucket_during_snapshots_restores_every_acknowledged_write(servers, tmp_path: Path,
                                                                                       monkeypatch):
    """The bucket twin of test_backup.py's race on a folder: Core on the bucket snapshots about every six WAL
    flushes (--wal-snapshot-size 4, one snapshotted WAL file kept, so snapshots delete WAL objects all the time)
    and takes writes all through a backup whose downloads are slowed to span several snapshots. The set passes
    `backup verify`'s check, and restored into the bucket it gives a Core started from an empty machine every row
    acknowledged before the backup began."""
    from backup import influxdb3, influxdb3_s3
    from backup.archive import Codec
    from backup.influxdb3_files import snapshot_number
    from backup.setfiles import StoreReader, StoreWriter
    from tests.integration.races import FAST_SNAPSHOTS, assert_none_lost, copy_under_snapshots

    core, endpoint = servers
    config = RemoteConfig(bucket=BUCKET, prefix=NODE, endpoint=endpoint, access_key_id=ACCESS,
                          secret_access_key=SECRET)
    bucket = Remote(config)

    def newest_snapshot() -> int:
        keys = [item["Key"] for item in bucket.objects_under(f"{NODE}/snapshots/")]
        return max((snapshot_number(key[len(NODE) + 1:]) or 0 for key in keys), default=0)

    def post(lines: str) -> None:
        answer = requests.post(f"{url}/api/v3/write_lp", params={"db": "objects"}, data=lines, timeout=30,
                               headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 204, answer.text

    class SlowRemote(Remote):
        """Downloads an object every 100 ms, so the copy spans several of the server's snapshots."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            download = self.client.download_file

            def slow(*args, **kwargs):
                time.sleep(0.1)
                return download(*args, **kwargs)

            self.client.download_file = slow

    monkeypatch.setattr(influxdb3_s3, "Remote", SlowRemote)
    store = StoreWriter(tmp_path / "set", "influxdb3", Codec("zstd", 3, None))
    server, url = _serve(core, tmp_path / "live", endpoint, "influxdb3-live", *FAST_SNAPSHOTS)
    try:
        before, details = copy_under_snapshots(
            post, "m", newest_snapshot,
            lambda: influxdb3_s3.backup_bucket_node(config, NODE, store, tmp_path / "scratch"))
    finally:
        server.stop()
    reader = StoreReader(store.set_dir, "influxdb3", store.entries, None)
    assert influxdb3.check(reader, details) == [], "backup verify on the real server's objects"

    influxdb3_s3.restore_bucket_node(reader, config, NODE, tmp_path / "scratch", server_running=lambda: False)
    second, url = _serve(core, tmp_path / "restored", endpoint, "influxdb3-restored", *FAST_SNAPSHOTS)
    try:
        answer = requests.post(f"{url}/api/v3/query_sql", timeout=60, headers={"Authorization": f"Bearer {TOKEN}"},
                               json={"db": "objects", "q": "SELECT value FROM m", "format": "json"})
        assert answer.status_code == 200, answer.text
        values = {row["value"] for row in answer.json()}
    finally:
        second.stop()
    assert_none_lost(before, values)
