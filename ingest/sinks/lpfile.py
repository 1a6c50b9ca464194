"""`--lp-out FILE`: the line protocol goes to a file (gzip'd when it ends in `.gz`, stdout for `-`) instead of
a database, ready for `influx write` / `influxdb3 write`, and for looking at exactly what would be sent."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import BinaryIO

from ingest.sinks import Batch, SinkCounters

__all__ = ["LineProtocolFile"]


class LineProtocolFile:
    name = "lp-file"

    def __init__(self, target: str):
        self.target = target
        self.counters = SinkCounters()
        self.spool = None
        self._handle: BinaryIO
        if target == "-":
            self._handle, self._owned = sys.stdout.buffer, False
        else:
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            opener = gzip.open if path.suffix == ".gz" else open
            self._handle = opener(path, "wb")
            self._owned = True

    def deliver(self, batch: Batch) -> None:
        self._handle.write(batch.raw)
        self.counters.written += batch.rows
        self.counters.batches += 1

    def settle(self) -> None:
        """Nothing is ever in flight: every batch is written when delivered."""

    def drain(self, *, force: bool = False) -> bool:
        return True

    def close(self) -> None:
        self._handle.flush()
        if self._owned:
            self._handle.close()
