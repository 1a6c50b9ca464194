"""One backup run: every configured store into a new set, verified, then retention and metrics.

A failure of one store is logged with its reason and recorded; the other stores still run. The set is kept
(as "partial") when at least one store succeeded, and only after it verified; otherwise nothing is kept.
Each store's result also records what a restore needs to compare .env with the set's credentials (hashes only,
see backup/credentials.py). `take_pre_restore_set` is the same run, taken by a restore just before it replaces
anything, so a restore that stops half-way can be undone.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

from backup import grafana, influxdb3, influxdb3_s3
from backup.archive import Codec
from backup.config import BackupConfig
from backup.credentials import fingerprint
from backup.health import update_state
from backup.influxdb2 import InfluxDB2, describe
from backup.manifest import SetManifest, StoreResult, iso, utc_now
from backup.remote import Remote, RemoteError, record_upload, uploaded_to
from backup.report import MetricsReporter, run_points
from backup.retention import plan_retention
from backup.setfiles import StoreWriter
from backup.sets import BackupSet, SetStore
from backup.verify import verify_directory

__all__ = ["PRE_RESTORE", "RemoteOutcome", "RunOutcome", "apply_retention", "run_backup", "sync_remote",
           "take_pre_restore_set"]

log = logging.getLogger("backup.job")

StoreFn = Callable[[BackupConfig, StoreWriter, str, Path], tuple[str | None, dict]]
PRE_RESTORE = "pre-restore"  # the trigger of a set a restore takes of what it is about to replace


@dataclass
class RunOutcome:
    success: bool
    backup_set: BackupSet | None
    stores: dict[str, StoreResult]
    error: str | None = None
    duration_seconds: float = 0.0
    pruned: list[str] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)
    remote: RemoteOutcome | None = None


@dataclass
class RemoteOutcome:
    """What a run did in the bucket: sets uploaded (the new one and any earlier one still missing there), sets
    pruned there, and the error that stopped it (the local sets are then all kept)."""

    uploaded: list[str] = field(default_factory=list)
    skipped_files: int = 0
    bytes: int = 0
    pruned: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # kept by the policy, only local, not uploaded by this call
    error: str | None = None


# ------------------------------------------------------------------------------------------------ stores
def backup_influxdb2(config: BackupConfig, writer: StoreWriter, base_name: str, scratch: Path):
    client = InfluxDB2(config.influxdb2_url, config.influxdb2_token or "", config.influxdb2_org,
                       timeout=config.http_timeout)
    try:
        version = client.version()
        report = client.backup(writer, base_name)
    finally:
        client.close()
    # The server accepted this token for the whole backup, so it is one of the tokens in the KV snapshot.
    return version, {"buckets": report.buckets, "shards": report.shards, "shards_removed": report.shards_removed,
                     "shards_of_deleted_groups": report.shards_of_deleted_groups,
                     "credential": fingerprint(config.influxdb2_token or "")}


def backup_influxdb3(config: BackupConfig, writer: StoreWriter, base_name: str, scratch: Path):
    version = None
    headers = {"Authorization": f"Bearer {config.influxdb3_token}"} if config.influxdb3_token else {}
    try:
        answer = requests.get(f"{config.influxdb3_url}/ping", headers=headers, timeout=10)
        version = answer.headers.get("x-influxdb-version") or answer.json().get("version")
    except (requests.RequestException, ValueError) as exc:
        log.warning("InfluxDB 3 did not tell its version (%s); copying its files anyway", exc)
    if config.influxdb3_s3 is not None:
        details = influxdb3_s3.backup_bucket_node(config.influxdb3_s3, config.influxdb3_node_id, writer, scratch)
    else:
        details = influxdb3.backup_node(config.influxdb3_data_dir, config.influxdb3_node_id, writer)
    details["admin_tokens"], details["admin_tokens_error"] = _influxdb3_admin_tokens(config)
    return version, details


def _influxdb3_admin_tokens(config: BackupConfig) -> tuple[list[dict] | None, str | None]:
    """The catalog's tokens as the server lists them (influxdb3_system_tables/src/tokens.rs: every Core token is
    an admin token, "*:*:*"; `hash` is the first 9 hex digits of the SHA-512 the catalog stores), or why not."""
    try:
        answer = requests.post(f"{config.influxdb3_url}/api/v3/query_sql", timeout=30,
                               headers={"Authorization": f"Bearer {config.influxdb3_token or ''}"},
                               json={"db": "_internal", "q": "SELECT name, hash FROM system.tokens", "format": "json"})
    except requests.RequestException as exc:
        return None, f"InfluxDB 3 did not answer: {exc}"
    if answer.status_code == 401:
        log.warning("InfluxDB 3 refuses INFLUXDB3_TOKEN: .env's INFLUXDB3_ADMIN_TOKEN is not an admin token of "
                    "this server (changing it after the first start does nothing; README, 'Rotating credentials')")
    if answer.status_code != 200:
        return None, f"listing the admin tokens answered HTTP {answer.status_code}: {answer.text[:200]}"
    try:
        return [{"name": str(row["name"]), "hash": str(row["hash"])} for row in answer.json()], None
    except (ValueError, KeyError, TypeError) as exc:
        return None, f"the admin token list is not the JSON rows expected: {exc}"


def backup_grafana(config: BackupConfig, writer: StoreWriter, base_name: str, scratch: Path):
    api = grafana.GrafanaAPI(config.grafana_url, config.grafana_user or "", config.grafana_password or "",
                             timeout=min(config.http_timeout, 120))
    version = api.version()
    copy = scratch / grafana.DB_NAME
    details = grafana.snapshot_database(config.grafana_db, copy)
    writer.add_file(grafana.DB_NAME, copy)
    copy.unlink()
    details |= grafana.export_api(api, writer)
    # The login the set was taken with (no secret): when a restore refuses .env's GRAFANA_ADMIN_USER for this set's
    # grafana.db (backup/credentials.py checks .env's login and password there), the manifest says which one it had.
    details["admin_login"] = config.grafana_user
    return version, details


STORE_FUNCTIONS: dict[str, StoreFn] = {
    "influxdb2": backup_influxdb2,
    "influxdb3": backup_influxdb3,
    "grafana": backup_grafana,
}


# -------------------------------------------------------------------------------------------------- run
def _reporter(config: BackupConfig) -> MetricsReporter:
    return MetricsReporter(spool_dir=config.backup_dir / ".metrics-spool", influxdb2_url=config.influxdb2_url,
                           influxdb2_token=config.influxdb2_token, org=config.influxdb2_org,
                           influxdb3_url=config.influxdb3_url, influxdb3_token=config.influxdb3_token)


def run_backup(config: BackupConfig, *, trigger: str, store_functions: dict[str, StoreFn] | None = None,
               reporter: MetricsReporter | None = None, clock: Callable[[], datetime] = utc_now,
               remote: Remote | None = None) -> RunOutcome:
    """Take one backup set now. Never raises for a store's failure; the outcome says what happened."""
    functions = store_functions or STORE_FUNCTIONS
    sets = SetStore(config.backup_dir)
    with sets.lock(on_wait=lambda: log.info("another backup or restore is running; waiting for it")):
        begun = time.monotonic()
        outcome = _run_locked(config, sets, trigger, functions, clock)
        protect: set[str] = set()
        if config.remote is not None:
            outcome.remote = sync_remote(config, sets, remote=remote)
            if outcome.remote.error:
                # Nothing that is not in the bucket yet is deleted here; the next run uploads it.
                protect = {item.name for item in sets.sets() if not uploaded_to(item, config.remote)}
                outcome.success = False
                upload_error = f"off-host copy failed: {outcome.remote.error}"
                outcome.error = f"{outcome.error}; {upload_error}" if outcome.error else upload_error
        outcome.duration_seconds = time.monotonic() - begun
        if outcome.backup_set is not None:
            outcome.pruned = apply_retention(config, sets, protect=protect)
        name = outcome.backup_set.name if outcome.backup_set else ""
        update_state(config.backup_dir, last_run={"set": name, "at": iso(clock()), "error": outcome.error},
                     **({"last_success_at": clock()} if outcome.success else {}))
    if not outcome.success:
        log.error("backup run failed: %s", outcome.error)
    if config.metrics_enabled:
        lines = run_points({"set": name, "stores": outcome.stores, "duration_seconds": outcome.duration_seconds,
                            "success": outcome.success, "error": outcome.error}, trigger=trigger, moment=clock())
        outcome.metrics = (reporter or _reporter(config)).record(lines)
    return outcome


def _run_locked(config: BackupConfig, sets: SetStore, trigger: str, functions: dict[str, StoreFn],
                clock: Callable[[], datetime]) -> RunOutcome:
    for stale in sets.remove_stale():
        log.warning("removed %s, left by a backup run that did not finish", stale)
    started, begun = clock(), time.monotonic()
    partial = sets.begin(started)
    log.info("backup %s started (%s): %s", partial.name, trigger, ", ".join(config.stores))
    codec = Codec(config.compression, config.compression_level, config.encryption_key)
    scratch = partial.path / ".scratch"
    results: dict[str, StoreResult] = {}
    writers: list[StoreWriter] = []
    try:
        scratch.mkdir()
        for store in config.stores:
            writer = StoreWriter(partial.path, store, codec)
            writers.append(writer)
            store_started = time.monotonic()
            try:
                version, details = functions[store](config, writer, partial.name, scratch)
            except Exception as exc:
                reason = describe(exc)
                log.error("backup of %s failed: %s", store, reason, exc_info=log.isEnabledFor(logging.DEBUG))
                shutil.rmtree(writer.root, ignore_errors=True)
                writer.entries.clear()
                results[store] = StoreResult("failed", time.monotonic() - store_started, error=reason)
                continue
            results[store] = StoreResult("ok", time.monotonic() - store_started, writer.bytes, len(writer.entries),
                                         version, None, details)
            log.info("backed up %s: %d files, %d bytes in %.1f s", store, len(writer.entries), writer.bytes,
                     results[store].duration_seconds)
        shutil.rmtree(scratch, ignore_errors=True)
        if not any(result.ok for result in results.values()):
            sets.discard(partial)
            return RunOutcome(False, None, results, "every store failed; no set was kept")
        manifest = SetManifest(
            name=partial.name, started_at=iso(started), finished_at=iso(clock()),
            duration_seconds=round(time.monotonic() - begun, 3), trigger=trigger, timezone=config.timezone.key,
            compression=config.compression, encrypted=config.encrypted, stores=results,
            files=[entry for writer in writers for entry in writer.entries])
        problems = verify_directory(partial.path, manifest, config.encryption_key)
        if problems:
            sets.discard(partial)
            for problem in problems:
                log.error("verification of the new set failed: %s", problem)
            return RunOutcome(False, None, results, f"the new set failed verification: {problems[0]}")
        backup_set = sets.finalize(partial, manifest)
        sets.record_verification(backup_set, True, [])
    except BaseException:
        sets.discard(partial)
        raise
    failed = [store for store, result in results.items() if not result.ok]
    error = f"failed: {', '.join(failed)}" if failed else None
    log.info("backup %s %s: %d files, %d bytes, %.1f s", backup_set.name,
             "complete" if not failed else f"partial ({error})", len(manifest.files), manifest.bytes,
             manifest.duration_seconds)
    return RunOutcome(not failed, backup_set, results, error)


def apply_retention(config: BackupConfig, sets: SetStore, *, dry_run: bool = False,
                    protect: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Prune sets the policy does not keep, except those in `protect` (the lock must be held). Returns the names
    pruned."""
    pruned = []
    for decision in plan_retention(sets.sets(), config.retention, config.timezone):
        if decision.keep:
            continue
        if decision.backup_set.name in protect:
            log.warning("kept set %s although retention would prune it: it is not in the bucket yet",
                        decision.backup_set.name)
            continue
        if not dry_run:
            sets.remove(decision.backup_set)
        log.info("%s set %s (no daily/weekly/monthly slot, not the newest verified set)",
                 "would prune" if dry_run else "pruned", decision.backup_set.name)
        pruned.append(decision.backup_set.name)
    return pruned


def take_pre_restore_set(config: BackupConfig, sets: SetStore, stores: Sequence[str], *,
                         store_functions: dict[str, StoreFn] | None = None,
                         clock: Callable[[], datetime] = utc_now) -> BackupSet:
    """A set of `stores` as they are now, taken by a restore (the lock held) before it replaces them: the way
    back when the restore stops half-way. No retention runs (it could prune the set being restored) and no
    metrics are written (the servers are about to change under them)."""
    scoped = dataclasses.replace(config, stores=tuple(stores))
    outcome = _run_locked(scoped, sets, PRE_RESTORE, store_functions or STORE_FUNCTIONS, clock)
    if not outcome.success or outcome.backup_set is None:
        raise RuntimeError(f"the pre-restore backup of {', '.join(stores)} failed ({outcome.error}): nothing was "
                           "restored. Fix the cause, or restore without a way back (PRE_RESTORE_BACKUP=no)")
    log.info("pre-restore set %s holds %s as they were before the restore", outcome.backup_set.name,
             ", ".join(stores))
    return outcome.backup_set


def sync_remote(config: BackupConfig, sets: SetStore, *, remote: Remote | None = None, upload: bool = True,
                dry_run: bool = False) -> RemoteOutcome:
    """Bring the bucket in line with the retention policy (the lock must be held): upload, newest first, every
    local set the policy keeps that is not there yet (the new set and any an earlier run could not upload), then
    delete there the sets the policy does not keep, and what interrupted uploads left of sets that are gone.
    The policy is the local one, applied to the local and the bucket's sets together, so a set that retention
    would delete at once is never uploaded. Never raises for the bucket: the outcome carries the error."""
    assert config.remote is not None
    outcome = RemoteOutcome()
    remote = remote or Remote(config.remote)
    try:
        remote.check()
        if upload and not dry_run:
            for key in remote.abort_stale_uploads():
                log.warning("aborted an unfinished multipart upload of %s left by an interrupted run", key)
        in_bucket, incomplete = remote.sets()
        local = {item.name: item for item in sets.sets() if not item.failed_verification}
        candidates = {item.name: BackupSet(item.name, Path(remote.key(item.name)), item.manifest, {"ok": True})
                      for item in in_bucket}
        candidates.update(local)
        decisions = plan_retention(list(candidates.values()), config.retention, config.timezone)
        keep = [decision.backup_set.name for decision in decisions if decision.keep]
        there = {item.name for item in in_bucket}
        for name in keep:
            if name not in local:
                continue
            if name in there:
                if not uploaded_to(local[name], config.remote) and not dry_run:
                    record_upload(local[name], config.remote)
                continue
            if not upload:
                outcome.pending.append(name)
                continue
            if dry_run:
                outcome.uploaded.append(name)
                continue
            began = time.monotonic()
            report = remote.upload(local[name])
            record_upload(local[name], config.remote)
            outcome.uploaded.append(name)
            outcome.skipped_files += report.skipped
            outcome.bytes += report.bytes
            log.info("uploaded set %s to %s: %d files, %d bytes in %.1f s%s", name, config.remote.describe(),
                     report.uploaded, report.bytes, time.monotonic() - began,
                     f" ({report.skipped} already there)" if report.skipped else "")
        for decision in decisions:
            name = decision.backup_set.name
            if decision.keep or name not in there:
                continue
            if not dry_run:
                remote.remove(name)
            outcome.pruned.append(name)
            log.info("%s set %s in %s (no daily/weekly/monthly slot)", "would prune" if dry_run else "pruned",
                     name, config.remote.describe())
        for name in incomplete:
            if name in keep and name in local:
                continue  # an upload of a kept local set that stopped: completed above or by the next run
            if not dry_run and upload:
                removed = remote.remove_incomplete(name)
                if removed:
                    log.info("removed %d object(s) an interrupted upload left of set %s", removed, name)
            outcome.cleaned.append(name)
    except RemoteError as exc:
        outcome.error = str(exc)
        log.error("off-host copy to %s failed: %s. The local sets are kept; the next run uploads what is "
                  "missing", config.remote.describe(), exc)
    return outcome
