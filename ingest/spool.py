"""An ordered on-disk queue of write batches that could not be delivered, one folder per sink.

A batch whose retries all failed is written here (gzip'd line protocol, exactly the request body) instead of
being dropped, and replayed oldest first once the database answers again. Files are written atomically
(temporary name, fsync, rename, fsync of the folder), so a crash leaves either the whole batch or nothing;
leftover temporary files are removed at start. File names start with the creation time in nanoseconds and carry
the process id, so the service and a command run beside it (`docker compose exec ingest python -m ingest ...`)
can share the folder: names never collide, and each sees the other's batches. Re-sending a batch that did land
is harmless: InfluxDB keeps one point per series and timestamp.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Spool", "SpoolEntry", "SpoolFullError"]

_NAME = re.compile(r"^\d{20}-\d+-\d{6}\.spool$")


class SpoolFullError(RuntimeError):
    """The spool reached its size limit; the caller must stop reading input rather than drop data."""


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    size: int
    rows: int


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int = 1 << 30):
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in self.directory.glob(f".*-{os.getpid()}-*.tmp"):
            leftover.unlink(missing_ok=True)
        for leftover in self.directory.glob(".*.tmp"):
            if not _alive(leftover):
                leftover.unlink(missing_ok=True)
        self._rows: dict[str, int] = {}
        self._cache: tuple[int, list[SpoolEntry]] | None = None
        self._last = 0
        self._counter = 0

    @property
    def entries(self) -> list[SpoolEntry]:
        """Every batch in the folder, oldest first. Another process may add or remove batches, so the folder is
        listed again whenever its modification time moved."""
        stamp = self.directory.stat().st_mtime_ns
        if self._cache is not None and self._cache[0] == stamp:
            return list(self._cache[1])
        found = []
        for path in sorted(self.directory.iterdir()):
            if not _NAME.match(path.name):
                continue
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # replayed by another process meanwhile
            found.append(SpoolEntry(path, size, self._rows_of(path)))
        self._cache = (stamp, found)
        return list(found)

    def _rows_of(self, path: Path) -> int:
        if path.name not in self._rows:
            try:
                with open(path, "rb") as handle:
                    self._rows[path.name] = int(json.loads(handle.readline()).get("rows", 0))
            except (OSError, ValueError):
                return 0
        return self._rows[path.name]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def size_bytes(self) -> int:
        return sum(entry.size for entry in self.entries)

    @property
    def rows(self) -> int:
        return sum(entry.rows for entry in self.entries)

    def put(self, payload: bytes, *, database: str, rows: int) -> SpoolEntry:
        """Append one gzip'd batch for `database`; raise SpoolFullError when it would pass the limit."""
        header = json.dumps({"database": database, "rows": rows, "encoding": "gzip",
                             "spooled_at": datetime.now(UTC).isoformat(timespec="seconds")}).encode() + b"\n"
        size = len(header) + len(payload)
        used = self.size_bytes
        if used + size > self.max_bytes:
            raise SpoolFullError(f"spool {self.directory} is full ({used} of {self.max_bytes} bytes); "
                                 "raise INGEST_SPOOL_MAX_BYTES or bring the database back")
        self._last = max(time.time_ns(), self._last + 1)
        self._counter = (self._counter + 1) % 1_000_000
        name = f"{self._last:020d}-{os.getpid()}-{self._counter:06d}"
        final = self.directory / f"{name}.spool"
        temporary = self.directory / f".{name}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(header)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
        _fsync_dir(self.directory)
        self._rows[final.name] = rows
        return SpoolEntry(final, size, rows)

    @staticmethod
    def read(entry: SpoolEntry) -> tuple[dict, bytes]:
        """The batch's header (database, rows) and its gzip'd body."""
        with open(entry.path, "rb") as handle:
            header = json.loads(handle.readline())
            return header, handle.read()

    def remove(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)
        self._rows.pop(entry.path.name, None)


def _alive(temporary: Path) -> bool:
    """Whether the process that is writing `temporary` still runs (its pid is in the name)."""
    try:
        pid = int(temporary.name.split("-")[1])
        os.kill(pid, 0)
    except (IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
