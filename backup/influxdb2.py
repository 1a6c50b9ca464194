"""InfluxDB 2: full backups through the server's HTTP backup API, restores through its restore API.

The files and their manifest are exactly those `influx backup --compression gzip` writes (manifestVersion 2:
`<base>.bolt.gz`, `<base>.sqlite.gz`, `<base>.<shard>.tar.gz`, `<base>.manifest`), so `influx restore` reads an
unencrypted set's `influxdb2/` folder as it is (`backup extract` first for an encrypted one). Every request
goes through influxdb-client's generated `BackupService` / `RestoreService`; bodies stream from and to disk
(`StreamingApiClient` lets the generated client send an open file instead of bytes held in memory).

Every request has a connect timeout and a read timeout (the longest silence allowed), never a total one: a shard
of many GiB streams for as long as it needs. A full restore is not atomic on the server's side: its KV restore
deletes every shard before the first is uploaded (storage/engine.go RestoreKVStore, v2.7.12 and v2.9.1). So what
follows it is retried (each upload is idempotent: a shard restore rewrites the same TSM file names), shards of
shard groups marked deleted are neither backed up nor uploaded (the server creates no shard for them and answers
500 to an upload), and a restore that stops anyway says how far it got (`RestoreStopped`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

import urllib3
from influxdb_client import InfluxDBClient, OrganizationsApi
from influxdb_client._sync.api_client import ApiClient
from influxdb_client._sync.rest import ApiException, RESTClientObject, RESTResponse
from influxdb_client.service.backup_service import BackupService
from influxdb_client.service.restore_service import RestoreService
from python_multipart.multipart import MultipartParser, parse_options_header

from backup.archive import COPY_BUFFER, Codec
from backup.setfiles import StoreReader, StoreWriter
from common.retry import RetryableError, RetryPolicy, call_with_retry

__all__ = ["INFLUX_MANIFEST_VERSION", "InfluxDB2", "InfluxDB2Error", "RestoreStopped", "StreamingApiClient"]

log = logging.getLogger("backup.influxdb2")

INFLUX_MANIFEST_VERSION = 2
GZIP = 1  # influx-cli's FileCompression: 0 none, 1 gzip (encoded as a JSON number)
SQLITE_MAGIC = b"SQLite format 3\x00"
CONNECT_TIMEOUT = 10.0
# A shard download gets a longer budget than other requests: influxd 2.9.1 was seen answering
# GET /api/v2/backup/shards/<id> HTTP 500 three times within 0.9 s, most likely its snapshot racing a compaction
# of that shard (influxdata/influxdb#21743), which a few seconds later is over. 8 attempts with full-jitter
# backoff capped at 8 s: at most 39 s of waiting (1+2+4+8+8+8+8), about 20 s on average.
SHARD_RETRY = RetryPolicy(attempts=8, base=1.0, cap=8.0)


class InfluxDB2Error(RuntimeError):
    """A backup or restore step failed; the message names the step and the server's answer."""


class RestoreStopped(InfluxDB2Error):
    """A full restore failed after its KV restore: the server's data is gone and only part of the set is back."""

    def __init__(self, message: str, *, restored: int, total: int):
        super().__init__(message)
        self.restored, self.total = restored, total


def describe(exc: BaseException) -> str:
    """A one-line reason without headers or tokens."""
    if isinstance(exc, ApiException):
        body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else (exc.body or "")
        with contextlib.suppress(ValueError, AttributeError):
            body = json.loads(body).get("message", body)
        return f"HTTP {exc.status} {exc.reason or ''}".strip() + (f": {str(body)[:300]}" if body else "")
    return f"{type(exc).__name__}: {exc}"


# ------------------------------------------------------------------------------ streaming request bodies
class _StreamingREST(RESTClientObject):
    """The generated REST client, plus: a body that is an open binary file is streamed, not read whole."""

    def request(self, method, url, query_params=None, headers=None, body=None, post_params=None,
                _preload_content=True, _request_timeout=None, **urlopen_kw):
        if not hasattr(body, "read"):
            return super().request(method, url, query_params=query_params, headers=headers, body=body,
                                   post_params=post_params, _preload_content=_preload_content,
                                   _request_timeout=_request_timeout, **urlopen_kw)
        headers = dict(headers or {})
        headers["Content-Length"] = str(os.fstat(body.fileno()).st_size - body.tell())
        if query_params:
            url += "?" + urlencode(query_params)
        connect, read = _request_timeout or self.configuration.timeout
        timeout = urllib3.Timeout(connect=connect / 1_000, read=read / 1_000)
        raw = self.pool_manager.request(method, url, body=body, headers=headers, preload_content=True,
                                        timeout=timeout, **urlopen_kw)
        response = RESTResponse(raw)
        response.data = response.data.decode("utf8")
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return response


class StreamingApiClient(ApiClient):
    """An influxdb-client ApiClient whose request body may be an open file (sent in chunks)."""

    def __init__(self, configuration, header_name=None, header_value=None):
        super().__init__(configuration=configuration, header_name=header_name, header_value=header_value)
        self.rest_client = _StreamingREST(configuration)

    def sanitize_for_serialization(self, obj):
        if hasattr(obj, "read"):
            return obj
        return super().sanitize_for_serialization(obj)


# ----------------------------------------------------------------------------- multipart metadata stream
class _MetadataParts:
    """Feeds the `multipart/mixed` metadata response to python-multipart and routes each part:
    `kv` and `sql` stream into set files, `buckets` (a small JSON manifest) is kept for parsing."""

    def __init__(self, open_part: Callable[[str], Any]):
        self.open_part = open_part
        self.sink: Any = None
        self.name: str | None = None
        self.header_field, self.header_value = bytearray(), bytearray()
        self.headers: dict[str, str] = {}
        self.written: dict[str, Any] = {}
        self.buckets = bytearray()
        self.seen: list[str] = []

    def callbacks(self) -> dict[str, Callable]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self.header_field.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self.header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self.headers, self.name, self.sink = {}, None, None

    def _header_end(self) -> None:
        self.headers[self.header_field.decode("latin-1").lower()] = self.header_value.decode("latin-1")
        self.header_field.clear()
        self.header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get("content-disposition", ""))
        name = params.get(b"name", b"").decode("utf-8")
        if name not in ("kv", "sql", "buckets"):
            raise InfluxDB2Error(f"metadata response contained unexpected part {name!r} (expected kv, sql, buckets)")
        self.name = name
        self.seen.append(name)
        if name != "buckets":
            self.sink = self.open_part(name)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self.name == "buckets":
            self.buckets.extend(data[start:end])
        else:
            self.sink.write(data[start:end])

    def _part_end(self) -> None:
        if self.sink is not None:
            self.written[self.name] = self.sink  # type: ignore[index]
            self.sink = None


@dataclass
class BackupReport:
    base_name: str
    buckets: list[str] = field(default_factory=list)
    shards: int = 0
    shards_removed: list[int] = field(default_factory=list)
    shards_of_deleted_groups: list[int] = field(default_factory=list)


class InfluxDB2:
    """One InfluxDB 2 server. `api_client` (a StreamingApiClient) is injectable for tests."""

    def __init__(self, url: str, token: str, org: str, *, timeout: float = 600.0,
                 retry: RetryPolicy | None = None, shard_retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] | None = None):
        self.url, self.org = url, org
        # (connect, read) in ms: influxdb-client turns a single number into a TOTAL timeout per request.
        self.client = InfluxDBClient(url=url, token=token, org=org,
                                     timeout=(int(CONNECT_TIMEOUT * 1000), int(timeout * 1000)))
        self.api = StreamingApiClient(self.client.conf, "Authorization", f"Token {token}")
        self.backup_service = BackupService(self.api)
        self.restore_service = RestoreService(self.api)
        self.retry = retry or RetryPolicy(attempts=3)
        self.shard_retry = shard_retry or SHARD_RETRY
        self.sleep = sleep

    def close(self) -> None:
        self.client.close()

    def version(self) -> str:
        return self.client.version()

    # ---------------------------------------------------------------------------------------- backup
    def _with_retry(self, what: str, fn: Callable[[], Any], policy: RetryPolicy | None = None) -> Any:
        policy = policy or self.retry

        def attempt():
            try:
                return fn()
            except ApiException as exc:
                if policy.is_retryable_status(exc.status or 0):
                    raise RetryableError(f"{what}: {describe(exc)}", status=exc.status) from exc
                raise
            except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
                raise RetryableError(f"{what}: {describe(exc)}") from exc

        kwargs = {"sleep": self.sleep} if self.sleep else {}
        return call_with_retry(attempt, policy,
                               on_retry=lambda n, exc, delay: log.warning("%s; retry %d of %d in %.1f s", exc, n,
                                                                          policy.attempts - 1, delay),
                               **kwargs)

    def backup(self, writer: StoreWriter, base_name: str) -> BackupReport:
        """Metadata (kv, sql, bucket manifest) then every shard, streamed into `writer`; then the manifest."""
        # gzip because `influx restore` reads nothing else; level 1 because TSM and bolt data gain little from
        # more effort (level 6 writes ~39 MiB/s here, one core).
        gzip_codec = Codec("gzip", 1, writer.codec.key)
        report = BackupReport(base_name)
        files: dict[str, dict[str, Any]] = {}

        def download_metadata() -> bytes:
            names = {"kv": f"{base_name}.bolt", "sql": f"{base_name}.sqlite"}
            parts = _MetadataParts(lambda part: writer.open(names[part], codec=gzip_codec))
            response = self.backup_service.get_backup_metadata(accept_encoding="gzip", _preload_content=False)
            try:
                _, params = parse_options_header(response.headers.get("Content-Type", ""))
                boundary = params.get(b"boundary")
                if not boundary:
                    raise InfluxDB2Error("metadata response is not multipart (no boundary in Content-Type)")
                parser = MultipartParser(boundary, parts.callbacks())
                try:
                    for chunk in response.stream(COPY_BUFFER, decode_content=True):
                        parser.write(chunk)
                    parser.finalize()
                except BaseException:
                    for sink in [parts.sink, *parts.written.values()]:
                        if sink is not None and hasattr(sink, "abort"):
                            sink.abort()
                    raise
            finally:
                response.release_conn()
            for part in ("kv", "buckets"):
                if part not in parts.seen:
                    raise InfluxDB2Error(f"metadata response lacks the {part!r} part")
            for part, sink in parts.written.items():
                sink.close()
                files[part] = {"fileName": f"{names[part]}.gz", "size": sink.compressed_size, "compression": GZIP}
            return bytes(parts.buckets)

        raw_buckets = self._with_retry("download metadata snapshot", download_metadata)
        try:
            bucket_manifests = json.loads(raw_buckets)
        except ValueError as exc:
            raise InfluxDB2Error(f"bucket manifest part is not JSON: {exc}") from exc
        buckets = []
        for bucket in bucket_manifests:
            report.buckets.append(bucket["bucketName"])
            buckets.append(self._backup_bucket(writer, gzip_codec, base_name, bucket, report))
        manifest = {"manifestVersion": INFLUX_MANIFEST_VERSION, "kv": files["kv"], "buckets": buckets}
        if "sql" in files:
            manifest["sql"] = files["sql"]
        writer.add_bytes(f"{base_name}.manifest", json.dumps(manifest, indent=2).encode() + b"\n", compress=False)
        return report

    def _backup_bucket(self, writer: StoreWriter, codec: Codec, base_name: str, bucket: dict[str, Any],
                       report: BackupReport) -> dict[str, Any]:
        entry = {key: bucket.get(key) for key in ("organizationID", "organizationName", "bucketID", "bucketName",
                                                 "defaultRetentionPolicy")}
        if bucket.get("description") is not None:
            entry["description"] = bucket["description"]
        entry["retentionPolicies"] = []
        for policy in bucket.get("retentionPolicies") or []:
            groups = []
            for group in policy.get("shardGroups") or []:
                shards = []
                for shard in group.get("shards") or []:
                    if group.get("deletedAt") is not None:
                        # Deleted by retention: its shards go next, and a restore could not bring them back.
                        report.shards_of_deleted_groups.append(int(shard["id"]))
                        continue
                    stored = self._backup_shard(writer, codec, base_name, int(shard["id"]), report)
                    if stored is None:
                        continue
                    shards.append({"id": int(shard["id"]),
                                   "shardOwners": [{"nodeID": owner.get("nodeID")}
                                                   for owner in shard.get("shardOwners") or []],
                                   **stored})
                converted = {"id": group["id"], "startTime": group["startTime"], "endTime": group["endTime"],
                             "shards": shards}
                for optional in ("deletedAt", "truncatedAt"):
                    if group.get(optional) is not None:
                        converted[optional] = group[optional]
                groups.append(converted)
            entry["retentionPolicies"].append({
                "name": policy.get("name"), "replicaN": policy.get("replicaN", 1),
                "duration": policy.get("duration", 0), "shardGroupDuration": policy.get("shardGroupDuration", 0),
                "shardGroups": groups,
                "subscriptions": [{"name": sub.get("name"), "mode": sub.get("mode"),
                                   "destinations": sub.get("destinations") or []}
                                  for sub in policy.get("subscriptions") or []]})
        return entry

    def _backup_shard(self, writer: StoreWriter, codec: Codec, base_name: str, shard_id: int,
                      report: BackupReport) -> dict[str, Any] | None:
        name = f"{base_name}.{shard_id}.tar"

        def download():
            sink = writer.open(name, codec=codec)
            try:
                response = self.backup_service.get_backup_shard_id(shard_id, accept_encoding="gzip",
                                                                   _preload_content=False)
                try:
                    for chunk in response.stream(COPY_BUFFER, decode_content=True):
                        sink.write(chunk)
                finally:
                    response.release_conn()
            except BaseException:
                sink.abort()
                raise
            sink.close()
            return {"fileName": f"{name}.gz", "size": sink.compressed_size, "compression": GZIP}

        try:
            stored = self._with_retry(f"download shard {shard_id}", download, self.shard_retry)
        except ApiException as exc:
            if exc.status == 404:
                log.warning("shard %d was removed during the backup; skipped (as influx backup does)", shard_id)
                report.shards_removed.append(shard_id)
                return None
            raise InfluxDB2Error(f"download of shard {shard_id} failed: {describe(exc)}") from exc
        report.shards += 1
        return stored

    # --------------------------------------------------------------------------------------- reading
    @staticmethod
    def read_manifest(reader: StoreReader) -> tuple[str, dict[str, Any]]:
        manifests = [name for name in reader.names() if name.endswith(".manifest")]
        if len(manifests) != 1:
            raise InfluxDB2Error(f"expected one influx manifest in the set, found {len(manifests)}")
        manifest = json.loads(reader.read_bytes(manifests[0]))
        if manifest.get("manifestVersion") != INFLUX_MANIFEST_VERSION:
            raise InfluxDB2Error(f"unsupported influx manifestVersion {manifest.get('manifestVersion')!r}")
        return manifests[0], manifest

    @staticmethod
    def _relative(file_entry: dict[str, Any]) -> str:
        """influx file name (`x.tar.gz`) → our relative name (`x.tar`, stored gzip-compressed)."""
        name = file_entry["fileName"]
        return name[: -len(".gz")] if file_entry.get("compression") == GZIP and name.endswith(".gz") else name

    @classmethod
    def check(cls, reader: StoreReader) -> list[str]:
        """Dry run of a restore: every file the influx manifest names decodes, to the size it records;
        shard archives are readable tar streams; the SQL snapshot is a SQLite database."""
        problems = []
        _, manifest = cls.read_manifest(reader)
        referenced = [("kv", manifest["kv"])] + ([("sql", manifest["sql"])] if manifest.get("sql") else [])
        for bucket in manifest["buckets"]:
            for policy in bucket["retentionPolicies"]:
                for group in policy["shardGroups"]:
                    referenced += [(f"shard {shard['id']} of {bucket['bucketName']}", shard)
                                   for shard in group["shards"]]
        for label, file_entry in referenced:
            relative = cls._relative(file_entry)
            try:
                with reader.open(relative, decompress=False) as raw:
                    size = _count(raw)
                if size != file_entry["size"]:
                    problems.append(f"influxdb2 {label}: {file_entry['fileName']} is {size} bytes, the influx "
                                    f"manifest says {file_entry['size']}")
                with reader.open(relative) as plain:
                    if label.startswith("shard"):
                        with tarfile.open(fileobj=plain, mode="r|") as archive:
                            for _ in archive:
                                pass
                    elif label == "sql":
                        if plain.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                            problems.append(f"influxdb2 sql: {file_entry['fileName']} is not a SQLite database")
                        _count(plain)
                    else:
                        _count(plain)
            except (OSError, ValueError, tarfile.TarError) as exc:
                problems.append(f"influxdb2 {label}: {file_entry['fileName']}: {exc}")
        return problems

    # --------------------------------------------------------------------------------------- restore
    def restore_full(self, reader: StoreReader, scratch: Path) -> dict[str, Any]:
        """Replace ALL metadata and data on the server with the set's (what `influx restore --full` does)."""
        _, manifest = self.read_manifest(reader)
        shards = [shard for bucket in manifest["buckets"] for shard in _restorable_shards(bucket)]
        with reader.as_local_file(self._relative(manifest["kv"]), scratch, decompress=False) as kv_path, \
                open(kv_path, "rb") as body:
            log.info("restoring the KV store (users, tokens, orgs, buckets); the server deletes every shard now")
            answer = self._call("restore KV snapshot", lambda: self.restore_service.post_restore_kv(
                body, content_encoding="gzip"))
        token = getattr(answer, "token", None)
        # Like `influx restore` (influx-cli clients/restore/restore.go): InfluxDB 2.7 answers the restored KV's
        # operator token, and only a token that differs from the one in use means the set came from another
        # install (or the token was rotated since): then every token in .env stops working. InfluxDB 2.9 hashes
        # tokens (--use-hashed-tokens, on by default) and answers "": the restored store accepts only its own
        # tokens, so the calls below go on with INFLUXDB2_TOKEN, which must be one of the set's install.
        changed = bool(token) and f"Token {token}" != self.api.default_headers.get("Authorization")
        if changed:
            self.api.default_headers["Authorization"] = f"Token {token}"
            log.warning("the restored KV store holds another operator token than INFLUXDB2_TOKEN: this set comes "
                        "from another install (or the token was rotated since). Every service's InfluxDB 2 token "
                        "in .env (INFLUXDB2_ADMIN_TOKEN) must be set to the restored one before the stack can "
                        "reach InfluxDB 2 again; see README, 'Back up and restore'")
        restored = 0
        try:
            if manifest.get("sql"):
                with reader.as_local_file(self._relative(manifest["sql"]), scratch, decompress=False) as sql_path:
                    log.info("restoring the SQL store (notebooks, annotations)")
                    self._upload("restore SQL snapshot", sql_path, lambda body: self.restore_service.post_restore_sql(
                        body, content_encoding="gzip"))
            for shard in shards:
                self._restore_shard(reader, scratch, shard, int(shard["id"]))
                restored += 1
        except InfluxDB2Error as exc:
            reason = str(exc)
            if "401" in reason:
                reason += (". The set's KV store does not accept INFLUXDB2_TOKEN: the set comes from another "
                           "install, and InfluxDB 2.9 hashes tokens, so the restore cannot learn the set's operator "
                           "token. Set INFLUXDB2_ADMIN_TOKEN in .env to that install's operator token (kept with "
                           "its .env) and run the restore again")
            raise RestoreStopped(f"{reason} (the KV store is the set's; {restored} of {len(shards)} shards are "
                                 "restored, the server's own shards are deleted)", restored=restored,
                                 total=len(shards)) from exc
        return {"mode": "full", "buckets": [bucket["bucketName"] for bucket in manifest["buckets"]],
                "shards": restored, "operator_token_changed": changed}

    def restore_bucket(self, reader: StoreReader, scratch: Path, bucket_name: str,
                       new_name: str | None = None, org: str | None = None) -> dict[str, Any]:
        """Restore one bucket of the set as a NEW bucket (`new_name`, default the original name)."""
        _, manifest = self.read_manifest(reader)
        matches = [bucket for bucket in manifest["buckets"] if bucket["bucketName"] == bucket_name]
        if not matches:
            names = ", ".join(sorted(bucket["bucketName"] for bucket in manifest["buckets"])) or "none"
            raise InfluxDB2Error(f"bucket {bucket_name!r} is not in this set (it has: {names})")
        if bucket_name.startswith("_"):
            raise InfluxDB2Error(f"{bucket_name!r} is an internal bucket; only a full restore brings it back")
        bucket = matches[-1]
        org_name = org or bucket["organizationName"]
        org_id = self._org_id(org_name)
        target = new_name or bucket_name
        request = _bucket_request(bucket, org_id, org_name, target)
        log.info("restoring bucket %s as %s in org %s", bucket_name, target, org_name)
        mapping = self._call(f"create bucket {target!r}",
                             lambda: self.restore_service.post_restore_bucket_metadata(request))
        new_ids = {int(item.old_id): int(item.new_id) for item in (mapping.shard_mappings or [])}
        restored = 0
        for shard in _restorable_shards(bucket):
            if int(shard["id"]) not in new_ids:
                log.warning("server did not map shard %s of %s; skipped", shard["id"], bucket_name)
                continue
            self._restore_shard(reader, scratch, shard, new_ids[int(shard["id"])])
            restored += 1
        return {"mode": "bucket", "bucket": bucket_name, "restored_as": target, "bucket_id": mapping.id,
                "shards": restored}

    def _restore_shard(self, reader: StoreReader, scratch: Path, shard: dict[str, Any], target_id: int) -> None:
        with reader.as_local_file(self._relative(shard), scratch, decompress=False) as path:
            log.info("restoring TSM snapshot of shard %s into shard %d", shard["id"], target_id)
            self._upload(f"restore shard {target_id}", path, lambda body: self.restore_service.post_restore_shard_id(
                str(target_id), body, content_encoding="gzip"))

    def _upload(self, what: str, path: Path, send: Callable[[BinaryIO], Any]) -> Any:
        """Send a file as a request body, from its first byte on every attempt; retried like downloads."""
        def attempt() -> Any:
            with open(path, "rb") as body:
                return send(body)

        try:
            return self._with_retry(what, attempt)
        except RetryableError as exc:
            raise InfluxDB2Error(f"{exc} (gave up after {self.retry.attempts} attempts)") from exc
        except ApiException as exc:
            raise InfluxDB2Error(f"{what} failed: {describe(exc)}") from exc

    def _org_id(self, name: str) -> str:
        organizations = OrganizationsApi(self.client)
        try:
            found = organizations.find_organizations(org=name)
        except ApiException as exc:
            if exc.status != 404:
                raise InfluxDB2Error(f"looking up organization {name!r} failed: {describe(exc)}") from exc
            found = []
        if found:
            return found[0].id
        log.info("organization %s does not exist; creating it", name)
        return organizations.create_organization(name=name).id

    @staticmethod
    def _call(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            raise InfluxDB2Error(f"{what} failed: {describe(exc)}") from exc


def _restorable_shards(bucket: dict[str, Any]) -> list[dict[str, Any]]:
    """A bucket entry's shards a restore can upload: none of a shard group marked deleted, for which the server
    creates no shard (storage/engine.go RestoreKVStore and RestoreBucket skip `sgi.Deleted()`, v2.7.12 and
    v2.9.1), so an upload would fail with 500 ("shard N doesn't exist on this server", tsdb/store.go)."""
    shards = []
    for policy in bucket["retentionPolicies"]:
        for group in policy["shardGroups"]:
            if group.get("deletedAt") is not None:
                if group["shards"]:
                    log.info("bucket %s: shard group %s was deleted (at %s); its shard(s) %s are not restored",
                             bucket["bucketName"], group["id"], group["deletedAt"],
                             ", ".join(str(shard["id"]) for shard in group["shards"]))
                continue
            shards += group["shards"]
    return shards


def _bucket_request(bucket: dict[str, Any], org_id: str, org_name: str, new_name: str) -> dict[str, Any]:
    """The manifest entry as the restore API's BucketMetadataManifest (file details dropped)."""
    body = {"organizationID": org_id, "organizationName": org_name, "bucketID": bucket["bucketID"],
            "bucketName": new_name, "defaultRetentionPolicy": bucket["defaultRetentionPolicy"],
            "retentionPolicies": []}
    if bucket.get("description") is not None:
        body["description"] = bucket["description"]
    for policy in bucket["retentionPolicies"]:
        body["retentionPolicies"].append({
            "name": policy["name"], "replicaN": policy["replicaN"], "duration": policy["duration"],
            "shardGroupDuration": policy["shardGroupDuration"], "subscriptions": policy.get("subscriptions", []),
            "shardGroups": [{key: group[key] for key in ("id", "startTime", "endTime", "deletedAt", "truncatedAt")
                             if group.get(key) is not None}
                            | {"shards": [{"id": shard["id"], "shardOwners": shard.get("shardOwners", [])}
                                          for shard in group["shards"]]}
                            for group in policy["shardGroups"]]})
    return body


def _count(stream: BinaryIO | io.IOBase) -> int:
    total = 0
    while block := stream.read(COPY_BUFFER):
        total += len(block)
    return total
