"""Off-host copies of backup sets in an S3-compatible bucket (AWS S3, Backblaze B2, Cloudflare R2, Garage,
SeaweedFS, MinIO), so a set outlives the disk it was written on.

Why boto3 (with botocore and s3transfer): it is the S3 client every provider above documents and tests against,
signs requests (SigV4) itself, retries throttling and 5xx answers (botocore's "standard" retry mode), and moves
big files as multipart uploads and ranged downloads (s3transfer's managed transfer) without holding them in
memory. obstore was the other candidate (smaller, Rust's object_store underneath, the same crate InfluxDB 3
uses), but it is younger and its error types carry less of the server's answer, which the messages below need.

Layout: `<prefix>/<set>/<path>` for every file the set's manifest lists, then `<prefix>/<set>/manifest.json`
LAST. A set is in the bucket when, and only when, its manifest is: a run that stops mid-upload leaves files
without a manifest, which `list`, `verify`, `restore` and retention never take for a set, and which the next run
completes. Every object carries the SHA-256 the manifest records for its bytes (metadata `sha256`), so a rerun
skips what is already there with the same size and checksum (an ETag is no checksum once an upload is multipart)
and uploads the rest: uploads resume file by file. Files are uploaded as they are in the set, already compressed
and, with BACKUP_ENCRYPTION_KEY, encrypted: nothing leaves the machine unencrypted but the manifest (names, sizes,
checksums, salted credential fingerprints; never a secret).

Every failure is a RemoteError whose message names the .env setting to look at (wrong key, missing bucket,
endpoint down, bucket full); the caller keeps the local set and the next run catches up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from backup.archive import sha256_file
from backup.manifest import MANIFEST_NAME, SetManifest, iso, utc_now, write_json_atomic
from backup.sets import SET_NAME, BackupSet, SetStore

__all__ = ["REMOTE_NAME", "Remote", "RemoteConfig", "RemoteError", "RemoteSet", "UploadReport"]

log = logging.getLogger("backup.remote")

REMOTE_NAME = "remote.json"  # in a local set: where and when it was uploaded
MiB = 1024 * 1024
# Errors that mean "no room": MinIO's XMinioStorageFull (HTTP 507) and the generic 507 InsufficientStorage,
# QuotaExceeded (bucket quotas: Ceph RGW, SeaweedFS), EntityTooLarge (a file over a provider's object limit).
NO_SPACE = frozenset({"XMinioStorageFull", "InsufficientStorage", "507", "QuotaExceeded", "EntityTooLarge",
                      "StorageFull"})


class RemoteError(RuntimeError):
    """The bucket could not be used; the message names the setting to check and what happened."""


@dataclass(frozen=True)
class RemoteConfig:
    bucket: str
    prefix: str = "influx-stack"
    endpoint: str | None = None  # None: AWS S3 itself
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: str = "auto"  # auto: path-style with an endpoint (self-hosted servers), virtual on AWS
    timeout: float = 120.0
    multipart_threshold: int = 64 * MiB
    multipart_chunksize: int = 64 * MiB

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}"
        return f"{where} at {self.endpoint}" if self.endpoint else where


@dataclass
class RemoteSet:
    name: str
    manifest: SetManifest


@dataclass
class UploadReport:
    uploaded: int = 0
    skipped: int = 0
    bytes: int = 0
    keys: list[str] = field(default_factory=list)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or exc.response.get("ResponseMetadata", {})
               .get("HTTPStatusCode") or "")


def _client_error(exc: BaseException) -> ClientError | BotoCoreError | None:
    """The botocore error behind `exc` (boto3's transfer errors wrap it)."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ClientError | BotoCoreError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Remote:
    """One bucket and prefix. `client` is injectable for tests; otherwise built from the config."""

    def __init__(self, config: RemoteConfig, client=None):
        self.config = config
        style = config.addressing_style
        if style == "auto":
            style = "path" if config.endpoint else "virtual"
        self.client = client or boto3.session.Session().client(
            "s3", endpoint_url=config.endpoint, region_name=config.region,
            aws_access_key_id=config.access_key_id, aws_secret_access_key=config.secret_access_key,
            config=Config(
                s3={"addressing_style": style}, connect_timeout=10, read_timeout=config.timeout,
                retries={"mode": "standard", "max_attempts": 4},
                # Checksums only where S3 requires one: several S3-compatible servers refused the CRC32 trailers
                # boto3 sends by default since 1.36; each file's SHA-256 is checked against the manifest anyway.
                request_checksum_calculation="when_required", response_checksum_validation="when_required"))
        self.transfer = TransferConfig(multipart_threshold=config.multipart_threshold,
                                       multipart_chunksize=config.multipart_chunksize, max_concurrency=4)

    # ------------------------------------------------------------------------------------------- errors
    def explain(self, exc: BaseException, what: str) -> RemoteError:
        """A RemoteError naming the setting behind `exc` (never a secret)."""
        cfg = self.config
        cause = _client_error(exc)
        if isinstance(cause, EndpointConnectionError) or (
                isinstance(cause, BotoCoreError) and "connect" in type(cause).__name__.lower()):
            return RemoteError(f"BACKUP_S3_ENDPOINT: cannot reach {cfg.endpoint or 'AWS S3'} to {what} ({cause})")
        if isinstance(cause, ClientError):
            code = _code(cause)
            message = cause.response.get("Error", {}).get("Message") or ""
            said = f"{code}{': ' + message if message else ''}"
            if code in ("InvalidAccessKeyId", "InvalidAccessKeyID", "InvalidToken"):
                return RemoteError(f"BACKUP_S3_ACCESS_KEY_ID: {cfg.endpoint or 'AWS S3'} does not know this access "
                                   f"key ({said}); {what} failed")
            if code in ("SignatureDoesNotMatch", "AuthorizationHeaderMalformed"):
                return RemoteError(f"BACKUP_S3_SECRET_ACCESS_KEY: the secret key does not match the access key "
                                   f"(or BACKUP_S3_REGION is not the bucket's region) ({said}); {what} failed")
            if code in ("NoSuchBucket", "404") and "Key" not in cause.response.get("Error", {}):
                return RemoteError(f"BACKUP_S3_BUCKET: bucket {cfg.bucket!r} does not exist at "
                                   f"{cfg.endpoint or 'AWS S3'} ({said}); create it, or fix the name; {what} failed")
            if code in ("AccessDenied", "403", "AllAccessDisabled"):
                return RemoteError(f"BACKUP_S3_ACCESS_KEY_ID: the key may not {what} in bucket {cfg.bucket!r} "
                                   f"({said}); it needs list, read, write and delete on {cfg.prefix}/")
            if code in NO_SPACE:
                return RemoteError(f"BACKUP_S3_BUCKET: bucket {cfg.bucket!r} has no room for this set ({said}); "
                                   f"free space or raise its quota; {what} failed")
            return RemoteError(f"BACKUP_S3_ENDPOINT: {cfg.describe()} answered {said} to {what}")
        if cause is not None:
            return RemoteError(f"BACKUP_S3_ENDPOINT: {what} at {cfg.describe()} failed: {cause}")
        return RemoteError(f"{what} at {cfg.describe()} failed: {exc}")

    def call(self, what: str, fn: Callable, *args, **kwargs):
        """`fn(*args, **kwargs)`, its botocore error turned into a RemoteError naming the setting."""
        try:
            return fn(*args, **kwargs)
        except (ClientError, BotoCoreError, OSError) as exc:
            if isinstance(exc, OSError) and _client_error(exc) is None:
                raise
            raise self.explain(exc, what) from exc
        except Exception as exc:  # boto3's S3UploadFailedError and friends wrap the botocore error
            if _client_error(exc) is None:
                raise
            raise self.explain(exc, what) from exc

    # ----------------------------------------------------------------------------------------- reading
    def key(self, name: str, relative: str = "") -> str:
        return f"{self.config.prefix}/{name}/{relative}" if relative else f"{self.config.prefix}/{name}/"

    def check(self) -> None:
        """Fail with the setting to fix unless the bucket can be listed with these credentials."""
        self.call("list the bucket", self.client.list_objects_v2, Bucket=self.config.bucket,
                   Prefix=f"{self.config.prefix}/", MaxKeys=1)

    def create_bucket(self) -> bool:
        """Create the bucket; False when it exists already (asked first: us-east-1 answers 200 to creating a
        bucket one owns already)."""
        try:
            self.client.head_bucket(Bucket=self.config.bucket)
            return False
        except ClientError as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise self.explain(exc, f"look for bucket {self.config.bucket}") from exc
        except BotoCoreError as exc:
            raise self.explain(exc, f"look for bucket {self.config.bucket}") from exc
        try:
            self.call(f"create bucket {self.config.bucket}", self.client.create_bucket, Bucket=self.config.bucket)
        except RemoteError as exc:
            if "BucketAlreadyOwnedByYou" in str(exc):
                return False
            raise
        return True

    def _pages(self, **kwargs) -> Iterator[dict]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            yield from paginator.paginate(Bucket=self.config.bucket, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self.explain(exc, "list the bucket") from exc

    def names(self) -> list[str]:
        """Set names with anything under the prefix (complete or not), oldest first."""
        found = []
        for page in self._pages(Prefix=f"{self.config.prefix}/", Delimiter="/"):
            for common in page.get("CommonPrefixes") or []:
                name = common["Prefix"][len(self.config.prefix) + 1:].rstrip("/")
                if SET_NAME.match(name):
                    found.append(name)
        return sorted(found)

    def objects_under(self, prefix: str, limit: int | None = None) -> list[dict]:
        """Every object whose key starts with `prefix` (a whole bucket path, not under BACKUP_S3_PREFIX)."""
        found: list[dict] = []
        for page in self._pages(Prefix=prefix):
            found.extend(page.get("Contents") or [])
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found

    def objects(self, name: str) -> dict[str, int]:
        """Key -> size of every object under a set's folder."""
        return {item["Key"]: item["Size"] for page in self._pages(Prefix=self.key(name))
                for item in page.get("Contents") or []}

    def manifest(self, name: str) -> SetManifest | None:
        """The set's manifest, None while it is not (completely) uploaded or when it is not ours."""
        try:
            answer = self.client.get_object(Bucket=self.config.bucket, Key=self.key(name, MANIFEST_NAME))
            body = json.loads(answer["Body"].read())
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise self.explain(exc, f"read {self.key(name, MANIFEST_NAME)}") from exc
        except BotoCoreError as exc:
            raise self.explain(exc, f"read {self.key(name, MANIFEST_NAME)}") from exc
        except ValueError:
            return None
        try:
            manifest = SetManifest.from_json(body)
        except (ValueError, KeyError, TypeError):
            return None  # not a manifest of this service: never listed, never deleted
        return manifest if manifest.name == name else None

    def sets(self) -> tuple[list[RemoteSet], list[str]]:
        """(complete sets in the bucket oldest first, names of incomplete uploads)."""
        complete, incomplete = [], []
        for name in self.names():
            manifest = self.manifest(name)
            if manifest is None:
                incomplete.append(name)
            else:
                complete.append(RemoteSet(name, manifest))
        return sorted(complete, key=lambda item: (item.manifest.finished, item.name)), incomplete

    # ----------------------------------------------------------------------------------------- writing
    def _present(self, key: str, size: int, sha256: str) -> bool:
        try:
            head = self.client.head_object(Bucket=self.config.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self.explain(exc, f"read {key}") from exc
        except BotoCoreError as exc:
            raise self.explain(exc, f"read {key}") from exc
        return head.get("ContentLength") == size and (head.get("Metadata") or {}).get("sha256") == sha256

    def upload(self, backup_set: BackupSet) -> UploadReport:
        """Every file of the set not yet in the bucket with the same size and SHA-256, then its manifest."""
        report = UploadReport()
        manifest = backup_set.manifest
        for entry in manifest.files:
            key = self.key(backup_set.name, entry.path)
            if self._present(key, entry.size, entry.sha256):
                report.skipped += 1
                continue
            self.call(f"upload {key}", self.client.upload_file, str(backup_set.path / entry.path),
                       self.config.bucket, key, Config=self.transfer,
                       ExtraArgs={"Metadata": {"sha256": entry.sha256, "backup-set": backup_set.name}})
            report.uploaded += 1
            report.bytes += entry.size
            report.keys.append(key)
        manifest_path = backup_set.path / MANIFEST_NAME
        size, digest = sha256_file(manifest_path)
        key = self.key(backup_set.name, MANIFEST_NAME)
        if not self._present(key, size, digest):
            self.call(f"upload {key}", self.client.upload_file, str(manifest_path), self.config.bucket, key,
                       Config=self.transfer, ExtraArgs={"Metadata": {"sha256": digest, "backup-set": backup_set.name},
                                                        "ContentType": "application/json"})
            report.uploaded += 1
            report.bytes += size
        return report

    def abort_stale_uploads(self) -> list[str]:
        """Abort multipart uploads under the prefix left by a run that died (they cost storage and never become
        objects); the caller holds the run lock, so none of them is in progress."""
        aborted = []
        try:
            answer = self.client.list_multipart_uploads(Bucket=self.config.bucket, Prefix=f"{self.config.prefix}/")
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not list unfinished multipart uploads (%s); leaving them", self.explain(exc, "list"))
            return aborted
        for upload in answer.get("Uploads") or []:
            self.call(f"abort the unfinished upload of {upload['Key']}", self.client.abort_multipart_upload,
                       Bucket=self.config.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            aborted.append(upload["Key"])
        return aborted

    def remove(self, name: str) -> int:
        """Delete a set this service wrote: its manifest first (it stops looking complete), then every object
        under its folder. Refuses a folder whose manifest is not ours."""
        if self.manifest(name) is None:
            raise RemoteError(f"{self.key(name)} holds no manifest of this service: not deleting it")
        return self._delete_folder(name, manifest_first=True)

    def remove_incomplete(self, name: str) -> int:
        """Delete what an interrupted upload left of a set that no longer exists locally: only objects this
        service marked with that set's name."""
        keys = [key for key in self.objects(name) if self._marked(key, name)]
        self.delete(keys)
        return len(keys)

    def _marked(self, key: str, name: str) -> bool:
        try:
            head = self.client.head_object(Bucket=self.config.bucket, Key=key)
        except (ClientError, BotoCoreError):
            return False
        return (head.get("Metadata") or {}).get("backup-set") == name

    def _delete_folder(self, name: str, *, manifest_first: bool) -> int:
        if manifest_first:
            self.call("delete a manifest", self.client.delete_object, Bucket=self.config.bucket,
                       Key=self.key(name, MANIFEST_NAME))
        keys = list(self.objects(name))
        self.delete(keys)
        return len(keys) + (1 if manifest_first else 0)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            if not batch:
                continue
            answer = self.call("delete objects", self.client.delete_objects, Bucket=self.config.bucket,
                                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise RemoteError(f"BACKUP_S3_ACCESS_KEY_ID: deleting {first.get('Key')} answered "
                                  f"{first.get('Code')}: {first.get('Message')} ({len(errors)} objects not deleted)")

    # ---------------------------------------------------------------------------------------- download
    def download(self, name: str, sets: SetStore) -> BackupSet:
        """The set from the bucket into the backup directory (the lock held): files first into `.partial-<name>/`
        (a file already there with the right checksum is kept, so an interrupted download resumes), each checked
        against the manifest's size and SHA-256, then the manifest, then the rename."""
        manifest = self.manifest(name)
        if manifest is None:
            raise LookupError(f"no complete set {name} in {self.config.describe()}")
        partial = sets.begin_named(name)
        try:
            for entry in manifest.files:
                target = partial.path / entry.path
                if target.is_file() and sha256_file(target) == (entry.size, entry.sha256):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                key = self.key(name, entry.path)
                self.call(f"download {key}", self.client.download_file, self.config.bucket, key, str(target),
                           Config=self.transfer)
                got = sha256_file(target)
                if got != (entry.size, entry.sha256):
                    target.unlink()
                    raise RemoteError(f"{key}: {got[0]} bytes with SHA-256 {got[1][:12]}..., the manifest says "
                                      f"{entry.size} bytes, {entry.sha256[:12]}...: the object was changed")
        except BaseException:
            log.warning("download of %s stopped; what arrived stays in %s for the next attempt", name, partial.path)
            raise
        backup_set = sets.finalize(partial, manifest)
        record_upload(backup_set, self.config)
        log.info("downloaded set %s from %s: %d files, %d bytes", name, self.config.describe(),
                 len(manifest.files), manifest.bytes)
        return backup_set


def record_upload(backup_set: BackupSet, config: RemoteConfig, moment: datetime | None = None) -> None:
    """Note in the local set that it is in the bucket (`backup list` shows it; local retention reads it)."""
    write_json_atomic(backup_set.path / REMOTE_NAME, {"target": config.describe(),
                                                       "uploaded_at": iso(moment or utc_now())})


def uploaded_to(backup_set: BackupSet, config: RemoteConfig) -> bool:
    try:
        body = json.loads((backup_set.path / REMOTE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return body.get("target") == config.describe()
