"""InfluxDB 2 backup and restore through influxdb-client's generated services, against a loopback server
that serves the API's real multipart, gzip and tar shapes."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import tarfile
import time
from pathlib import Path

import pytest

from backup.archive import Codec
from backup.influxdb2 import InfluxDB2, InfluxDB2Error, RestoreStopped
from backup.setfiles import StoreReader, StoreWriter
from common.retry import RetryPolicy
from tests.backup.influxdb2_api import FakeInfluxDB2
from tests.support.recorder import RecordingServer, Reply

BASE = "20250107T235900Z"


@pytest.fixture
def fake() -> FakeInfluxDB2:
    return FakeInfluxDB2.with_data()


@pytest.fixture
def server(fake: FakeInfluxDB2):
    with RecordingServer(fake.respond) as running:
        yield running


def _client(server: RecordingServer, fake: FakeInfluxDB2) -> InfluxDB2:
    return InfluxDB2(server.url, fake.token, fake.org, timeout=10, retry=RetryPolicy(attempts=3, base=0.0),
                     sleep=lambda _: None)


def _backup(tmp_path: Path, server, fake, key: bytes | None = None) -> tuple[StoreWriter, object]:
    writer = StoreWriter(tmp_path, "influxdb2", Codec("zstd", 3, key))
    client = _client(server, fake)
    try:
        report = client.backup(writer, BASE)
    finally:
        client.close()
    return writer, report


def test_backup_writes_the_files_and_manifest_influx_backup_writes(tmp_path: Path, server, fake):
    _, report = _backup(tmp_path, server, fake)
    folder = tmp_path / "influxdb2"
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted([f"{BASE}.bolt.gz", f"{BASE}.sqlite.gz", f"{BASE}.manifest"]
                           + [f"{BASE}.{shard}.tar.gz" for shard in (1, 2, 3, 4)])
    manifest = json.loads((folder / f"{BASE}.manifest").read_text())
    assert manifest["manifestVersion"] == 2
    assert manifest["kv"] == {"fileName": f"{BASE}.bolt.gz", "size": (folder / f"{BASE}.bolt.gz").stat().st_size,
                              "compression": 1}
    assert manifest["sql"]["fileName"] == f"{BASE}.sqlite.gz"
    assert gzip.decompress((folder / f"{BASE}.bolt.gz").read_bytes()) == fake.kv
    assert gzip.decompress((folder / f"{BASE}.sqlite.gz").read_bytes()) == fake.sql
    telemetry = next(bucket for bucket in manifest["buckets"] if bucket["bucketName"] == "telemetry")
    shard = telemetry["retentionPolicies"][0]["shardGroups"][0]["shards"][0]
    assert shard == {"id": 1, "shardOwners": [{"nodeID": 0}], "fileName": f"{BASE}.1.tar.gz",
                     "size": (folder / f"{BASE}.1.tar.gz").stat().st_size, "compression": 1}
    assert gzip.decompress((folder / f"{BASE}.1.tar.gz").read_bytes()) == fake.shards[1]
    assert report.shards == 4 and set(report.buckets) == {"telemetry", "monitoring", "_monitoring"}
    # What was asked of the server: gzip, the operator token, metadata once, then every shard.
    metadata = server.matching("GET", "/api/v2/backup/metadata")
    assert len(metadata) == 1 and metadata[0].header("accept-encoding") == "gzip"
    assert metadata[0].header("authorization") == f"Token {fake.token}"
    assert [r.path for r in server.matching("GET") if "/shards/" in r.path] == [
        f"/api/v2/backup/shards/{shard}" for shard in (1, 2, 3, 4)]


def test_a_shard_deleted_during_the_backup_is_skipped_like_influx_does(tmp_path: Path, server, fake):
    fake.removed_shards.add(2)
    _, report = _backup(tmp_path, server, fake)
    manifest = json.loads((tmp_path / "influxdb2" / f"{BASE}.manifest").read_text())
    telemetry = next(bucket for bucket in manifest["buckets"] if bucket["bucketName"] == "telemetry")
    groups = telemetry["retentionPolicies"][0]["shardGroups"]
    assert [shard["id"] for group in groups for shard in group["shards"]] == [1]
    assert report.shards_removed == [2]
    assert not (tmp_path / "influxdb2" / f"{BASE}.2.tar.gz").exists()


def test_transient_server_errors_are_retried_and_leave_no_stray_files(tmp_path: Path, server, fake):
    fake.fail_next = {"/api/v2/backup/metadata": 1, "/api/v2/backup/shards/3": 2}
    writer, report = _backup(tmp_path, server, fake)
    assert report.shards == 4
    assert len(server.matching("GET", "/api/v2/backup/metadata")) == 2
    assert len(server.matching("GET", "/api/v2/backup/shards/3")) == 3
    assert sorted(entry.path for entry in writer.entries) == sorted(
        f"influxdb2/{path.name}" for path in (tmp_path / "influxdb2").iterdir())


def _internal_errors(fake: FakeInfluxDB2, path: str, count: int):
    """The fake, but `path` answers `count` times what influxd 2.9.1 answered there: 500 {"code":"internal error"}
    (kit/transport/http/error_handler.go)."""
    left = {"count": count}

    def respond(request):
        if request.path == path and left["count"] > 0:
            left["count"] -= 1
            return Reply(500, {"code": "internal error", "message": "An internal error has occurred"})
        return fake.respond(request)

    return respond


def test_a_shard_answering_500_while_a_compaction_runs_gets_a_longer_budget(tmp_path: Path, fake, caplog):
    """influxd 2.9.1 answered one shard HTTP 500 three times within 0.9 s (a snapshot racing a compaction): the
    shard downloads back off for up to about half a minute, one log line per retry, where other requests give up
    after three attempts."""
    from backup.influxdb2 import SHARD_RETRY

    waits: list[float] = []
    caplog.set_level(logging.WARNING, logger="backup.influxdb2")
    with RecordingServer(_internal_errors(fake, "/api/v2/backup/shards/3", 2)) as server:
        client = InfluxDB2(server.url, fake.token, fake.org, timeout=10, sleep=waits.append)
        try:
            report = client.backup(StoreWriter(tmp_path, "influxdb2", Codec()), BASE)
        finally:
            client.close()
    assert report.shards == 4 and len(server.matching("GET", "/api/v2/backup/shards/3")) == 3
    assert gzip.decompress((tmp_path / "influxdb2" / f"{BASE}.3.tar.gz").read_bytes()) == fake.shards[3]
    retries = [record.getMessage() for record in caplog.records if "download shard 3" in record.getMessage()]
    assert len(retries) == 2 and "retry 1 of 7" in retries[0] and "retry 2 of 7" in retries[1]
    assert "500" in retries[0] and len(waits) == 2
    ceilings = [min(SHARD_RETRY.cap, SHARD_RETRY.base * 2 ** n) for n in range(SHARD_RETRY.attempts - 1)]
    assert 30 <= sum(ceilings) <= 45, "the budget outlasts a compaction, not a dead server"


def test_a_shard_still_failing_after_its_budget_fails_the_store(tmp_path: Path, fake):
    with RecordingServer(_internal_errors(fake, "/api/v2/backup/shards/3", 20)) as server:
        client = InfluxDB2(server.url, fake.token, fake.org, timeout=10, sleep=lambda _: None)
        try:
            with pytest.raises(Exception, match="download shard 3"):
                client.backup(StoreWriter(tmp_path, "influxdb2", Codec()), BASE)
        finally:
            client.close()
    assert len(server.matching("GET", "/api/v2/backup/shards/3")) == 8


def test_a_refused_token_fails_with_the_servers_reason(tmp_path: Path, server, fake):
    fake.token = "another-token"
    client = InfluxDB2(server.url, "wrong", fake.org, timeout=5)
    with pytest.raises(Exception, match="401"):
        client.backup(StoreWriter(tmp_path, "influxdb2", Codec()), BASE)
    client.close()


def _reader(tmp_path: Path, writer: StoreWriter, key: bytes | None = None) -> StoreReader:
    return StoreReader(tmp_path, "influxdb2", writer.entries, key)


@pytest.mark.parametrize("key", [None, b"k" * 32], ids=["plain", "encrypted"])
def test_full_restore_uploads_kv_sql_and_every_shard_gzipped(tmp_path, server, fake, key):
    writer, _ = _backup(tmp_path, server, fake, key)
    client = _client(server, fake)
    result = client.restore_full(_reader(tmp_path, writer, key), tmp_path / "scratch")
    client.close()
    kv = server.matching("POST", "/api/v2/restore/kv")[0]
    assert kv.header("content-encoding") == "gzip"
    assert kv.body == fake.kv  # the recorder undoes the gzip: byte-identical to what the server sent
    sql = server.matching("POST", "/api/v2/restore/sql")[0]
    assert sql.body == fake.sql and sql.header("authorization") == f"Token {fake.token}"
    uploads = {int(r.path.rsplit("/", 1)[1]): r for r in server.matching("POST") if "/restore/shards/" in r.path}
    assert sorted(uploads) == [1, 2, 3, 4]
    assert all(uploads[shard].body == fake.shards[shard] for shard in uploads)
    assert all(int(r.header("content-length")) == len(r.raw_body) for r in uploads.values())
    assert result["shards"] == 4 and result["operator_token_changed"] is False
    assert not list((tmp_path / "scratch").glob("**/*.gz")), "decoded temporary files are removed"


@pytest.mark.parametrize("hashed", [True, False], ids=["2.9 hashed tokens", "2.7 plain tokens"])
def test_a_set_from_the_same_install_keeps_the_token_and_says_nothing(tmp_path, server, fake, caplog, hashed):
    """The KV restore answers the restored operator token (2.7) even when it is the one in use, or "" (2.9):
    only a different one means the tokens in .env no longer work."""
    writer, _ = _backup(tmp_path, server, fake)
    fake.hashed_tokens = hashed
    client = _client(server, fake)
    with caplog.at_level(logging.WARNING):
        result = client.restore_full(_reader(tmp_path, writer), tmp_path / "scratch")
    client.close()
    assert result["operator_token_changed"] is False
    assert "another operator token" not in caplog.text


def test_a_set_from_another_install_adopts_its_token_on_influxdb_2_7(tmp_path, server, fake, caplog):
    """InfluxDB 2.7 answers the restored KV's operator token: like `influx restore`, every later call uses it,
    and the user is told that .env's tokens no longer work."""
    writer, _ = _backup(tmp_path, server, fake)
    fake.hashed_tokens, fake.kv_operator_token = False, "token-from-restored-kv"
    client = _client(server, fake)
    with caplog.at_level(logging.WARNING):
        result = client.restore_full(_reader(tmp_path, writer), tmp_path / "scratch")
    client.close()
    assert server.matching("POST", "/api/v2/restore/sql")[0].header("authorization") == \
        "Token token-from-restored-kv"
    assert result["operator_token_changed"] is True and "another operator token" in caplog.text


def test_a_set_from_another_install_stops_with_what_to_do_on_influxdb_2_9(tmp_path, server, fake):
    """InfluxDB 2.9 hashes tokens and answers no token: the restored store refuses INFLUXDB2_TOKEN, and the
    restore names the cause and the fix instead of a bare 401."""
    writer, _ = _backup(tmp_path, server, fake)
    fake.kv_operator_token = "the-other-installs-token"
    client = _client(server, fake)
    with pytest.raises(InfluxDB2Error, match=r"401.*another install.*INFLUXDB2_ADMIN_TOKEN"):
        client.restore_full(_reader(tmp_path, writer), tmp_path / "scratch")
    client.close()


def _delete_group_of_shard(manifests: list[dict], shard_id: int) -> None:
    """What retention enforcement does first (v1/services/meta/data.go DeleteShardGroup): the group gets its
    deletedAt and keeps listing its shards, whose files are removed a moment later."""
    for bucket in manifests:
        for group in bucket["retentionPolicies"][0]["shardGroups"]:
            if any(shard["id"] == shard_id for shard in group["shards"]):
                group["deletedAt"] = "2025-01-20T00:00:00Z"


def test_shards_of_deleted_shard_groups_are_not_backed_up_and_the_restore_completes(tmp_path, server, fake):
    """A shard group retention just deleted still lists its shard, and the shard's files may still be there. A
    restore could never bring it back: the server creates no shard for a deleted group and answers 500 to the
    upload, AFTER its KV restore deleted every shard. So it is left out of the set, as a removed shard is."""
    _delete_group_of_shard(fake.manifests, 2)
    writer, report = _backup(tmp_path, server, fake)
    assert not server.matching("GET", "/api/v2/backup/shards/2"), "a shard of a deleted group is not downloaded"
    assert report.shards == 3 and report.shards_of_deleted_groups == [2]
    client = _client(server, fake)
    result = client.restore_full(_reader(tmp_path, writer), tmp_path / "scratch")
    client.close()
    assert sorted(r.path for r in server.matching("POST") if "/restore/shards/" in r.path) == [
        "/api/v2/restore/shards/1", "/api/v2/restore/shards/3", "/api/v2/restore/shards/4"]
    assert result["shards"] == 3


def test_an_older_set_holding_a_shard_of_a_deleted_group_restores_without_it(tmp_path, server, fake):
    """A set written before the group was deleted in its own metadata (or by an older version of this service)
    names the shard; the restore skips it instead of failing half-way with the server's 500."""
    writer, _ = _backup(tmp_path, server, fake)
    _delete_group_of_shard(fake.manifests, 2)  # the set's KV snapshot: the group was being deleted
    (name, manifest) = InfluxDB2.read_manifest(_reader(tmp_path, writer))
    _delete_group_of_shard(manifest["buckets"], 2)
    (tmp_path / "influxdb2" / name).write_text(json.dumps(manifest))
    client = _client(server, fake)
    result = client.restore_full(_reader(tmp_path, writer), tmp_path / "scratch")
    client.close()
    assert not server.matching("POST", "/api/v2/restore/shards/2") and result["shards"] == 3


def test_uploads_after_the_kv_restore_are_retried(tmp_path, server, fake):
    """After the KV restore the server holds no data at all: a shard upload that meets a passing 503 is sent
    again, whole, instead of leaving the server empty."""
    writer, _ = _backup(tmp_path, server, fake)
    fake.fail_next = {"/api/v2/restore/shards/3": 2, "/api/v2/restore/sql": 1}
    client = _client(server, fake)
    result = client.restore_full(_reader(tmp_path, writer), tmp_path / "scratch")
    client.close()
    attempts = server.matching("POST", "/api/v2/restore/shards/3")
    assert len(attempts) == 3 and attempts[-1].body == fake.shards[3]
    assert len(server.matching("POST", "/api/v2/restore/sql")) == 2
    assert result["shards"] == 4


def test_a_restore_that_stops_after_the_kv_restore_says_how_far_it_got(tmp_path, server, fake):
    writer, _ = _backup(tmp_path, server, fake)
    fake.fail_next = {"/api/v2/restore/shards/3": 10}
    client = _client(server, fake)
    with pytest.raises(RestoreStopped, match=r"restore shard 3.*503.*2 of 4 shards are restored") as stopped:
        client.restore_full(_reader(tmp_path, writer), tmp_path / "scratch")
    client.close()
    assert (stopped.value.restored, stopped.value.total) == (2, 4)


def test_transfers_longer_than_the_timeout_complete_while_bytes_keep_moving(tmp_path, fake):
    """BACKUP_HTTP_TIMEOUT is the longest silence allowed, not a limit on a whole transfer: a shard of many GiB
    streams (down, then up) for as long as it takes while its bytes keep moving."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = os.urandom(8 << 20)  # does not compress: more than the sockets buffer on the way up
        info = tarfile.TarInfo("aaaaaaaaaaaaaaa1/autogen/1/000000001-000000001.tsm")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    fake.shards[1], fake.shard_pace = buffer.getvalue(), 0.01  # ~1.3 s to download

    def client(url: str) -> InfluxDB2:
        return InfluxDB2(url, fake.token, fake.org, timeout=1.0, retry=RetryPolicy(attempts=1))

    writer = StoreWriter(tmp_path, "influxdb2", Codec("zstd", 3, None))
    with RecordingServer(fake.respond) as server:
        started = time.monotonic()
        downloader = client(server.url)
        assert downloader.backup(writer, BASE).shards == 4 and time.monotonic() - started > 1.0
        downloader.close()
    with RecordingServer(fake.respond, slow_body_seconds=1.5) as busy:  # the upload takes 1.5 s and more
        uploader = client(busy.url)
        assert uploader.restore_full(_reader(tmp_path, writer), tmp_path / "scratch")["shards"] == 4
        uploader.close()
        assert busy.matching("POST", "/api/v2/restore/shards/1")[0].body == fake.shards[1]


def test_one_bucket_is_restored_into_a_new_bucket_with_the_servers_shard_ids(tmp_path, server, fake):
    writer, _ = _backup(tmp_path, server, fake)
    client = _client(server, fake)
    result = client.restore_bucket(_reader(tmp_path, writer), tmp_path / "scratch", "telemetry", "telemetry-restored")
    client.close()
    created = server.matching("POST", "/api/v2/restore/bucketMetadata")[0].json()
    assert created["bucketName"] == "telemetry-restored"
    assert created["organizationID"] == fake.org_id and created["organizationName"] == "stack"
    shard_ids = [shard["id"] for group in created["retentionPolicies"][0]["shardGroups"] for shard in group["shards"]]
    assert shard_ids == [1, 2]
    assert all("fileName" not in shard for group in created["retentionPolicies"][0]["shardGroups"]
               for shard in group["shards"])
    uploads = {r.path: r.body for r in server.matching("POST") if "/restore/shards/" in r.path}
    assert uploads == {"/api/v2/restore/shards/101": fake.shards[1], "/api/v2/restore/shards/102": fake.shards[2]}
    assert not server.matching("POST", "/api/v2/restore/kv"), "a bucket restore leaves the KV store alone"
    assert result["restored_as"] == "telemetry-restored"


def test_restoring_a_bucket_that_is_not_in_the_set_names_the_ones_that_are(tmp_path, server, fake):
    writer, _ = _backup(tmp_path, server, fake)
    client = _client(server, fake)
    with pytest.raises(InfluxDB2Error, match=r"'sensors' is not in this set.*monitoring, telemetry"):
        client.restore_bucket(_reader(tmp_path, writer), tmp_path, "sensors")
    fake.add_bucket("telemetry")
    with pytest.raises(InfluxDB2Error, match="already exists"):
        client.restore_bucket(_reader(tmp_path, writer), tmp_path, "telemetry")
    client.close()


def test_check_catches_a_shard_archive_that_is_not_a_tar_stream(tmp_path, server, fake):
    fake.shards[3] = b"this is not a tar archive" * 40
    writer, _ = _backup(tmp_path, server, fake)
    problems = InfluxDB2.check(_reader(tmp_path, writer))
    assert len(problems) == 1 and "shard 3 of monitoring" in problems[0]


def test_the_stored_shard_tar_holds_the_tsm_files_of_the_shard(tmp_path, server, fake):
    writer, _ = _backup(tmp_path, server, fake)
    with _reader(tmp_path, writer).open(f"{BASE}.2.tar") as plain, \
            tarfile.open(fileobj=io.BytesIO(plain.read())) as archive:
        assert archive.getnames() == ["aaaaaaaaaaaaaaa1/autogen/2/000000001-000000001.tsm",
                                      "aaaaaaaaaaaaaaa1/autogen/2/000000002-000000001.tsm"]
