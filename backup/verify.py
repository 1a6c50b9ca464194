"""Checking a backup set: every file's size and SHA-256, then a dry run of its restore.

The dry run decodes every file completely (so a wrong key, a flipped bit in an encrypted or compressed
file, or a truncated file is caught) and runs each store's own checks: the InfluxDB 2 manifest's files and
sizes, readable shard tar streams, a SQLite SQL snapshot; an InfluxDB 3 node with its catalog, read as the
server reads it on start (WAL files contiguous after the newest snapshot's and reaching the newest one when the
backup began, every Parquet file the snapshots name present); a Grafana database that passes
`PRAGMA integrity_check` and JSON exports that parse.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from backup import grafana, influxdb3
from backup.archive import ArchiveError, digest_decoded, sha256_file
from backup.influxdb2 import InfluxDB2, InfluxDB2Error
from backup.manifest import MANIFEST_NAME, SetManifest
from backup.setfiles import StoreReader
from backup.sets import RUN_MARKER, VERIFICATION_NAME

__all__ = ["verify_directory"]

# remote.json: where the set was uploaded (backup/remote.py); written after the manifest, never part of it.
_OWN_FILES = {MANIFEST_NAME, VERIFICATION_NAME, RUN_MARKER, "remote.json"}


def verify_directory(path: Path, manifest: SetManifest, key: bytes | None) -> list[str]:
    """Every problem found in the set at `path` (empty when it is sound)."""
    problems = []
    listed = {entry.path for entry in manifest.files}
    on_disk = {item.relative_to(path).as_posix() for item in path.rglob("*") if item.is_file()}
    for extra in sorted(on_disk - listed - _OWN_FILES):
        problems.append(f"{extra}: on disk but not in the manifest")
    decodable = []
    for entry in manifest.files:
        file_path = path / entry.path
        if not file_path.is_file():
            problems.append(f"{entry.path}: missing")
            continue
        size, digest = sha256_file(file_path)
        if size != entry.size:
            problems.append(f"{entry.path}: {size} bytes, the manifest says {entry.size}")
        elif digest != entry.sha256:
            problems.append(f"{entry.path}: SHA-256 does not match the manifest (the file changed or is corrupt)")
        else:
            decodable.append(entry)
    if manifest.encrypted and key is None:
        problems.append("the set is encrypted and BACKUP_ENCRYPTION_KEY is not set: contents not checked")
        return problems
    for entry in decodable:
        try:
            plain_size, plain_digest = digest_decoded(path / entry.path, key)
        except (ArchiveError, OSError) as exc:
            problems.append(f"{entry.path}: {exc}")
            continue
        if (plain_size, plain_digest) != (entry.plain_size, entry.plain_sha256):
            problems.append(f"{entry.path}: decoded content does not match the manifest")
    if problems:
        return problems
    scratch = Path(tempfile.mkdtemp(prefix=".verify-", dir=path.parent))
    try:
        problems += _dry_run(path, manifest, key, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return problems


def _dry_run(path: Path, manifest: SetManifest, key: bytes | None, scratch: Path) -> list[str]:
    problems = []
    for store, result in manifest.stores.items():
        if not result.ok:
            continue
        reader = StoreReader(path, store, manifest.files_of(store), key)
        try:
            if store == "influxdb2":
                problems += InfluxDB2.check(reader)
            elif store == "influxdb3":
                problems += influxdb3.check(reader, result.details)
            elif store == "grafana":
                problems += grafana.check(reader, scratch)
        except (InfluxDB2Error, ArchiveError, OSError, ValueError, KeyError) as exc:
            problems.append(f"{store}: restore dry run failed: {exc}")
    return problems
