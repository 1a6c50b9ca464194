"""Backup sets on disk: naming, the run lock, atomic completion, listing, and removal of our own sets only.

A run writes into `.partial-<name>/` (marked by `.backup-run`, so only directories this service made are
ever removed), writes `manifest.json` last, fsyncs, and renames the directory to `<name>/`. A run killed at
any point leaves a `.partial-*` directory, which `list` shows as interrupted, verify refuses, retention
never counts, and the next run (holding the lock) removes.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from backup.manifest import MANIFEST_NAME, SetManifest, fsync_dir, iso, parse_iso, utc_now, write_json_atomic

__all__ = ["BackupSet", "LockTimeout", "Partial", "SetStore", "set_name_for"]

SET_NAME = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
PARTIAL_PREFIX = ".partial-"
RUN_MARKER = ".backup-run"
VERIFICATION_NAME = "verification.json"
LOCK_NAME = ".lock"


class LockTimeout(RuntimeError):
    """Another backup or restore holds the lock on the backup directory."""


def set_name_for(moment: datetime) -> str:
    """The set name for a run started at `moment`: UTC, the same pattern `influx backup` uses."""
    if moment.tzinfo is None:
        raise ValueError("set_name_for needs an aware datetime")
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Partial:
    """A set being written (or left behind by a run that died)."""

    name: str
    path: Path


@dataclass
class BackupSet:
    name: str
    path: Path
    manifest: SetManifest
    verification: dict | None

    @property
    def finished(self) -> datetime:
        return self.manifest.finished

    @property
    def complete(self) -> bool:
        return self.manifest.status == "complete"

    @property
    def verified(self) -> bool:
        return bool(self.verification and self.verification.get("ok"))

    @property
    def failed_verification(self) -> bool:
        """Its last verification found problems (a set never verified is not failed)."""
        return bool(self.verification) and not self.verification.get("ok")

    @property
    def verified_at(self) -> datetime | None:
        if self.verification and self.verification.get("verified_at"):
            return parse_iso(self.verification["verified_at"])
        return None


class SetStore:
    """The backup directory. Create it with `SetStore(Path("/backups"))`."""

    def __init__(self, root: Path):
        self.root = root

    # ----------------------------------------------------------------------------------------- locking
    @contextmanager
    def lock(self, *, timeout: float = 6 * 3600, poll: float = 2.0, on_wait=None) -> Iterator[None]:
        """Hold the exclusive run lock (one backup or restore at a time across processes/containers)."""
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o640)
        deadline = time.monotonic() + timeout
        waited = False
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(f"another backup or restore has held {self.root / LOCK_NAME} for more "
                                          f"than {timeout:.0f} s") from None
                    if on_wait is not None and not waited:
                        on_wait()
                    waited = True
                    time.sleep(poll)
            yield
        finally:
            os.close(descriptor)

    # ---------------------------------------------------------------------------------------- writing
    def begin(self, started: datetime) -> Partial:
        """Create the partial directory for a run started at `started` (the lock must be held)."""
        self.root.mkdir(parents=True, exist_ok=True)
        base = set_name_for(started)
        name, counter = base, 1
        while (self.root / name).exists() or (self.root / f"{PARTIAL_PREFIX}{name}").exists():
            counter += 1
            name = f"{base}-{counter}"
        path = self.root / f"{PARTIAL_PREFIX}{name}"
        path.mkdir()
        marker = {"name": name, "pid": os.getpid(), "started_at": iso(started)}
        (path / RUN_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        fsync_dir(self.root)
        return Partial(name, path)

    def begin_named(self, name: str) -> Partial:
        """The partial directory of a set that already has its name (a download from the bucket); a partial one
        an earlier download left is taken up again, so what it holds need not be fetched twice."""
        if not SET_NAME.match(name):
            raise LookupError(f"{name!r} is not a backup set name (like 20250101T235900Z)")
        if (self.root / name).exists():
            raise FileExistsError(f"{self.root / name} exists already")
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{PARTIAL_PREFIX}{name}"
        if not (path / RUN_MARKER).is_file():
            path.mkdir(exist_ok=True)
            marker = {"name": name, "pid": os.getpid(), "started_at": iso(utc_now()), "download": True}
            (path / RUN_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
            fsync_dir(self.root)
        return Partial(name, path)

    def finalize(self, partial: Partial, manifest: SetManifest) -> BackupSet:
        """Write the manifest last, then give the directory its final name in one rename."""
        write_json_atomic(partial.path / MANIFEST_NAME, manifest.to_json())
        (partial.path / RUN_MARKER).unlink()
        fsync_dir(partial.path)
        final = self.root / partial.name
        os.rename(partial.path, final)
        fsync_dir(self.root)
        return self.get(partial.name)

    def discard(self, partial: Partial) -> None:
        shutil.rmtree(partial.path, ignore_errors=True)

    def record_verification(self, backup_set: BackupSet, ok: bool, problems: list[str]) -> None:
        body = {"verified_at": iso(utc_now()), "ok": ok, "problems": problems}
        write_json_atomic(backup_set.path / VERIFICATION_NAME, body)
        backup_set.verification = body

    # ---------------------------------------------------------------------------------------- reading
    def partials(self) -> list[Partial]:
        """Directories left by runs that did not finish (or are running), that this service made."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(PARTIAL_PREFIX) and (entry / RUN_MARKER).is_file():
                found.append(Partial(entry.name[len(PARTIAL_PREFIX):], entry))
        return found

    def sets(self) -> list[BackupSet]:
        """Complete-looking sets this service made, oldest first. Anything else in the folder is ignored."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in self.root.iterdir():
            if not (entry.is_dir() and SET_NAME.match(entry.name) and (entry / MANIFEST_NAME).is_file()):
                continue
            if (entry / RUN_MARKER).exists():
                continue
            try:
                found.append(self._load(entry))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not ours, or damaged beyond reading: `verify` reports it, retention leaves it alone
        return sorted(found, key=lambda item: (item.finished, item.name))

    def _load(self, path: Path) -> BackupSet:
        manifest = SetManifest.read(path)
        verification = None
        if (path / VERIFICATION_NAME).is_file():
            try:
                verification = json.loads((path / VERIFICATION_NAME).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                verification = {"ok": False, "problems": ["verification.json is unreadable"]}
        return BackupSet(path.name, path, manifest, verification)

    def get(self, name: str) -> BackupSet:
        """The set called `name`; a clear error when it is missing, incomplete or not ours."""
        if not SET_NAME.match(name):
            raise LookupError(f"{name!r} is not a backup set name (like 20250101T235900Z); run `backup list`")
        path = self.root / name
        if not path.is_dir():
            if (self.root / f"{PARTIAL_PREFIX}{name}").is_dir():
                raise LookupError(f"set {name} is incomplete: its run was interrupted, so it cannot be used")
            raise LookupError(f"no backup set {name} in {self.root}; run `backup list`")
        if not (path / MANIFEST_NAME).is_file():
            raise LookupError(f"{path} has no {MANIFEST_NAME}: it is not a complete backup set")
        try:
            return self._load(path)
        except (ValueError, KeyError, TypeError) as exc:
            raise LookupError(f"{path / MANIFEST_NAME} is not a readable backup manifest: {exc}") from exc

    def remove(self, backup_set: BackupSet) -> None:
        """Delete a set this service made (its manifest proves it); never anything else."""
        SetManifest.read(backup_set.path)  # raises unless it is one of ours
        trash = self.root / f".removing-{backup_set.name}"
        os.rename(backup_set.path, trash)  # it stops looking like a set before any file goes
        shutil.rmtree(trash)

    def remove_stale(self) -> list[str]:
        """Remove partial and half-removed directories of earlier runs (call with the lock held)."""
        removed = []
        for partial in self.partials():
            shutil.rmtree(partial.path, ignore_errors=True)
            removed.append(partial.path.name)
        for entry in self.root.glob(".removing-*"):
            if entry.is_dir() and SET_NAME.match(entry.name[len(".removing-"):]):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed
