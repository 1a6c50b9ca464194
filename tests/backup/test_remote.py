"""Off-host copies (backup/remote.py): every verified set uploaded to an S3-compatible bucket, the manifest last,
resumable, pruned there by the same policy, and verify/restore from the bucket alone; bad input named by setting.

The bucket is moto's S3 server on loopback (tests/backup/s3server.py), driven over HTTP by the real boto3."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from backup.__main__ import main
from backup.archive import sha256_file
from backup.config import load_config
from backup.job import run_backup, sync_remote
from backup.manifest import MANIFEST_NAME, FileEntry, SetManifest, StoreResult, iso, utc_now
from backup.remote import REMOTE_NAME, Remote, RemoteConfig
from backup.sets import SetStore
from common.config import ConfigError
from tests.backup.fakestack import FakeStack, key_text
from tests.backup.s3server import BUCKET, S3Server
from tests.support.lineprotocol import parse_lines
from tests.support.recorder import RecordingServer, Reply

PREFIX = "site-a/stack"


@pytest.fixture(scope="module")
def s3_module() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture
def s3(s3_module: S3Server) -> S3Server:
    s3_module.reset()
    s3_module.client().create_bucket(Bucket=BUCKET)
    return s3_module


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[FakeStack]:
    with FakeStack(tmp_path) as running:
        yield running


def _config(stack: FakeStack, s3: S3Server, **env: str):
    return load_config(stack.env(BACKUP_METRICS="false", **s3.env(**env)))


def _record_calls(remote: Remote) -> list[tuple[str, str]]:
    """(operation, key) of every request boto3 makes, in order (botocore's provide-client-params event)."""
    calls: list[tuple[str, str]] = []
    remote.client.meta.events.register(
        "provide-client-params.s3.*", lambda model, params, **_: calls.append((model.name, params.get("Key", ""))))
    return calls


def test_a_run_uploads_its_verified_set_with_the_manifest_last(stack: FakeStack, s3: S3Server):
    config = _config(stack, s3)
    remote = Remote(config.remote)
    calls = _record_calls(remote)
    outcome = run_backup(config, trigger="manual", remote=remote)
    assert outcome.success, outcome.error
    name = outcome.backup_set.name
    manifest = outcome.backup_set.manifest
    keys = s3.keys(prefix=f"{PREFIX}/")
    assert set(keys) == {f"{PREFIX}/{name}/{entry.path}" for entry in manifest.files} | {
        f"{PREFIX}/{name}/{MANIFEST_NAME}"}
    for entry in manifest.files:
        head = s3.client().head_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}/{entry.path}")
        assert head["ContentLength"] == entry.size and head["Metadata"]["sha256"] == entry.sha256
    uploads = [key for operation, key in calls if operation in ("PutObject", "CreateMultipartUpload")]
    assert uploads[-1] == f"{PREFIX}/{name}/{MANIFEST_NAME}" and len(uploads) == len(manifest.files) + 1
    assert outcome.remote.uploaded == [name] and outcome.remote.error is None
    assert json.loads((outcome.backup_set.path / REMOTE_NAME).read_text())["target"] == config.remote.describe()


def test_files_are_encrypted_before_they_leave_the_machine(stack: FakeStack, s3: S3Server):
    config = _config(stack, s3, BACKUP_ENCRYPTION_KEY=key_text())
    outcome = run_backup(config, trigger="manual")
    assert outcome.success, outcome.error
    client = s3.client()
    for key in s3.keys(prefix=f"{PREFIX}/"):
        if key.endswith(MANIFEST_NAME):
            continue
        assert key.endswith(".enc"), key
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body.startswith(b"ISBKENC1") and b"SQLite format 3" not in body


def test_an_interrupted_upload_never_looks_complete_and_the_next_run_resumes_it(stack: FakeStack, s3: S3Server):
    config = _config(stack, s3)
    remote = Remote(config.remote)
    sent = {"count": 0}

    def drop_after_three(model, **_):
        if model.name == "PutObject":
            sent["count"] += 1
            if sent["count"] > 3:
                raise EndpointConnectionError(endpoint_url=s3.url)

    remote.client.meta.events.register("before-call.s3.PutObject", drop_after_three)
    first = run_backup(config, trigger="manual", remote=remote)
    name = first.backup_set.name
    assert not first.success and "BACKUP_S3_ENDPOINT: cannot reach" in first.error
    assert len(s3.keys(prefix=f"{PREFIX}/{name}/")) == 3, "three files arrived, no manifest"
    assert Remote(config.remote).sets() == ([], [name]), "files without a manifest are no set"
    assert not (first.backup_set.path / REMOTE_NAME).exists() and first.backup_set.path.is_dir()

    resumed = sync_remote(config, SetStore(config.backup_dir))
    assert resumed.error is None and resumed.uploaded == [name]
    assert resumed.skipped_files == 3, "what arrived before is not sent again"
    complete, incomplete = Remote(config.remote).sets()
    assert [item.name for item in complete] == [name] and incomplete == []


def test_big_files_go_up_in_parts_and_a_rerun_skips_them_by_checksum(tmp_path: Path, s3: S3Server):
    sets = SetStore(tmp_path / "backups")
    started = utc_now()
    partial = sets.begin(started)
    big = partial.path / "grafana" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(11 * 1024 * 1024))
    size, digest = sha256_file(big)
    manifest = SetManifest(partial.name, iso(started), iso(utc_now()), 1.0, "manual", "UTC", "none", False,
                           {"grafana": StoreResult("ok", 1.0, size, 1)},
                           [FileEntry("grafana/big.bin", "grafana", size, digest, size, digest, "none", False)])
    backup_set = sets.finalize(partial, manifest)
    config = RemoteConfig(BUCKET, PREFIX, s3.url, access_key_id="a", secret_access_key="b",
                          multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    remote = Remote(config)
    calls = _record_calls(remote)
    assert remote.upload(backup_set).uploaded == 2
    assert [operation for operation, _ in calls].count("UploadPart") == 3
    head = s3.client().head_object(Bucket=BUCKET, Key=f"{PREFIX}/{partial.name}/grafana/big.bin")
    assert "-" in head["ETag"], "a multipart ETag is no MD5: the sha256 metadata is what a rerun compares"
    again = remote.upload(backup_set)
    assert again.uploaded == 0 and again.skipped == 1

    fresh = SetStore(tmp_path / "fresh")
    with fresh.lock():
        downloaded = remote.download(partial.name, fresh)
    assert downloaded.path == fresh.root / partial.name and sha256_file(downloaded.path / "grafana" / "big.bin") == (
        size, digest)


def test_a_failed_upload_fails_the_run_raises_the_alert_keeps_every_local_set_then_catches_up(
        stack: FakeStack, s3: S3Server, unused_port: int):
    stack.influxdb2.add_bucket("monitoring")
    down = f"http://127.0.0.1:{unused_port}"
    env = stack.env(**s3.env(BACKUP_S3_ENDPOINT=down), BACKUP_KEEP_DAILY="1", BACKUP_KEEP_WEEKLY="0",
                    BACKUP_KEEP_MONTHLY="0", BACKUP_KEEP_PARTIAL="0")
    names = []
    for day in range(3):
        outcome = run_backup(load_config(env), trigger="schedule",
                             clock=lambda day=day: utc_now() + timedelta(days=day))
        assert not outcome.success and outcome.backup_set is not None
        assert outcome.error.startswith(f"off-host copy failed: BACKUP_S3_ENDPOINT: cannot reach {down}")
        names.append(outcome.backup_set.name)
    assert [item.name for item in SetStore(stack.backup_dir).sets()] == names, \
        "retention (one a day) deletes nothing that is not in the bucket yet"
    overall = [point for _, text in stack.influxdb3.written for point in parse_lines(text)
               if point.tags["store"] == "all"]
    assert [point.fields["success"] for point in overall] == [False, False, False]
    assert "BACKUP_S3_ENDPOINT" in overall[-1].fields["error"]

    env.update(s3.env())
    caught_up = run_backup(load_config(env), trigger="schedule", clock=lambda: utc_now() + timedelta(days=3))
    assert caught_up.success, caught_up.error
    # One daily slot: the new set is uploaded, the older ones are not worth uploading and go locally too.
    assert caught_up.remote.uploaded == [caught_up.backup_set.name]
    assert [item.name for item in SetStore(stack.backup_dir).sets()] == [caught_up.backup_set.name]


def test_the_next_run_uploads_the_sets_an_earlier_run_could_not(stack: FakeStack, s3: S3Server, unused_port: int):
    down = load_config(stack.env(BACKUP_METRICS="false", **s3.env(BACKUP_S3_ENDPOINT=f"http://127.0.0.1:{unused_port}")))
    missed = run_backup(down, trigger="manual").backup_set.name
    later = run_backup(_config(stack, s3), trigger="manual", clock=lambda: utc_now() + timedelta(days=1))
    assert later.success and later.remote.uploaded == [later.backup_set.name, missed]
    assert {item.name for item in Remote(_config(stack, s3).remote).sets()[0]} == {missed, later.backup_set.name}


def test_retention_applies_in_the_bucket_and_deletes_only_this_services_sets(stack: FakeStack, s3: S3Server):
    client = s3.client()
    foreign = {f"{PREFIX}/20200101T000000Z/{MANIFEST_NAME}": b'{"format": "someone-else"}',
               f"{PREFIX}/notes/readme.txt": b"kept", "elsewhere/20200101T000000Z/x": b"kept"}
    for key, body in foreign.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    env = dict(BACKUP_KEEP_DAILY="2", BACKUP_KEEP_WEEKLY="0", BACKUP_KEEP_MONTHLY="0")
    names = []
    for day in range(4):
        outcome = run_backup(_config(stack, s3, **env), trigger="manual",
                             clock=lambda day=day: utc_now() + timedelta(days=day))
        assert outcome.success, outcome.error
        names.append(outcome.backup_set.name)
    complete, _ = Remote(_config(stack, s3).remote).sets()
    assert [item.name for item in complete] == names[-2:]
    keys = s3.keys()
    assert all(key in keys for key in foreign), "what this service did not write stays"
    assert not any(key.startswith(f"{PREFIX}/{name}/") for name in names[:2] for key in keys)


def test_a_fresh_host_lists_verifies_and_restores_from_the_bucket_alone(tmp_path: Path, s3: S3Server, monkeypatch,
                                                                        capsys):
    with FakeStack(tmp_path / "old") as old:
        taken = run_backup(_config(old, s3, BACKUP_ENCRYPTION_KEY=key_text()), trigger="manual")
        assert taken.success, taken.error
        kv = old.influxdb2.kv
    with FakeStack(tmp_path / "new") as new:
        assert not new.backup_dir.exists()
        for name, value in new.env(BACKUP_METRICS="false", BACKUP_ENCRYPTION_KEY=key_text(), **s3.env()).items():
            monkeypatch.setenv(name, value)
        assert main(["list"]) == 0
        listing = capsys.readouterr().out
        assert taken.backup_set.name in listing and " only " in listing
        assert main(["verify", "latest"]) == 0
        local = SetStore(new.backup_dir).get(taken.backup_set.name)
        assert local.verified and (local.path / REMOTE_NAME).is_file()
        # make restore's two steps (compose/stack.py restore), InfluxDB 2 from the downloaded set
        assert main(["restore", "latest", "--only", "influxdb2", "--prepare"]) == 0
        assert capsys.readouterr().out.split()[-1] == taken.backup_set.name
        assert main(["restore", taken.backup_set.name, "--only", "influxdb2", "--skip-verify"]) == 0
        (restored,) = new.servers["influxdb2"].matching("POST", "/api/v2/restore/kv")
        assert restored.body == kv and new.influxdb2.restored_token is not None


def test_a_set_deleted_locally_is_downloaded_again_by_name(stack: FakeStack, s3: S3Server, monkeypatch, tmp_path):
    taken = run_backup(_config(stack, s3), trigger="manual").backup_set
    SetStore(stack.backup_dir).remove(taken)
    for name, value in stack.env(BACKUP_METRICS="false", **s3.env()).items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "extracted"
    assert main(["extract", taken.name, str(out)]) == 0
    connection = sqlite3.connect(out / "grafana" / "grafana.db")
    try:
        assert connection.execute("SELECT count(*) FROM dashboard").fetchone()[0] == 5
    finally:
        connection.close()


# ---------------------------------------------------------------------------------------------- bad input
def _failed_run(stack: FakeStack, config, day: int = 0) -> str:
    """A run whose upload fails; `day`: taken that many days from now (retention keeps one set a day)."""
    outcome = run_backup(config, trigger="manual", clock=lambda: utc_now() + timedelta(days=day))
    assert not outcome.success and outcome.backup_set is not None and outcome.backup_set.path.is_dir()
    assert outcome.remote.uploaded == []
    return outcome.error


def test_wrong_credentials_name_the_setting(stack: FakeStack, s3: S3Server):
    access, secret = s3.require_auth()
    try:
        unknown = _failed_run(stack, _config(stack, s3, BACKUP_S3_ACCESS_KEY_ID="AKIANOBODYKNOWS00000",
                                             BACKUP_S3_SECRET_ACCESS_KEY=secret), day=-2)
        assert "BACKUP_S3_ACCESS_KEY_ID" in unknown and "InvalidAccessKeyId" in unknown
        wrong = _failed_run(stack, _config(stack, s3, BACKUP_S3_ACCESS_KEY_ID=access,
                                           BACKUP_S3_SECRET_ACCESS_KEY="not-the-secret"), day=-1)
        assert "BACKUP_S3_SECRET_ACCESS_KEY" in wrong and "SignatureDoesNotMatch" in wrong
        assert secret not in unknown + wrong and "not-the-secret" not in wrong
        right = run_backup(_config(stack, s3, BACKUP_S3_ACCESS_KEY_ID=access, BACKUP_S3_SECRET_ACCESS_KEY=secret),
                           trigger="manual")
        assert right.success, right.error
        assert len(right.remote.uploaded) == 3, "the sets the refused runs kept are uploaded too"
    finally:
        s3.open_auth()


def test_a_missing_bucket_is_named(stack: FakeStack, s3: S3Server):
    error = _failed_run(stack, _config(stack, s3, BACKUP_S3_BUCKET="no-such-bucket"))
    assert "BACKUP_S3_BUCKET: bucket 'no-such-bucket' does not exist" in error


def test_an_endpoint_that_is_down_is_named(stack: FakeStack, s3: S3Server, unused_port: int):
    error = _failed_run(stack, _config(stack, s3, BACKUP_S3_ENDPOINT=f"http://127.0.0.1:{unused_port}"))
    assert f"BACKUP_S3_ENDPOINT: cannot reach http://127.0.0.1:{unused_port}" in error


def _full_bucket(request) -> Reply:
    """An S3 server whose disk is full, answering as MinIO does (cmd/api-errors.go ErrStorageFull: HTTP 507,
    XMinioStorageFull): listing and HEAD work, every upload is refused."""
    if request.method == "GET":
        return Reply(200, f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>{BUCKET}</Name>'
                          '<KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>',
                     {"Content-Type": "application/xml"})
    if request.method == "HEAD":
        return Reply(404)
    return Reply(507, '<?xml version="1.0" encoding="UTF-8"?><Error><Code>XMinioStorageFull</Code><Message>Storage '
                      'backend has reached its minimum free disk threshold. Please delete a few objects to proceed.'
                      '</Message></Error>', {"Content-Type": "application/xml"})


def test_a_bucket_without_space_is_named_and_nothing_local_is_deleted(stack: FakeStack, s3: S3Server):
    with RecordingServer(_full_bucket) as full:
        config = _config(stack, s3, BACKUP_S3_ENDPOINT=full.url, BACKUP_KEEP_DAILY="1", BACKUP_KEEP_WEEKLY="0",
                         BACKUP_KEEP_MONTHLY="0")
        first, second = _failed_run(stack, config, day=-1), _failed_run(stack, config)
    assert "BACKUP_S3_BUCKET: bucket 'stack-backups' has no room for this set (XMinioStorageFull" in second
    assert first.startswith("off-host copy failed: BACKUP_S3_BUCKET") and len(SetStore(stack.backup_dir).sets()) == 2


def test_s3_settings_are_checked_up_front(stack: FakeStack):
    with pytest.raises(ConfigError) as caught:
        load_config(stack.env(BACKUP_S3_BUCKET="Not_A_Bucket", BACKUP_S3_ENDPOINT="seaweedfs:8333",
                              BACKUP_S3_ACCESS_KEY_ID="only-one-half"))
    text = str(caught.value)
    assert "BACKUP_S3_BUCKET: 'Not_A_Bucket' is not an S3 bucket name" in text
    assert "BACKUP_S3_ENDPOINT: 'seaweedfs:8333' is not an http(s) URL" in text
    assert "BACKUP_S3_ACCESS_KEY_ID/BACKUP_S3_SECRET_ACCESS_KEY: set both" in text
    assert "only-one-half" not in text
    with pytest.raises(ConfigError, match="BACKUP_S3_BUCKET: is required"):
        load_config(stack.env(BACKUP_S3_ENDPOINT="http://seaweedfs:8333"))
    assert load_config(stack.env()).remote is None


def test_the_seaweedfs_one_shot_creates_its_buckets_once(s3: S3Server):
    """`python -m backup.buckets` (the seaweedfs-init service): missing buckets created, existing ones kept."""
    from backup.buckets import ensure_buckets

    env = {"S3_ENDPOINT": s3.url, "S3_BUCKETS": f"influxdb3,{BUCKET}", "S3_ACCESS_KEY_ID": "a",
           "S3_SECRET_ACCESS_KEY": "b"}
    assert ensure_buckets(env) == ["influxdb3"]
    assert ensure_buckets(env) == []
    with pytest.raises(ConfigError, match="S3_BUCKETS: 'Bad_Name' is not an S3 bucket name"):
        ensure_buckets({**env, "S3_BUCKETS": "Bad_Name"})


# ------------------------------------------------------------------------------ InfluxDB 3 on object storage
def test_influxdb3_on_a_bucket_is_backed_up_verified_and_restored_through_the_bucket(tmp_path: Path, s3: S3Server):
    """INFLUXDB3_OBJECT_STORE=s3: Core's node tree in its bucket goes into the set as a folder's would (WAL first,
    catalog last, checked as the server reads it), and a restore puts exactly the set's tree back under the node,
    deleting what the server wrote since; other nodes' objects are left alone. Each object is fetched once: a
    folder's listing does not take in a sibling whose name starts the same (`catalog/` and `catalogs/`), and Core
    3.6's top-level marker object `table-index-conversion-completed` is copied like a folder's file."""
    from backup import influxdb3_s3
    from backup.archive import Codec
    from backup.setfiles import StoreReader, StoreWriter
    from tests.backup.influxdb3_server import rows_after_restart
    from tests.backup.test_influxdb3 import NODE, server_tree

    tree = server_tree(tmp_path / "server")
    tree.update({"catalogs/legacy.json": b"{}", "table-index-conversion-completed": b""})
    client = s3.client()
    client.create_bucket(Bucket="influxdb3")
    for relative, data in tree.items():
        client.put_object(Bucket="influxdb3", Key=f"{NODE}/{relative}", Body=data)
    client.put_object(Bucket="influxdb3", Key="other-node/catalog/v3/snapshot", Body=b"not ours")
    config = load_config({"INFLUXDB3_OBJECT_STORE": "s3", "INFLUXDB3_BUCKET": "influxdb3", "INFLUXDB3_NODE_ID": NODE,
                          "INFLUXDB3_S3_ENDPOINT": s3.url, "INFLUXDB3_S3_ACCESS_KEY_ID": "a",
                          "INFLUXDB3_S3_SECRET_ACCESS_KEY": "b", "BACKUP_STORES": "influxdb3"}).influxdb3_s3
    assert config is not None and config.prefix == NODE
    writer = StoreWriter(tmp_path / "set", "influxdb3", Codec("zstd", 3, None))
    (tmp_path / "scratch").mkdir()
    details = influxdb3_s3.backup_bucket_node(config, NODE, writer, tmp_path / "scratch")
    assert details["object_store"]["objects"] == len(tree) - 1, "each once; table-snapshots/ left out"
    reader = StoreReader(writer.set_dir, "influxdb3", writer.entries, None)
    from backup import influxdb3
    assert influxdb3.check(reader, details) == []
    assert influxdb3_s3.holds_node(config, NODE)

    client.put_object(Bucket="influxdb3", Key=f"{NODE}/wal/99999999999999999999.wal", Body=b"written later")
    result = influxdb3_s3.restore_bucket_node(reader, config, NODE, tmp_path / "scratch",
                                              server_running=lambda: False)
    assert result["deleted"] >= 1
    restored = {key[len(NODE) + 1:]: client.get_object(Bucket="influxdb3", Key=key)["Body"].read()
                for key in s3.keys("influxdb3", f"{NODE}/")}
    assert restored == {name: data for name, data in tree.items() if not name.startswith("table-snapshots/")}
    assert "other-node/catalog/v3/snapshot" in s3.keys("influxdb3")
    local = tmp_path / "check" / NODE
    for name, data in restored.items():
        _put = local / name
        _put.parent.mkdir(parents=True, exist_ok=True)
        _put.write_bytes(data)
    assert rows_after_restart(local) == rows_after_restart(tmp_path / "server" / NODE)


def test_the_keys_can_come_from_files_and_never_appear_in_messages(stack: FakeStack, s3: S3Server, tmp_path: Path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("secret-from-a-file\n")
    secret_file.chmod(0o600)
    env = {**stack.env(), **s3.env(), "BACKUP_S3_SECRET_ACCESS_KEY_FILE": str(secret_file)}
    env.pop("BACKUP_S3_SECRET_ACCESS_KEY")
    assert load_config(env).remote.secret_access_key == "secret-from-a-file"
    with pytest.raises(ConfigError, match="set both BACKUP_S3_SECRET_ACCESS_KEY and BACKUP_S3_SECRET_ACCESS_KEY_FILE"):
        load_config({**env, "BACKUP_S3_SECRET_ACCESS_KEY": "x"})
