"""Quarantine for input the app could not load: one JSON line per bad row, with where it came from and why.

The good rows of a file still load; the bad ones land here so nothing disappears silently. Batches the database
itself refused (HTTP 400/422) are kept too, as `.lp.gz` files beside the log, ready for `influx write` once the
cause is fixed.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["RejectsFile"]


class RejectsFile:
    """`<dir>/<source>-<UTC time>-<run id>.jsonl`, created on the first reject only."""

    def __init__(self, directory: Path, source: str, run_id: str):
        self.directory = Path(directory)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.stem = f"{_safe(source)}-{stamp}-{_safe(run_id)}"
        self.path = self.directory / f"{self.stem}.jsonl"
        self.count = 0
        self._refused = 0
        self._lock = threading.Lock()

    def add(self, *, input: str, line: int | None, reason: str, record: object = None) -> None:
        entry = {"input": input, "line": line, "reason": reason, "record": record}
        self._append(entry)
        self.count += 1

    def refused(self, *, sink: str, database: str, reason: str, body: bytes, rows: int) -> Path:
        """Keep a batch the database refused, with the server's reason; returns the saved body's path."""
        with self._lock:
            self._refused += 1
            target = self.directory / f"{self.stem}-refused-{_safe(sink)}-{self._refused:04d}.lp.gz"
        self.directory.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(body, compresslevel=6))
        self._append({"input": f"{sink}:{database}", "line": None, "reason": reason, "rows": rows,
                      "record": str(target)})
        return target

    def _append(self, entry: dict) -> None:
        text = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(text)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "input"
