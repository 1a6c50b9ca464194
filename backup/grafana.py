"""Grafana: its SQLite database through SQLite's online backup API, plus dashboards and datasources as JSON.

A raw copy of `grafana.db` taken while Grafana writes can be torn; `sqlite3.Connection.backup` copies a
consistent snapshot page by page while Grafana keeps working. The JSON export (search API, then
`/api/dashboards/uid/<uid>`, and `/api/datasources`) is the portable part: readable, diffable, importable
into another Grafana. Restore replaces the database file while Grafana is stopped. Every HTTP call goes through
grafana-client (the routes are Grafana's pkg/api/api.go: GET /api/search, /api/dashboards/uid/:uid,
/api/datasources; /api/health in pkg/api/http_server.go).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import niquests
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaException

from backup.manifest import fsync_dir
from backup.setfiles import StoreReader, StoreWriter

__all__ = ["DB_NAME", "GrafanaAPI", "GrafanaError", "check", "export_api", "restore_database",
           "snapshot_database"]

log = logging.getLogger("backup.grafana")

DB_NAME = "grafana.db"
# All pages in one step, under one read transaction: a stepwise copy restarts whenever Grafana writes between
# steps and can chase a busy database forever; one step holds the read lock only for the copy (milliseconds
# for a typical grafana.db) and Grafana's writes wait that long.
PAGE_STEP = -1
# How long `answers()` waits: it only asks whether something listens.
PROBE_TIMEOUT = 3.0
T = TypeVar("T")


class GrafanaError(RuntimeError):
    """Grafana's database or API could not be read, or a restore is unsafe."""


def _integrity(path: Path) -> str:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def snapshot_database(db_path: Path, target: Path) -> dict[str, Any]:
    """A consistent copy of the live database at `target`, integrity-checked."""
    if not db_path.is_file():
        raise GrafanaError(f"Grafana database {db_path} not found (is the grafana-data volume mounted?)")
    try:
        source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise GrafanaError(f"cannot open {db_path} read-only: {exc}") from exc
    destination = sqlite3.connect(target)
    try:
        source.backup(destination, pages=PAGE_STEP)
        tables = destination.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        dashboards = None
        if destination.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='dashboard'").fetchone():
            dashboards = destination.execute("SELECT count(*) FROM dashboard").fetchone()[0]
    except sqlite3.Error as exc:
        raise GrafanaError(f"SQLite online backup of {db_path} failed: {exc}") from exc
    finally:
        destination.close()
        source.close()
    verdict = _integrity(target)
    if verdict != "ok":
        raise GrafanaError(f"the copy of {db_path} fails PRAGMA integrity_check: {verdict}")
    return {"tables": tables, "dashboards_in_db": dashboards}


class GrafanaAPI:
    """The few Grafana HTTP endpoints the backup reads, through grafana-client with basic auth."""

    def __init__(self, url: str, user: str, password: str, *, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.api = GrafanaApi.from_url(self.url, credential=(user, password), timeout=timeout)
        self._probe = GrafanaApi.from_url(self.url, credential=None, timeout=PROBE_TIMEOUT)

    @staticmethod
    def _call(what: str, call: Callable[[], T]) -> T:
        """grafana-client's answer, or GrafanaError naming the request and Grafana's status or the network error."""
        try:
            return call()
        except GrafanaException as exc:
            if not exc.status_code:  # a timeout
                raise GrafanaError(f"{what} failed: {exc.message}") from exc
            raise GrafanaError(f"{what} answered HTTP {exc.status_code}: {str(exc.response)[:200]}") from exc
        except niquests.JSONDecodeError as exc:
            raise GrafanaError(f"{what} did not answer JSON") from exc
        except niquests.RequestException as exc:
            raise GrafanaError(f"{what} failed: {exc}") from exc

    def version(self) -> str:
        health = self._call("GET /api/health", lambda: self.api.client.GET("/health"))
        return str(health.get("version", "unknown"))

    def dashboard_uids(self, page_size: int = 1000) -> list[str]:
        uids, page = [], 1
        while True:
            hits = self._call("GET /api/search", lambda page=page: self.api.search.search_dashboards(
                type_="dash-db", limit=page_size, page=page))
            uids += [hit["uid"] for hit in hits if hit.get("uid")]
            if len(hits) < page_size:
                return uids
            page += 1

    def dashboard(self, uid: str) -> dict[str, Any]:
        return self._call(f"GET /api/dashboards/uid/{uid}", lambda: self.api.dashboard.get_dashboard(uid))

    def datasources(self) -> list[dict[str, Any]]:
        return self._call("GET /api/datasources", self.api.datasource.list_datasources)

    def answers(self) -> bool:
        """Whether a Grafana listens at the URL (any HTTP answer to /api/health, even an error, means yes)."""
        try:
            self._probe.client.GET("/health")
        except GrafanaException as exc:
            return bool(exc.status_code)
        except (niquests.RequestException, ValueError):
            return False
        return True


def export_api(api: GrafanaAPI, writer: StoreWriter) -> dict[str, Any]:
    """Every dashboard (with its meta: folder, version) and the datasource list, one JSON file each."""
    uids = api.dashboard_uids()
    for uid in uids:
        body = json.dumps(api.dashboard(uid), indent=2, sort_keys=True).encode()
        writer.add_bytes(f"dashboards/{uid}.json", body)
    datasources = api.datasources()
    writer.add_bytes("datasources.json", json.dumps(datasources, indent=2, sort_keys=True).encode())
    return {"dashboards": len(uids), "datasources": len(datasources)}


def check(reader: StoreReader, scratch: Path) -> list[str]:
    """Dry run of a restore: the database copy is a sound SQLite file; every JSON export parses."""
    problems = []
    if DB_NAME not in reader.names():
        problems.append("grafana: the set has no grafana.db")
    else:
        with reader.as_local_file(DB_NAME, scratch) as path:
            try:
                verdict = _integrity(path)
            except sqlite3.Error as exc:
                verdict = str(exc)
            if verdict != "ok":
                problems.append(f"grafana: grafana.db fails PRAGMA integrity_check: {verdict}")
    for name in reader.names():
        if name.endswith(".json"):
            try:
                json.loads(reader.read_bytes(name))
            except ValueError as exc:
                problems.append(f"grafana: {name} is not valid JSON: {exc}")
    return problems


def restore_database(reader: StoreReader, db_path: Path, *, grafana_running: bool) -> dict[str, Any]:
    """Replace Grafana's database with the set's copy (Grafana must be stopped)."""
    if grafana_running:
        raise GrafanaError("Grafana is running: stop it first (docker compose stop grafana); its database must "
                           "not be replaced under it")
    staged = db_path.with_name(f".{DB_NAME}.restoring-{os.getpid()}")
    staged.unlink(missing_ok=True)
    try:
        reader.copy_to(DB_NAME, staged)
        verdict = _integrity(staged)
        if verdict != "ok":
            raise GrafanaError(f"the restored grafana.db fails PRAGMA integrity_check: {verdict}")
        _match_permissions(staged, db_path)
        with open(staged, "rb") as handle:
            os.fsync(handle.fileno())
        # A journal or WAL left by the old database would be replayed into the new one: remove them first.
        for suffix in ("-journal", "-wal", "-shm"):
            db_path.with_name(db_path.name + suffix).unlink(missing_ok=True)
        os.replace(staged, db_path)
        fsync_dir(db_path.parent)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return {"database": str(db_path)}


# The official Grafana image runs as uid 472 with group 0 and keeps its data group-0 writable; this service runs
# as uid 1500 with supplementary group 0, so it can hand a file to group 0 (chgrp to a group it is in needs no
# capability) but not to uid 472.
GRAFANA_GID = 0


def _match_permissions(staged: Path, current: Path) -> None:
    """Make the restored file usable by Grafana in every case: the old file's group (group 0 when there is no
    old file, e.g. a wiped volume) and at least group read-write."""
    exists = current.exists()
    status = current.stat() if exists else None
    gid = status.st_gid if status is not None else GRAFANA_GID
    try:
        os.chown(staged, -1, gid)
    except PermissionError:
        log.warning("cannot give the restored grafana.db group %d (this process is not in it); Grafana may not "
                    "be able to write it: chgrp %d it on the volume", gid, gid)
    mode = (status.st_mode & 0o777) if status is not None else 0o640
    os.chmod(staged, mode | 0o660)
