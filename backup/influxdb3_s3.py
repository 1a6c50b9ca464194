"""InfluxDB 3 Core on object storage (INFLUXDB3_OBJECT_STORE=s3): its backup and restore through the bucket.

Core keeps the same tree in the bucket as on disk, under `<node-id>/` (wal/, snapshots/, dbs/, catalog/...). A
backup downloads it into the set's scratch folder in the order backup/influxdb3.py copies a live folder in, for the
same reason: `wal/` is listed and fetched first, then the indexes over snapshots, `snapshots/`, `dbs/`, and the
catalog last, each folder listed only when it is reached. A WAL object a snapshot deletes meanwhile is answered
404 and left out: the snapshot that deleted it is listed after it. The downloaded tree is then copied into the
set by the file code, which checks it as the server would read it (every WAL file after the newest snapshot's,
every Parquet file the snapshots name), so a set of a bucket guarantees what a set of a folder does.

A restore (server stopped) writes the set's tree into a staging folder exactly as for a folder, then uploads it
over `<node-id>/` and deletes every other object under it. Unlike a folder this is not atomic: a restore that
stops half-way leaves a mix, which the pre-restore set (`make restore` takes one) undoes.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import ClientError

from backup import influxdb3
from backup.remote import Remote, RemoteConfig
from backup.setfiles import StoreReader, StoreWriter

__all__ = ["backup_bucket_node", "holds_node", "restore_bucket_node"]

log = logging.getLogger("backup.influxdb3")


def _tops(remote: Remote, node_id: str) -> dict[str, str]:
    """Top-level entry of the node -> the key prefix that holds exactly it: `<node>/<folder>/` for a folder (so
    `catalog` never takes in `catalogs/`), the key itself for an object."""
    found: dict[str, str] = {}
    for page in remote.client.get_paginator("list_objects_v2").paginate(
            Bucket=remote.config.bucket, Prefix=f"{node_id}/", Delimiter="/"):
        found.update((item["Prefix"][len(node_id) + 1:].rstrip("/"), item["Prefix"])
                     for item in page.get("CommonPrefixes") or [])
        found.update((item["Key"][len(node_id) + 1:], item["Key"]) for item in page.get("Contents") or [])
    return found


def mirror_node(remote: Remote, node_id: str, root: Path) -> dict:
    """Download `<node_id>/` into `root/<node_id>/` in the copy order; objects gone by the time they are fetched
    are counted, not an error (see the module docstring)."""
    try:
        tops = _tops(remote, node_id)
    except ClientError as exc:
        raise remote.explain(exc, f"list {node_id}/") from exc
    vanished = downloaded = 0
    for top in influxdb3._ordered(set(tops) - influxdb3.EXCLUDED):
        prefix = tops[top]
        keys = [item["Key"] for item in remote.objects_under(prefix) if prefix.endswith("/") or item["Key"] == prefix]
        for key in sorted(keys):
            if influxdb3.IN_FLIGHT.search(key):
                continue
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                remote.client.download_file(remote.config.bucket, key, str(target), Config=remote.transfer)
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                    vanished += 1
                    continue
                raise remote.explain(exc, f"download {key}") from exc
            downloaded += 1
    return {"objects": downloaded, "vanished": vanished}


def backup_bucket_node(config: RemoteConfig, node_id: str, writer: StoreWriter, scratch: Path) -> dict:
    """The set's copy of Core's node in its bucket (see the module docstring)."""
    remote = Remote(config)
    remote.check()
    mirror = scratch / "influxdb3-bucket"
    try:
        fetched = mirror_node(remote, node_id, mirror)
        details = influxdb3.backup_node(mirror, node_id, writer, settle_timeout=0)
    finally:
        shutil.rmtree(mirror, ignore_errors=True)
    details["object_store"] = {"bucket": config.bucket, "endpoint": config.endpoint, **fetched}
    return details


def holds_node(config: RemoteConfig, node_id: str) -> bool:
    """Whether the bucket holds anything of the node (a pre-restore set is only worth taking then)."""
    remote = Remote(config)
    return bool(remote.objects_under(f"{node_id}/", limit=1))


def restore_bucket_node(reader: StoreReader, config: RemoteConfig, node_id: str, scratch: Path, *,
                        server_running: Callable[[], bool]) -> dict:
    """Replace `<node_id>/` in the bucket with the set's copy (the server stopped)."""
    remote = Remote(config)
    remote.check()
    staging = scratch / "influxdb3-bucket"
    try:
        result = influxdb3.restore_node(reader, staging, node_id, server_running=server_running)
        local = staging / node_id
        wanted = {f"{node_id}/{path.relative_to(local).as_posix()}": path
                  for path in sorted(local.rglob("*")) if path.is_file()}
        for key, path in wanted.items():
            remote.call(f"upload {key}", remote.client.upload_file, str(path), config.bucket, key,
                        Config=remote.transfer)
        extra = [item["Key"] for item in remote.objects_under(f"{node_id}/") if item["Key"] not in wanted]
        remote.delete(extra)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("restored node %s into %s: %d objects written, %d others deleted", node_id, config.describe(),
             len(wanted), len(extra))
    return {**result, "bucket": config.bucket, "uploaded": len(wanted), "deleted": len(extra)}
