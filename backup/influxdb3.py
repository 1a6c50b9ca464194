"""InfluxDB 3 Core: a file-level copy of the object store in the order InfluxData documents, and its restore.

InfluxDB 3 Core has no backup API. Its "Back up and restore" page (docs.influxdata.com/influxdb3/core/admin/
backup-restore/) says to copy `<data-dir>/<node-id>/` in this order, so every file a copied catalog or
snapshot refers to was copied before it: snapshots, dbs, wal, the catalog (`catalog/` since 3.4, `catalogs/`
before), and `_catalog_checkpoint` (pre-3.4 layouts only); `table-snapshots/` is regenerated on restart and
left out. Entries the page does not name (e.g. 3.x's `db-indices/`, `table-index-conversion-completed`) are
indexes over the data, so they are copied first, like snapshots. Restore: the server must be stopped; files
are written in the reverse order into a staging directory beside the node directory, which then replaces
it with two renames, so an interrupted restore leaves the old data in place.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from backup.manifest import fsync_dir
from backup.setfiles import StoreReader, StoreWriter

__all__ = ["DOCUMENTED_ORDER", "InfluxDB3Error", "backup_node", "check", "copy_order", "restore_node",
           "server_answers"]

log = logging.getLogger("backup.influxdb3")

DOCUMENTED_ORDER = ("snapshots", "dbs", "wal", "catalog", "catalogs", "_catalog_checkpoint")
EXCLUDED = frozenset({"table-snapshots"})
CATALOG_ENTRIES = ("catalog", "catalogs", "_catalog_checkpoint")
# object_store's LocalFileSystem writes `<path>#<n>` and renames it into place: an upload still in flight.
IN_FLIGHT = re.compile(r"#\d+$")


class InfluxDB3Error(RuntimeError):
    """The data directory is not what the server lays out, or the server is running during a restore."""


def copy_order(node_dir: Path) -> list[str]:
    """Top-level entries of the node directory in the order they must be copied."""
    present = {entry.name for entry in node_dir.iterdir()}
    extras = sorted(present - set(DOCUMENTED_ORDER) - EXCLUDED)
    return extras + [name for name in DOCUMENTED_ORDER if name in present]


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def backup_node(data_dir: Path, node_id: str, writer: StoreWriter) -> dict:
    """Copy `<data_dir>/<node_id>/` into the set in the documented order. Files the server deletes while we
    copy (WAL files folded into a snapshot) are noted, not fatal."""
    node_dir = data_dir / node_id
    if not node_dir.is_dir():
        nodes = sorted(entry.name for entry in data_dir.iterdir() if entry.is_dir()) if data_dir.is_dir() else []
        raise InfluxDB3Error(f"no InfluxDB 3 data for node {node_id!r} in {data_dir} (node directories there: "
                             f"{', '.join(nodes) or 'none'}); check INFLUXDB3_NODE_ID")
    order = copy_order(node_dir)
    if not any(name in order for name in CATALOG_ENTRIES):
        raise InfluxDB3Error(f"{node_dir} has no catalog (catalog/, catalogs/ or _catalog_checkpoint): "
                             "it is not an InfluxDB 3 object store, or the server never started")
    vanished, in_flight, counts = [], 0, {}
    for top in order:
        counts[top] = 0
        for path in _walk(node_dir / top):
            if IN_FLIGHT.search(path.name):
                in_flight += 1
                continue
            relative = path.relative_to(data_dir).as_posix()
            try:
                writer.add_file(relative, path)
            except FileNotFoundError:
                vanished.append(relative)
                continue
            counts[top] += 1
    if vanished:
        log.info("%d file(s) were deleted by the server while copying (normal for WAL files): %s",
                 len(vanished), ", ".join(vanished[:5]))
    return {"node_id": node_id, "order": order, "files_per_entry": counts, "vanished": vanished,
            "in_flight_skipped": in_flight, "excluded": sorted(EXCLUDED & {p.name for p in node_dir.iterdir()})}


def _node_of(reader: StoreReader) -> str:
    nodes = {name.split("/", 1)[0] for name in reader.names()}
    if len(nodes) != 1:
        raise InfluxDB3Error(f"expected the files of one node in the set, found {sorted(nodes) or 'none'}")
    return nodes.pop()


def check(reader: StoreReader) -> list[str]:
    """Dry run of a restore: one node, a catalog present, every file decodes (done by the caller)."""
    try:
        node = _node_of(reader)
    except InfluxDB3Error as exc:
        return [f"influxdb3: {exc}"]
    tops = {name.split("/")[1] for name in reader.names() if name.count("/") >= 1}
    if not tops & set(CATALOG_ENTRIES):
        return [f"influxdb3: node {node} has no catalog in the set"]
    return []


def server_answers(url: str, timeout: float = 3.0) -> bool:
    """True when an InfluxDB 3 server answers at `url` (then its files must not be replaced)."""
    try:
        requests.get(f"{url}/ping", timeout=timeout)
    except requests.RequestException:
        return False
    return True


def restore_node(reader: StoreReader, data_dir: Path, node_id: str, *, server_running: Callable[[], bool]) -> dict:
    """Replace `<data_dir>/<node_id>/` with the set's copy. The server must be stopped."""
    set_node = _node_of(reader)
    if set_node != node_id:
        raise InfluxDB3Error(f"the set holds node {set_node!r} but INFLUXDB3_NODE_ID is {node_id!r}; object-store "
                             "paths and the catalog are tied to the node id, so restore into the same node id")
    if server_running():
        raise InfluxDB3Error("InfluxDB 3 is running: stop it first (docker compose stop influxdb3 ingest), "
                             "its files must not change under it")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    staging = data_dir / f".{node_id}.restoring-{stamp}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    by_top: dict[str, list[str]] = {}
    for name in reader.names():
        by_top.setdefault(name.split("/")[1], []).append(name)
    order = [name for name in reversed(DOCUMENTED_ORDER) if name in by_top]
    order += sorted(set(by_top) - set(order), reverse=True)
    node_dir = data_dir / node_id
    previous = data_dir / f".{node_id}.pre-restore-{stamp}"
    try:
        for top in order:
            for name in sorted(by_top[top]):
                target = staging / name.split("/", 1)[1]
                reader.copy_to(name, target)
                with open(target, "rb") as handle:
                    os.fsync(handle.fileno())
        if node_dir.exists():
            os.rename(node_dir, previous)
        os.rename(staging, node_dir)
        fsync_dir(data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if previous.exists() and not node_dir.exists():
            os.rename(previous, node_dir)  # put the old data back
        raise
    shutil.rmtree(previous, ignore_errors=True)
    return {"node_id": node_id, "order": order, "files": sum(len(names) for names in by_top.values())}
