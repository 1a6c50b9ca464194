"""Responses in the exact shapes InfluxDB 2.7's backup and restore endpoints produce, for RecordingServer.

Modelled on influxdb's http/backup_service.go and http/restore_service.go: `GET /api/v2/backup/metadata` is
`multipart/mixed` with parts `kv` (bolt file), `sql` (SQLite file) and `buckets` (JSON bucket manifests),
each with `Content-Disposition: attachment; name="..."`, gzip-encoded when the client accepts gzip;
`GET /api/v2/backup/shards/{id}` is a tar stream of the shard's TSM files named `<bucketID>/autogen/<id>/...`
(404 when the shard was deleted); the restore endpoints take gzip bodies and answer as the server does.
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
class FakeInfluxDB2:
    """The server's state and answers. Use `.respond` as a RecordingServer responder."""

    token: str = "operator-token"
    org: str = "stack"
    org_id: str = "0123456789abcdef"
    version: str = "v2.7.12"
    kv: bytes = field(default_factory=lambda: b"bolt\x00" + bytes(range(256)) * 64)
    sql: bytes = field(default_factory=sqlite_bytes)
    buckets: list[dict] = field(default_factory=list)
    shards: dict[int, bytes] = field(default_factory=dict)
    removed_shards: set[int] = field(default_factory=set)
    fail_next: dict[str, int] = field(default_factory=dict)  # path prefix → number of 503s to answer first
    restored_token: str | None = None
    existing_buckets: set[str] = field(default_factory=set)
    written: list[tuple[str, str]] = field(default_factory=list)  # (bucket, line protocol) of /api/v2/write

    @classmethod
    def with_data(cls) -> FakeInfluxDB2:
        fake = cls()
        layout = {"telemetry": ("aaaaaaaaaaaaaaa1", [1, 2]), "monitoring": ("aaaaaaaaaaaaaaa2", [3]),
                  "_monitoring": ("aaaaaaaaaaaaaaa3", [4])}
        for name, (bucket_id, shard_ids) in layout.items():
            fake.buckets.append(bucket_manifest(fake.org_id, fake.org, bucket_id, name, shard_ids))
            for shard_id in shard_ids:
                fake.shards[shard_id] = shard_tar(bucket_id, shard_id)
        return fake

    def _authorized(self, request: Recorded) -> bool:
        return request.header("authorization") in (f"Token {self.token}", f"Token {self.restored_token}")

    def _maybe_gzip(self, request: Recorded, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict]:
        if "gzip" in (request.header("accept-encoding") or ""):
            return gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
        return body, headers

    def respond(self, request: Recorded) -> Reply:
        for prefix, count in list(self.fail_next.items()):
            if request.path.startswith(prefix) and count > 0:
                self.fail_next[prefix] = count - 1
                return Reply(503, {"code": "unavailable", "message": "try again"}, {"Retry-After": "0"})
        if request.path == "/ping":
            return Reply(204, None, {"X-Influxdb-Version": self.version, "X-Influxdb-Build": "OSS"})
        if not self._authorized(request):
            return Reply(401, {"code": "unauthorized", "message": "unauthorized access"})
        if request.method == "GET" and request.path == "/api/v2/backup/metadata":
            body, boundary = multipart_mixed([
                ("kv", "application/octet-stream", self.kv),
                ("sql", "application/octet-stream", self.sql),
                ("buckets", "application/json; charset=utf-8", json.dumps(self.buckets).encode() + b"\n")])
            body, headers = self._maybe_gzip(request, body,
                                             {"Content-Type": f"multipart/mixed; boundary={boundary}"})
            return Reply(200, body, headers)
        match = re.fullmatch(r"/api/v2/backup/shards/(\d+)", request.path)
        if request.method == "GET" and match:
            shard_id = int(match.group(1))
            if shard_id in self.removed_shards or shard_id not in self.shards:
                return Reply(404, {"code": "not found", "message": f"shard {shard_id} not found"})
            body, headers = self._maybe_gzip(request, self.shards[shard_id],
                                             {"Content-Type": "application/octet-stream"})
            return Reply(200, body, headers)
        if request.method == "POST" and request.path == "/api/v2/restore/kv":
            self.restored_token = "token-from-restored-kv"
            return Reply(200, {"token": self.restored_token})
        if request.method == "POST" and request.path == "/api/v2/restore/sql":
            return Reply(204)
        if request.method == "POST" and request.path == "/api/v2/restore/bucketMetadata":
            manifest = request.json()
            if manifest["bucketName"] in self.existing_buckets:
                return Reply(409, {"code": "conflict", "message": f"bucket {manifest['bucketName']} already exists"})
            mappings = [{"oldId": shard["id"], "newId": shard["id"] + 100}
                        for policy in manifest["retentionPolicies"] for group in policy["shardGroups"]
                        for shard in group["shards"]]
            return Reply(201, {"id": "bbbbbbbbbbbbbbb9", "name": manifest["bucketName"], "shardMappings": mappings})
        if request.method == "POST" and re.fullmatch(r"/api/v2/restore/shards/\d+", request.path):
            return Reply(204)
        if request.method == "GET" and request.path == "/api/v2/orgs":
            if request.param("org") == self.org:
                return Reply(200, {"orgs": [{"id": self.org_id, "name": self.org}]})
            return Reply(404, {"code": "not found", "message": "organization name not found"})
        if request.method == "POST" and request.path == "/api/v2/write":
            bucket = request.param("bucket") or ""
            if bucket not in self.existing_buckets:
                return Reply(404, {"code": "not found", "message": f'bucket "{bucket}" not found'})
            self.written.append((bucket, request.text()))
            return Reply(204)
        if request.method == "GET" and request.path == "/api/v2/buckets":
            name = request.param("name")
            found = [{"id": "c0ffee0000000001", "name": name, "orgID": self.org_id}] \
                if name in self.existing_buckets else []
            return Reply(200, {"buckets": found})
        if request.method == "POST" and request.path == "/api/v2/buckets":
            body = request.json()
            self.existing_buckets.add(body["name"])
            return Reply(201, {"id": "c0ffee0000000002", "name": body["name"], "orgID": body["orgID"]})
        if request.method == "POST" and request.path == "/api/v2/orgs":
            return Reply(201, {"id": "fedcba9876543210", "name": request.json()["name"]})
        return Reply(404, {"code": "not found", "message": f"path not found: {request.method} {request.path}"})
