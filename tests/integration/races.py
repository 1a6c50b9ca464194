"""A backup copied while a real Core snapshots under writes: the scaffolding both races share (a set taken from a
folder, test_backup.py, and from a bucket, test_object_store.py).

A writer sends a request at a time, each answered after Core's next WAL flush, 10 s of data time apart, so a
snapshot takes the WAL files of earlier minutes (gen1 1m, snapshot_tracker.rs) and leaves the current minute's,
as a default server leaves ~300 WAL files unsnapshotted. Core snapshots about every six WAL flushes and keeps one
snapshotted WAL file, so snapshots delete WAL files all through the copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from tests.integration.stacks import wait_for

__all__ = ["FAST_SNAPSHOTS", "assert_none_lost", "copy_under_snapshots"]

FAST_SNAPSHOTS = ("--wal-flush-interval", "100ms", "--wal-snapshot-size", "4", "--snapshotted-wal-files-to-keep", "1",
                  "--gen1-duration", "1m")
ROWS_PER_REQUEST = 20
T = TypeVar("T")


def copy_under_snapshots(post: Callable[[str], None], measurement: str, newest_snapshot: Callable[[], int],
                         copy: Callable[[], T]) -> tuple[list[int], T]:
    """Writes `measurement` rows through `post` (one request of line protocol, raising unless acknowledged) until
    three snapshots exist, then runs `copy` while the writes go on. Returns the values acknowledged before the
    copy began and what `copy` returned; fails when fewer than three snapshots ran during the copy (no race)."""
    acknowledged: list[int] = []
    stop = threading.Event()
    start = time.time_ns() - 86_400 * 10**9

    def write() -> None:
        batch = 0
        while not stop.is_set():
            values = range(batch * ROWS_PER_REQUEST, (batch + 1) * ROWS_PER_REQUEST)
            post("\n".join(f"{measurement},writer=w value={v}i {start + batch * 10 * 10**9 + v}" for v in values))
            acknowledged.extend(values)
            batch += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        wait_for("three snapshots", lambda: newest_snapshot() >= 3, timeout=60)
        before, snapshots_before = list(acknowledged), newest_snapshot()
        copied = copy()
        during = newest_snapshot() - snapshots_before
    finally:
        stop.set()
        writer.join(60)
    assert during >= 3, f"only {during} snapshot(s) during the copy: no race to survive"
    return before, copied


def assert_none_lost(before: list[int], restored: set[int]) -> None:
    """Every value acknowledged before the copy is in the restored server."""
    lost = sorted(set(before) - restored)
    assert not lost, f"{len(lost)} of {len(before)} rows acknowledged before the backup are missing: {lost[:10]}"
