"""An ordered on-disk queue of write batches that could not be delivered, one folder per sink.

A batch whose retries all failed is written here (gzip'd line protocol, exactly the request body) instead of
being dropped, and replayed oldest first once the database answers again. Files are written atomically
(temporary name, fsync, rename, fsync of the folder), so a crash leaves either the whole batch or nothing;
leftover temporary files are removed at start. Re-sending a batch that did land is harmless: InfluxDB keeps one
point per series and timestamp.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Spool", "SpoolEntry", "SpoolFullError"]

_NAME = re.compile(r"^(\d{16})\.spool$")


class SpoolFullError(RuntimeError):
    """The spool reached its size limit; the caller must stop reading input rather than drop data."""


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    sequence: int
    size: int
    rows: int


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int = 1 << 30):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        self._entries = sorted(self._scan(), key=lambda entry: entry.sequence)
        self._next = (self._entries[-1].sequence + 1) if self._entries else 1

    def _scan(self) -> list[SpoolEntry]:
        found = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match:
                with open(path, "rb") as handle:
                    try:
                        rows = int(json.loads(handle.readline()).get("rows", 0))
                    except ValueError:
                        rows = 0
                found.append(SpoolEntry(path, int(match.group(1)), path.stat().st_size, rows))
        return found

    @property
    def entries(self) -> list[SpoolEntry]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return sum(entry.size for entry in self._entries)

    @property
    def rows(self) -> int:
        return sum(entry.rows for entry in self._entries)

    def put(self, payload: bytes, *, database: str, rows: int) -> SpoolEntry:
        """Append one gzip'd batch for `database`; raise SpoolFullError when it would pass the limit."""
        header = json.dumps({"database": database, "rows": rows, "encoding": "gzip",
                             "spooled_at": datetime.now(UTC).isoformat(timespec="seconds")}).encode() + b"\n"
        size = len(header) + len(payload)
        if self.size_bytes + size > self.max_bytes:
            raise SpoolFullError(f"spool {self.directory} is full ({self.size_bytes} of {self.max_bytes} bytes); "
                                 "raise INGEST_SPOOL_MAX_BYTES or bring the database back")
        sequence = self._next
        final = self.directory / f"{sequence:016d}.spool"
        temporary = self.directory / f".{sequence:016d}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(header)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        _fsync_dir(self.directory)
        entry = SpoolEntry(final, sequence, size, rows)
        self._entries.append(entry)
        self._next += 1
        return entry

    @staticmethod
    def read(entry: SpoolEntry) -> tuple[dict, bytes]:
        """The batch's header (database, rows) and its gzip'd body."""
        with open(entry.path, "rb") as handle:
            header = json.loads(handle.readline())
            return header, handle.read()

    def remove(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)
        self._entries = [item for item in self._entries if item.sequence != entry.sequence]


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
