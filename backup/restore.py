"""Restoring a set, store by store, in the order that is safe for each server.

InfluxDB 3 (file restore: the server must be stopped), Grafana (database file: Grafana must be stopped),
then InfluxDB 2 (HTTP restore API: the server must be running). Each refuses, with the reason, when its
server is in the wrong state; nothing is half-replaced (files are staged, then renamed into place).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from backup import grafana, influxdb3
from backup.config import BackupConfig
from backup.influxdb2 import InfluxDB2
from backup.setfiles import StoreReader
from backup.sets import BackupSet

__all__ = ["RESTORE_ORDER", "RestoreRequest", "restore_set"]

log = logging.getLogger("backup.restore")

RESTORE_ORDER = ("influxdb3", "grafana", "influxdb2")


@dataclass(frozen=True)
class RestoreRequest:
    only: str | None = None
    bucket: str | None = None  # InfluxDB 2: restore just this bucket ...
    new_bucket: str | None = None  # ... under this name (default: its own)


def restore_set(config: BackupConfig, backup_set: BackupSet, request: RestoreRequest, *,
                influxdb3_running: Callable[[], bool] | None = None,
                grafana_running: Callable[[], bool] | None = None,
                influxdb2_factory: Callable[[], InfluxDB2] | None = None) -> dict[str, dict]:
    manifest = backup_set.manifest
    wanted = [request.only] if request.only else [store for store in RESTORE_ORDER if store in manifest.stores]
    results: dict[str, dict] = {}
    for store in wanted:
        result = manifest.stores.get(store)
        if result is None or not result.ok:
            raise LookupError(f"set {backup_set.name} has no good backup of {store} "
                              f"({result.error if result else 'not backed up'})")
    scratch = Path(tempfile.mkdtemp(prefix=".restore-", dir=config.backup_dir))
    try:
        for store in [name for name in RESTORE_ORDER if name in wanted]:
            reader = StoreReader(backup_set.path, store, manifest.files_of(store), config.encryption_key)
            log.info("restoring %s from %s", store, backup_set.name)
            if store == "influxdb3":
                results[store] = influxdb3.restore_node(
                    reader, config.influxdb3_data_dir, config.influxdb3_node_id,
                    server_running=influxdb3_running or (lambda: influxdb3.server_answers(config.influxdb3_url)))
            elif store == "grafana":
                api = grafana.GrafanaAPI(config.grafana_url, config.grafana_user or "", config.grafana_password or "")
                running = grafana_running() if grafana_running else api.answers()
                results[store] = grafana.restore_database(reader, config.grafana_db, grafana_running=running)
            else:
                client = influxdb2_factory() if influxdb2_factory else InfluxDB2(
                    config.influxdb2_url, config.influxdb2_token or "", config.influxdb2_org,
                    timeout=config.http_timeout)
                try:
                    if request.bucket:
                        results[store] = client.restore_bucket(reader, scratch, request.bucket, request.new_bucket)
                    else:
                        results[store] = client.restore_full(reader, scratch)
                finally:
                    client.close()
            log.info("restored %s: %s", store, results[store])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results
