"""The manifest of a backup set: what each store produced, every file with its size and SHA-256.

A set directory is complete only when `manifest.json` is in it AND the directory carries its final name;
both happen last (see `sets`). The manifest is the contract `list`, `verify`, `restore` and retention read.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "FORMAT_VERSION", "FileEntry", "SetManifest", "StoreResult", "write_json_atomic"]

FORMAT = "influx-stack-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class FileEntry:
    """One stored file. `size`/`sha256` are of the bytes on disk; `plain_*` of the decoded content."""

    path: str
    store: str
    size: int
    sha256: str
    plain_size: int
    plain_sha256: str
    compression: str
    encrypted: bool


@dataclass
class StoreResult:
    status: str  # "ok" | "failed" | "skipped"
    duration_seconds: float = 0.0
    bytes: int = 0
    files: int = 0
    server_version: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class SetManifest:
    name: str
    started_at: str
    finished_at: str
    duration_seconds: float
    trigger: str
    timezone: str
    compression: str
    encrypted: bool
    stores: dict[str, StoreResult]
    files: list[FileEntry]
    producer: str = "influx-stack backup"
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def status(self) -> str:
        return "complete" if self.stores and all(result.ok for result in self.stores.values()) else "partial"

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    @property
    def finished(self) -> datetime:
        return parse_iso(self.finished_at)

    def files_of(self, store: str) -> list[FileEntry]:
        return [entry for entry in self.files if entry.store == store]

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["status"] = self.status
        body["bytes"] = self.bytes
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SetManifest:
        if body.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} manifest (format={body.get('format')!r})")
        if body.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported manifest format_version {body.get('format_version')!r}")
        stores = {name: StoreResult(**result) for name, result in body["stores"].items()}
        files = [FileEntry(**entry) for entry in body["files"]]
        keys = {"name", "started_at", "finished_at", "duration_seconds", "trigger", "timezone", "compression",
                "encrypted", "producer"}
        return cls(stores=stores, files=files, **{key: body[key] for key in keys})

    @classmethod
    def read(cls, directory: Path) -> SetManifest:
        return cls.from_json(json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8")))


def fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomic(path: Path, body: Any, *, mode: int = 0o660) -> None:
    """Write JSON to `path` via a temporary file, fsync and rename: readers see the old or the new file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(body, handle, indent=2, sort_keys=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_dir(path.parent)
