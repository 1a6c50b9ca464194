"""`backup` command line: the scheduler (default), `now`, `list`, `verify`, `restore`, `extract`, `prune`, `health`.

Exit codes: 0 success, 1 the operation failed (the reason is logged), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from backup.config import STORES, BackupConfig, load_config
from backup.health import assess, update_state
from backup.job import PRE_RESTORE, apply_retention, run_backup, sync_remote
from backup.manifest import iso, utc_now
from backup.privileges import drop_privileges
from backup.remote import Remote, RemoteError, RemoteSet
from backup.restore import RestoreFailed, RestoreRefused, RestoreRequest, prepare_restore, restore_set
from backup.setfiles import StoreReader
from backup.sets import SET_NAME as SET_NAME_PATTERN
from backup.sets import BackupSet, LockTimeout, SetStore
from backup.verify import verify_directory
from common.config import ConfigError
from common.logs import setup_logging

log = logging.getLogger("backup")

MAX_SLEEP = 60.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backup", description="Backups of InfluxDB 2, InfluxDB 3 and Grafana.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("schedule", help="run backups on BACKUP_SCHEDULE until stopped (the default)")
    sub.add_parser("now", help="take a backup set now")
    listing = sub.add_parser("list", help="list backup sets (and interrupted runs)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    verify = sub.add_parser("verify", help="check a set's checksums and dry-run its restore")
    verify.add_argument("set", help="set name, or 'latest' (the newest complete, verified set)")
    restore = sub.add_parser("restore", help="restore a set (stop influxdb3 and grafana first; influxdb2 running)")
    restore.add_argument("set", help="set name, or 'latest' (the newest complete, verified set)")
    restore.add_argument("--only", choices=STORES, help="restore just one store")
    restore.add_argument("--bucket", help="InfluxDB 2: restore only this bucket, as a new bucket")
    restore.add_argument("--new-bucket", help="InfluxDB 2: name for the restored bucket (default: its own)")
    restore.add_argument("--skip-verify", action="store_true", help="do not verify the set first")
    restore.add_argument("--prepare", action="store_true",
                         help="servers still running: resolve and verify the set, check .env's credentials against "
                              "it, take the pre-restore set; print the set's name (make restore's first step)")
    restore.add_argument("--accept-credential-mismatch", action="store_true",
                         help="restore InfluxDB 3 / Grafana although .env's credentials will not open them")
    restore.add_argument("--no-pre-restore-backup", action="store_true",
                         help="restore without a pre-restore set (a restore that stops half-way cannot be undone)")
    extract = sub.add_parser("extract", help="write a set's files decrypted, in the stores' own layout")
    extract.add_argument("set", help="set name, or 'latest' (the newest complete, verified set)")
    extract.add_argument("destination", type=Path, help="an empty or new directory")
    extract.add_argument("--only", choices=STORES)
    prune = sub.add_parser("prune", help="apply the retention policy now")
    prune.add_argument("--dry-run", action="store_true")
    sub.add_parser("health", help="exit 0 when the last good backup is recent enough for the schedule")
    return parser


def _resolve(config: BackupConfig, sets: SetStore, name: str) -> BackupSet:
    """A set by name; `latest` is the newest complete set whose last verification passed (a partial or broken
    set is never what a user means by it). With a bucket (BACKUP_S3_BUCKET), its sets count too (each was verified
    before it was uploaded): one that is not in BACKUP_DIR is downloaded into it first, so a fresh host with an
    empty BACKUP_DIR restores from the bucket alone. Call with the lock held."""
    local = sets.sets()
    remote = Remote(config.remote) if config.remote is not None else None
    if name != "latest":
        if remote is None or (sets.root / name).is_dir() or not SET_NAME_PATTERN.match(name):
            return sets.get(name)
        if remote.manifest(name) is None:
            raise LookupError(f"no backup set {name} in {sets.root} nor in {remote.config.describe()}; run "
                              "`backup list`")
        log.info("set %s is not in %s: downloading it from %s", name, sets.root, remote.config.describe())
        return remote.download(name, sets)
    good = [item for item in local if item.complete and item.verified]
    newest: BackupSet | RemoteSet | None = good[-1] if good else None
    if remote is not None:
        try:
            in_bucket = [item for item in remote.sets()[0] if item.manifest.status == "complete"]
        except RemoteError as exc:
            log.warning("cannot list the bucket (%s): `latest` is the newest set in %s", exc, sets.root)
            in_bucket = []
        if in_bucket and (newest is None or (in_bucket[-1].manifest.finished, in_bucket[-1].name) >
                          (newest.manifest.finished, newest.name)):
            newest = in_bucket[-1]
    if newest is None:
        where = sets.root if remote is None else f"{sets.root} nor in {remote.config.describe()}"
        if not local:
            raise LookupError(f"there are no backup sets in {where}")
        raise LookupError(f"no set in {where} is complete and verified; name one (backup list)")
    if isinstance(newest, RemoteSet):
        assert remote is not None
        log.info("the newest set, %s, is only in %s: downloading it", newest.name, remote.config.describe())
        return remote.download(newest.name, sets)
    return newest


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _remote_listing(config: BackupConfig) -> tuple[list[RemoteSet], list[str], str | None]:
    if config.remote is None:
        return [], [], None
    try:
        complete, incomplete = Remote(config.remote).sets()
    except RemoteError as exc:
        return [], [], str(exc)
    return complete, incomplete, None


def cmd_list(config: BackupConfig, as_json: bool) -> int:
    sets = SetStore(config.backup_dir)
    found, partials = sets.sets(), sets.partials()
    in_bucket, uploading, remote_error = _remote_listing(config)
    remote_names = {item.name for item in in_bucket}
    local_names = {item.name for item in found}
    remote_only = [item for item in in_bucket if item.name not in local_names]
    if as_json:
        print(json.dumps({
            "sets": [{"name": item.name, "finished_at": item.manifest.finished_at, "status": item.manifest.status,
                      "trigger": item.manifest.trigger, "verified": item.verified, "bytes": item.manifest.bytes,
                      "stores": {store: result.status for store, result in item.manifest.stores.items()},
                      "remote": item.name in remote_names}
                     for item in found],
            "incomplete": [partial.name for partial in partials],
            "remote_only": [{"name": item.name, "finished_at": item.manifest.finished_at,
                             "status": item.manifest.status, "bytes": item.manifest.bytes} for item in remote_only],
            "remote_incomplete": uploading, "remote_error": remote_error,
            "remote": config.remote.describe() if config.remote else None}, indent=2))
        return 0 if remote_error is None else 1
    if remote_error:
        log.error("cannot list the bucket: %s", remote_error)
    if not found and not partials and not remote_only:
        print(f"no backup sets in {config.backup_dir}" + (f" nor in {config.remote.describe()}" if config.remote
                                                          else ""))
        return 0 if remote_error is None else 1
    remote_column = config.remote is not None
    print(f"{'SET':<20} {'FINISHED (' + config.timezone.key + ')':<27} {'STATUS':<9} {'VERIFIED':<9} "
          f"{'SIZE':>10}  {'OFF-HOST  ' if remote_column else ''}STORES")
    rows = [(item.name, item.manifest, item.verified, bool(item.verification), "local") for item in found]
    rows += [(item.name, item.manifest, True, True, "bucket") for item in remote_only]
    for name, manifest, verified_ok, verified_ever, where in sorted(rows, key=lambda row: (row[1].finished, row[0])):
        finished = manifest.finished.astimezone(config.timezone).strftime("%Y-%m-%d %H:%M:%S %Z")
        verified = "yes" if verified_ok else ("FAILED" if verified_ever else "no")
        stores = " ".join(f"{store}{'' if result.ok else '(failed)'}" for store, result in manifest.stores.items())
        if manifest.trigger == PRE_RESTORE:
            stores += "  (taken before a restore)"
        off_host = ""
        if remote_column:
            off_host = "only" if where == "bucket" else ("yes" if name in remote_names else
                                                          ("UPLOADING" if name in uploading else "no"))
            off_host = f"{off_host:<10}"
        print(f"{name:<20} {finished:<27} {manifest.status:<9} {verified:<9} "
              f"{_size(manifest.bytes):>10}  {off_host}{stores}")
    for partial in partials:
        print(f"{partial.name:<20} {'-':<27} {'INCOMPLETE':<9} {'-':<9} {'-':>10}  interrupted or running; "
              "not usable, removed by the next run")
    if remote_column:
        print(f"off-host copies: {config.remote.describe()}; `only`: in the bucket alone, verify and restore "
              "download it first")
    return 0 if remote_error is None else 1


def cmd_verify(config: BackupConfig, name: str) -> int:
    sets = SetStore(config.backup_dir)
    with sets.lock(on_wait=lambda: log.info("a backup or restore is running; waiting for it to finish")):
        backup_set = _resolve(config, sets, name)
        problems = verify_directory(backup_set.path, backup_set.manifest, config.encryption_key)
        sets.record_verification(backup_set, not problems, problems)
    if problems:
        for problem in problems:
            log.error("verify %s: %s", backup_set.name, problem)
        log.error("set %s FAILED verification (%d problem(s))", backup_set.name, len(problems))
        return 1
    log.info("set %s verified: %d files, checksums and restore dry run ok", backup_set.name,
             len(backup_set.manifest.files))
    return 0


def cmd_restore(config: BackupConfig, args: argparse.Namespace) -> int:
    if (args.bucket or args.new_bucket) and args.only not in (None, "influxdb2"):
        raise ValueError("--bucket/--new-bucket apply to InfluxDB 2 only (use --only influxdb2)")
    if args.new_bucket and not args.bucket:
        raise ValueError("--new-bucket needs --bucket (the bucket of the set to restore)")
    request = RestoreRequest(only="influxdb2" if args.bucket else args.only, bucket=args.bucket,
                             new_bucket=args.new_bucket, accept_credential_mismatch=args.accept_credential_mismatch,
                             pre_restore_backup=not args.no_pre_restore_backup)
    sets = SetStore(config.backup_dir)
    try:
        with sets.lock(on_wait=lambda: log.info("a backup is running; waiting for it to finish")):
            backup_set = _resolve(config, sets, args.set)
            if not args.skip_verify:
                problems = verify_directory(backup_set.path, backup_set.manifest, config.encryption_key)
                sets.record_verification(backup_set, not problems, problems)
                if problems:
                    for problem in problems:
                        log.error("verify %s: %s", backup_set.name, problem)
                    log.error("refusing to restore %s: it failed verification", backup_set.name)
                    return 1
            if args.prepare:
                undo = prepare_restore(config, sets, backup_set, request)
                log.info("ready to restore %s%s", backup_set.name,
                         f"; the pre-restore set {undo.name} undoes it" if undo else "")
                print(backup_set.name)
                return 0
            results = restore_set(config, sets, backup_set, request)
    except (RestoreRefused, RestoreFailed) as exc:
        for line in str(exc).splitlines():
            log.error("%s", line)
        return 1
    log.info("restore of %s finished: %s", backup_set.name, ", ".join(results))
    return 0


def cmd_extract(config: BackupConfig, name: str, destination: Path, only: str | None) -> int:
    if destination.exists() and any(destination.iterdir()):
        raise ValueError(f"{destination} is not empty")
    sets = SetStore(config.backup_dir)
    with sets.lock():
        backup_set = _resolve(config, sets, name)
    for store, result in backup_set.manifest.stores.items():
        if (only and store != only) or not result.ok:
            continue
        reader = StoreReader(backup_set.path, store, backup_set.manifest.files_of(store), config.encryption_key)
        for relative in reader.names():
            # InfluxDB 2 files stay gzip-compressed: that is the layout `influx restore` reads.
            keep_gzip = store == "influxdb2" and reader.entry(relative).compression == "gzip"
            target = destination / store / (relative + (".gz" if keep_gzip else ""))
            reader.copy_to(relative, target, decompress=not keep_gzip)
    log.info("extracted %s into %s", backup_set.name, destination)
    return 0


def cmd_health(config: BackupConfig) -> int:
    verdict = assess(SetStore(config.backup_dir), config.schedule, config.health_grace, utc_now())
    print(verdict.message)
    return 0 if verdict.healthy else 1


def cmd_schedule(config: BackupConfig) -> int:
    stop = {"requested": False}

    def request_stop(signum, _frame):
        stop["requested"] = True
        log.info("received signal %d; stopping after the current step", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, request_stop)
    update_state(config.backup_dir, scheduler_started_at=utc_now(), schedule=config.schedule.expression,
                 timezone=config.timezone.key)
    log.info("scheduler started: %r in %s, stores %s, compression %s, encryption %s", config.schedule.expression,
             config.timezone.key, ", ".join(config.stores), config.compression, "on" if config.encrypted else "off")
    while not stop["requested"]:
        due = config.schedule.next_after(utc_now())
        log.info("next backup at %s (%s)", due.astimezone(config.timezone).isoformat(), iso(due))
        update_state(config.backup_dir, next_run_at=due)
        _sleep_until(due)
        run_backup(config, trigger="schedule")
    return 0


def _sleep_until(due: datetime) -> None:
    """Sleep in short steps against the wall clock, so a suspended host or a clock change is noticed."""
    while (remaining := (due - utc_now()).total_seconds()) > 0:
        time.sleep(min(remaining, MAX_SLEEP))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "schedule"
    setup_logging("backup")
    try:
        config = load_config()
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        drop_privileges(config.run_as, config.backup_dir)
        if command == "schedule":
            return cmd_schedule(config)
        if command == "now":
            outcome = run_backup(config, trigger="manual")
            if outcome.backup_set is not None:
                print(outcome.backup_set.name)
            return 0 if outcome.success else 1
        if command == "list":
            return cmd_list(config, args.json)
        if command == "verify":
            return cmd_verify(config, args.set)
        if command == "restore":
            return cmd_restore(config, args)
        if command == "extract":
            return cmd_extract(config, args.set, args.destination, args.only)
        if command == "prune":
            sets = SetStore(config.backup_dir)
            with sets.lock():
                protect: set[str] = set()
                if config.remote is not None:
                    remote = sync_remote(config, sets, upload=False, dry_run=args.dry_run)
                    if remote.error:
                        return 1
                    protect = set(remote.pending)
                apply_retention(config, sets, dry_run=args.dry_run, protect=protect)
            return 0
        return cmd_health(config)
    except RemoteError as exc:
        log.error("%s", exc)
        return 1
    except (LookupError, ValueError, LockTimeout) as exc:
        log.error("%s", exc)
        return 2 if isinstance(exc, ValueError) else 1
    except Exception as exc:  # the reason goes to the log, not a traceback wall
        log.error("%s failed: %s", command, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return 1


if __name__ == "__main__":
    sys.exit(main())
