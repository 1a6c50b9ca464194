"""Responses in the exact shapes InfluxDB 2.7's backup and restore endpoints produce, for RecordingServer.

Modelled on influxdb's http/backup_service.go and http/restore_service.go: `GET /api/v2/backup/metadata` is
`multipart/mixed` with parts `kv` (bolt file), `sql` (SQLite file) and `buckets` (JSON bucket manifests),
each with `Content-Disposition: attachment; name="..."`, gzip-encoded when the client accepts gzip;
`GET /api/v2/backup/shards/{id}` is a tar stream of the shard's TSM files named `<bucketID>/autogen/<id>/...`
(404 when the shard was deleted); the restore endpoints take gzip bodies and answer as the server does (source:
influxdata/influxdb v2.7.12 http/backup_service.go, http/restore_service.go; the same in v2.9.1).
"""

from __future__ import annotations

import gzip
import io
import json
import re
import secrets
import sqlite3
import struct
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.influxdb2 import InfluxDB2, error
from tests.support.recorder import Recorded, Reply

TSM_MAGIC = 0x16D116D1


def tsm_file(seed: int) -> bytes:
    """A structurally valid, empty TSM file (header, no blocks, empty index, footer) plus seeded padding."""
    header = struct.pack(">IB", TSM_MAGIC, 1)
    padding = bytes((seed * 31 + i) % 251 for i in range(4096))
    return header + padding + struct.pack(">Q", len(header) + len(padding))


def sqlite_bytes() -> bytes:
    """A real SQLite database like InfluxDB 2's SQL store (notebooks, annotations)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "influxd.sqlite"
        connection = sqlite3.connect(path)
        connection.executescript("CREATE TABLE notebooks (id TEXT PRIMARY KEY, name TEXT, spec TEXT);"
                                 "INSERT INTO notebooks VALUES ('0a1b', 'ops', '{}');"
                                 "CREATE TABLE annotations (id TEXT, summary TEXT);")
        connection.commit()
        connection.close()
        return path.read_bytes()


def shard_tar(bucket_id: str, shard_id: int, files: int = 2) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for index in range(1, files + 1):
            data = tsm_file(shard_id * 10 + index)
            info = tarfile.TarInfo(f"{bucket_id}/autogen/{shard_id}/{index:09d}-000000001.tsm")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bucket_manifest(org_id: str, org: str, bucket_id: str, name: str, shard_ids: list[int]) -> dict:
    return {
        "organizationID": org_id, "organizationName": org, "bucketID": bucket_id, "bucketName": name,
        "defaultRetentionPolicy": "autogen",
        "retentionPolicies": [{
            "name": "autogen", "replicaN": 1, "duration": 0, "shardGroupDuration": 604800000000000,
            "shardGroups": [{"id": shard_id, "startTime": "2025-01-06T00:00:00Z", "endTime": "2025-01-13T00:00:00Z",
                             "shards": [{"id": shard_id, "shardOwners": [{"nodeID": 0}]}]}
                            for shard_id in shard_ids],
            "subscriptions": []}],
    }


def multipart_mixed(parts: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """(body, boundary) as Go's mime/multipart writes it: CRLF, `--boundary`, part headers, closing `--`."""
    boundary = secrets.token_hex(30)
    out = io.BytesIO()
    for index, (name, content_type, data) in enumerate(parts):
        out.write(b"\r\n" if index else b"")
        out.write(f"--{boundary}\r\n".encode())
        out.write(f'Content-Disposition: attachment; name="{name}"\r\nContent-Type: {content_type}\r\n\r\n'.encode())
        out.write(data)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), boundary


@dataclass
class FakeInfluxDB2(InfluxDB2):
    """tests/support/influxdb2.py's server plus the backup and restore endpoints, with data to back up.

    `manifests` are the bucket manifests `/api/v2/backup/metadata` lists; `shards` the TSM tar of each shard.
    `kv_operator_token` is the operator token inside the KV snapshot a restore uploads (the same install's by
    default); `hashed_tokens` is InfluxDB 2.9's default (--use-hashed-tokens): the restore answers no token.
    `existing_shards` are the shards the storage engine has (None: every shard of `shards`); a KV restore
    replaces them with the restored metadata's (`manifests`, whose KV the set holds).
    """

    kv: bytes = field(default_factory=lambda: b"bolt\x00" + bytes(range(256)) * 64)
    sql: bytes = field(default_factory=sqlite_bytes)
    manifests: list[dict] = field(default_factory=list)
    shards: dict[int, bytes] = field(default_factory=dict)
    removed_shards: set[int] = field(default_factory=set)
    restored_token: str | None = None
    kv_operator_token: str | None = None
    hashed_tokens: bool = True
    existing_shards: set[int] | None = None
    shard_pace: float = 0.0  # seconds between 64 KiB pieces of a shard download (a big shard on a slow disk)

    @classmethod
    def with_data(cls) -> FakeInfluxDB2:
        fake = cls()
        layout = {"telemetry": ("aaaaaaaaaaaaaaa1", [1, 2]), "monitoring": ("aaaaaaaaaaaaaaa2", [3]),
                  "_monitoring": ("aaaaaaaaaaaaaaa3", [4])}
        for name, (bucket_id, shard_ids) in layout.items():
            fake.manifests.append(bucket_manifest(fake.org_id, fake.org, bucket_id, name, shard_ids))
            for shard_id in shard_ids:
                fake.shards[shard_id] = shard_tar(bucket_id, shard_id)
        return fake

    def authorized(self, request: Recorded) -> bool:
        if self.restored_token is not None:  # the restored KV store replaced every user and token
            return request.header("authorization") == f"Token {self.restored_token}"
        return super().authorized(request)

    def _maybe_gzip(self, request: Recorded, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict]:
        if "gzip" in (request.header("accept-encoding") or ""):
            return gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
        return body, headers

    def route(self, request: Recorded):
        found = super().route(request)
        if found is not None:
            return found
        if request.method == "GET" and request.path == "/api/v2/backup/metadata":
            return self._metadata
        if request.method == "GET" and re.fullmatch(r"/api/v2/backup/shards/\d+", request.path):
            return self._shard
        if request.method == "POST" and request.path == "/api/v2/restore/kv":
            return self._restore_kv
        if request.method == "POST" and request.path == "/api/v2/restore/sql":
            # http/restore_service.go handleRestoreSqlStore (v2.7.12, v2.9.1) writes no body: 200, empty.
            return lambda _: Reply(200)
        if request.method == "POST" and request.path == "/api/v2/restore/bucketMetadata":
            return self._restore_bucket_metadata
        if request.method == "POST" and re.fullmatch(r"/api/v2/restore/shards/\d+", request.path):
            return self._restore_shard
        return None

    def _live_shards(self) -> set[int]:
        return set(self.shards) - self.removed_shards if self.existing_shards is None else self.existing_shards

    def _restore_shard(self, request: Recorded) -> Reply:
        """http/restore_service.go handleRestoreShard: nothing written on success, so 200 with an empty body. A
        shard the engine does not have is tsdb/store.go RestoreShard's plain `fmt.Errorf("shard %d doesn't exist
        on this server")`, which kit/transport/http/error_handler.go answers as a 500 internal error without its
        text (v2.7.12, v2.9.1)."""
        if int(request.path.rsplit("/", 1)[1]) not in self._live_shards():
            return error(500, "internal error", "An internal error has occurred - check server logs")
        return Reply(200)

    def _metadata(self, request: Recorded) -> Reply:
        body, boundary = multipart_mixed([
            ("kv", "application/octet-stream", self.kv),
            ("sql", "application/octet-stream", self.sql),
            ("buckets", "application/json; charset=utf-8", json.dumps(self.manifests).encode() + b"\n")])
        body, headers = self._maybe_gzip(request, body, {"Content-Type": f"multipart/mixed; boundary={boundary}"})
        return Reply(200, body, headers)

    def _shard(self, request: Recorded) -> Reply:
        shard_id = int(request.path.rsplit("/", 1)[1])
        if shard_id in self.removed_shards or shard_id not in self.shards:
            return error(404, "not found", f"shard {shard_id} not found")
        body, headers = self._maybe_gzip(request, self.shards[shard_id], {"Content-Type": "application/octet-stream"})
        return Reply(200, body, headers, pace=self.shard_pace)

    def _restore_kv(self, request: Recorded) -> Reply:
        """http/restore_service.go handleRestoreKVStore: the KV store is replaced, so from now on only its tokens
        work; 200 {"token": <its operator token>} — "" when tokens are hashed (v2.9.1, the default: only the
        hash is stored; seen from a real 2.9.1 server)."""
        self.restored_token = self.kv_operator_token or self.token
        # storage/engine.go RestoreKVStore: every shard is deleted, then the restored metadata's shards are created
        # empty, except those of shard groups marked deleted (`sgi.Deleted()`).
        self.existing_shards = {shard["id"] for bucket in self.manifests for policy in bucket["retentionPolicies"]
                                for group in policy["shardGroups"] if not group.get("deletedAt")
                                for shard in group["shards"]}
        return Reply(200, {"token": "" if self.hashed_tokens else self.restored_token})

    def _restore_bucket_metadata(self, request: Recorded) -> Reply:
        """http/restore_service.go handleRestoreBucketMetadata: creates the bucket through the bucket service
        (an existing name is EConflict → 422), then answers 201 with the new shard ids."""
        manifest = request.json()
        name = manifest["bucketName"]
        if name in self.buckets:
            return error(422, "conflict", f"bucket with name {name} already exists")
        bucket = self.add_bucket(name)
        mappings = [{"oldId": shard["id"], "newId": shard["id"] + 100}
                    for policy in manifest["retentionPolicies"] for group in policy["shardGroups"]
                    for shard in group["shards"]]
        # storage/engine.go RestoreBucket maps every shard but creates only those of groups not marked deleted.
        created = {shard["id"] + 100 for policy in manifest["retentionPolicies"] for group in policy["shardGroups"]
                   if not group.get("deletedAt") for shard in group["shards"]}
        self.existing_shards = self._live_shards() | created
        return Reply(201, {"id": bucket["id"], "name": name, "shardMappings": mappings})
