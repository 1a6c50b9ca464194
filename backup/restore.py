"""Restoring a set, store by store, in the order that is safe for each server, with a way back.

`make restore` runs two steps (compose/stack.py restore), with the scheduled backups paused and ingest stopped:
1. `backup restore SET --prepare` while every server still runs: SET is resolved once (`latest`: the newest
   complete set whose verification passed) and verified, the credentials the set's stores will accept are compared
   with .env's (a restore must not lock the stack out, see backup/credentials.py), and a pre-restore set is taken
   of every store about to be replaced. The resolved name is printed for step 2.
2. `backup restore NAME` once InfluxDB 3 and Grafana are stopped: the same checks, then InfluxDB 3 (file
   restore), Grafana (database file), InfluxDB 2 (HTTP restore API: the server must be running).

Nothing is touched until every check passed: the credentials, the servers' states, and a pre-restore set of the
last hour for a restore that replaces data (a bucket restore only adds a bucket). InfluxDB 3 and Grafana are
swapped in whole (staged, then renamed), so a failure leaves their old data; InfluxDB 2's full restore is not
atomic on the server (its KV restore deletes every shard first), and a failure there names the pre-restore set
that undoes it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from backup import grafana, influxdb3, influxdb3_s3
from backup.config import BackupConfig
from backup.credentials import Mismatch, check_restore
from backup.influxdb2 import InfluxDB2
from backup.job import PRE_RESTORE, StoreFn, take_pre_restore_set
from backup.manifest import utc_now
from backup.setfiles import StoreReader
from backup.sets import BackupSet, SetStore

__all__ = ["PRE_RESTORE_MAX_AGE", "RESTORE_ORDER", "RestoreFailed", "RestoreRefused", "RestoreRequest",
           "prepare_restore", "restore_set"]

log = logging.getLogger("backup.restore")

RESTORE_ORDER = ("influxdb3", "grafana", "influxdb2")
PRE_RESTORE_MAX_AGE = timedelta(hours=1)
UNDO_HELP = "README, 'When a restore stops half-way'"


class RestoreRefused(RuntimeError):
    """Nothing was changed; the message says why and what to do."""


class RestoreFailed(RuntimeError):
    """A store failed once the restore had begun; the message says what is restored and how to go back."""


@dataclass(frozen=True)
class RestoreRequest:
    only: str | None = None
    bucket: str | None = None  # InfluxDB 2: restore just this bucket ...
    new_bucket: str | None = None  # ... under this name (default: its own)
    accept_credential_mismatch: bool = False  # InfluxDB 3 and Grafana: restore although .env will not log in
    pre_restore_backup: bool = True  # False: restore without a way back

    @property
    def replaces(self) -> bool:
        """A bucket restore only adds a bucket; every other restore replaces a store's data."""
        return self.bucket is None


def _stores(backup_set: BackupSet, request: RestoreRequest) -> list[str]:
    manifest = backup_set.manifest
    wanted = [request.only] if request.only else [store for store in RESTORE_ORDER if store in manifest.stores]
    for store in wanted:
        result = manifest.stores.get(store)
        if result is None or not result.ok:
            raise LookupError(f"set {backup_set.name} has no good backup of {store} "
                              f"({result.error if result else 'not backed up'})")
    return [store for store in RESTORE_ORDER if store in wanted]


def _check_credentials(config: BackupConfig, backup_set: BackupSet, stores: list[str], request: RestoreRequest,
                       scratch: Path) -> None:
    mismatches: list[Mismatch] = check_restore(config, backup_set, stores, replaces_influxdb2=request.replaces,
                                               scratch=scratch)
    blocking = [item for item in mismatches if not (item.overridable and request.accept_credential_mismatch)]
    for item in mismatches:
        if item not in blocking:
            log.warning("%s. Restoring anyway (--accept-credential-mismatch)", item.message)
    if blocking:
        lines = [f"refusing to restore {backup_set.name}: after it, .env's credentials would not work", *(
            f"- {item.message}" for item in blocking)]
        if any(item.overridable for item in blocking):
            lines.append("To restore anyway and fix access afterwards: ACCEPT_CREDENTIAL_MISMATCH=yes "
                         "(--accept-credential-mismatch), InfluxDB 3 and Grafana only.")
        lines.append("Keep the stack's .env with its backup sets, away from this machine (README, 'Back up and "
                     "restore'); on a new host, copy it into place before the first `make up`.")
        raise RestoreRefused("\n".join(lines))


def _holding_data(config: BackupConfig, stores: list[str]) -> list[str]:
    """The stores with something to lose: a wiped InfluxDB 3 volume (no node directory) or Grafana volume (no
    grafana.db) has nothing a pre-restore set could keep."""
    if config.influxdb3_s3 is not None:
        influxdb3_empty = "influxdb3" in stores and not influxdb3_s3.holds_node(config.influxdb3_s3,
                                                                                 config.influxdb3_node_id)
    else:
        influxdb3_empty = not (config.influxdb3_data_dir / config.influxdb3_node_id).exists()
    empty = {"influxdb3": influxdb3_empty, "grafana": not config.grafana_db.exists()}
    for store in stores:
        if empty.get(store):
            log.info("%s holds no data here: nothing of it to keep before the restore", store)
    return [store for store in stores if not empty.get(store)]


def prepare_restore(config: BackupConfig, sets: SetStore, backup_set: BackupSet, request: RestoreRequest, *,
                    store_functions: dict[str, StoreFn] | None = None) -> BackupSet | None:
    """Step 1, servers running, the lock held: check the credentials, then take the pre-restore set."""
    stores = _stores(backup_set, request)
    scratch = Path(tempfile.mkdtemp(prefix=".restore-", dir=config.backup_dir))
    try:
        _check_credentials(config, backup_set, stores, request, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    keep = _holding_data(config, stores)
    if not request.replaces or not request.pre_restore_backup or not keep:
        return None
    return take_pre_restore_set(config, sets, keep, store_functions=store_functions)


def _pre_restore_set(sets: SetStore, stores: list[str], now: datetime) -> BackupSet | None:
    """The newest verified pre-restore set of the last hour holding every store about to be replaced."""
    for candidate in reversed(sets.sets()):
        manifest = candidate.manifest
        if (manifest.trigger == PRE_RESTORE and candidate.verified and now - candidate.finished <= PRE_RESTORE_MAX_AGE
                and all(store in manifest.stores and manifest.stores[store].ok for store in stores)):
            return candidate
    return None


def _check_servers(stores: list[str], influxdb3_running: Callable[[], bool],
                   grafana_running: Callable[[], bool]) -> None:
    if "influxdb3" in stores and influxdb3_running():
        raise RestoreRefused("InfluxDB 3 is running: stop it first (docker compose stop influxdb3 ingest), its "
                             "files must not change under it")
    if "grafana" in stores and grafana_running():
        raise RestoreRefused("Grafana is running: stop it first (docker compose stop grafana); its database must "
                             "not be replaced under it")


def restore_set(config: BackupConfig, sets: SetStore, backup_set: BackupSet, request: RestoreRequest, *,
                influxdb3_running: Callable[[], bool] | None = None,
                grafana_running: Callable[[], bool] | None = None,
                influxdb2_factory: Callable[[], InfluxDB2] | None = None,
                clock: Callable[[], datetime] = utc_now) -> dict[str, dict]:
    """Step 2, the lock held: every check, then each store in RESTORE_ORDER."""
    stores = _stores(backup_set, request)
    influxdb3_running = influxdb3_running or (lambda: influxdb3.server_answers(config.influxdb3_url))
    grafana_running = grafana_running or grafana.GrafanaAPI(config.grafana_url, config.grafana_user or "",
                                                            config.grafana_password or "").answers
    results: dict[str, dict] = {}
    scratch = Path(tempfile.mkdtemp(prefix=".restore-", dir=config.backup_dir))
    try:
        _check_credentials(config, backup_set, stores, request, scratch)
        _check_servers(stores, influxdb3_running, grafana_running)
        undo = None
        keep = _holding_data(config, stores) if request.replaces else []
        if keep and request.pre_restore_backup:
            undo = _pre_restore_set(sets, keep, clock())
            if undo is None:
                raise RestoreRefused(
                    f"no pre-restore set of {', '.join(keep)} from the last hour: a restore that stops half-way "
                    f"could not be undone. Take one while the servers run (backup restore {backup_set.name} "
                    "--prepare; make restore does), or restore without a way back (--no-pre-restore-backup)")
        elif keep:
            log.warning("restoring without a pre-restore set: a restore that stops half-way cannot be undone")
        for store in stores:
            reader = StoreReader(backup_set.path, store, backup_set.manifest.files_of(store), config.encryption_key)
            log.info("restoring %s from %s", store, backup_set.name)
            try:
                results[store] = _restore_store(config, store, reader, request, scratch, influxdb3_running,
                                                grafana_running, influxdb2_factory)
            except Exception as exc:
                raise RestoreFailed(_stopped(backup_set, store, exc, list(results), undo)) from exc
            log.info("restored %s: %s", store, results[store])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def _restore_store(config: BackupConfig, store: str, reader: StoreReader, request: RestoreRequest, scratch: Path,
                   influxdb3_running: Callable[[], bool], grafana_running: Callable[[], bool],
                   influxdb2_factory: Callable[[], InfluxDB2] | None) -> dict:
    if store == "influxdb3" and config.influxdb3_s3 is not None:
        return influxdb3_s3.restore_bucket_node(reader, config.influxdb3_s3, config.influxdb3_node_id, scratch,
                                                server_running=influxdb3_running)
    if store == "influxdb3":
        return influxdb3.restore_node(reader, config.influxdb3_data_dir, config.influxdb3_node_id,
                                      server_running=influxdb3_running)
    if store == "grafana":
        return grafana.restore_database(reader, config.grafana_db, grafana_running=grafana_running())
    client = influxdb2_factory() if influxdb2_factory else InfluxDB2(
        config.influxdb2_url, config.influxdb2_token or "", config.influxdb2_org, timeout=config.http_timeout)
    try:
        if request.bucket:
            return client.restore_bucket(reader, scratch, request.bucket, request.new_bucket)
        return client.restore_full(reader, scratch)
    finally:
        client.close()


def _stopped(backup_set: BackupSet, store: str, exc: Exception, done: list[str], undo: BackupSet | None) -> str:
    kept = {"influxdb3": "its files were not replaced (they are swapped in whole)",
            "grafana": "its database was not replaced (it is swapped in whole)"}
    lines = [f"the restore of {backup_set.name} stopped at {store}: {exc}",
             f"{store}: {kept.get(store, 'the server holds part of the set')}; "
             f"already restored from the set: {', '.join(done) or 'nothing'}."]
    if undo is not None:
        lines.append(f"To go back to the state before this restore: make restore SET={undo.name} (the pre-restore "
                     f"set); or fix the cause and run the same restore again ({UNDO_HELP}).")
    else:
        lines.append(f"No pre-restore set was taken: fix the cause and run the same restore again ({UNDO_HELP}).")
    return "\n".join(lines)
