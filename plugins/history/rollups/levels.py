"""Rollup levels and the buckets they cut time into.

Level 0 reads the raw table; each level after it reads the table of the level before (`sensors_1h` for
`sensors_1d`), so a day is 24 hourly rows, not a day of raw files. Buckets are aligned to the Unix epoch (UTC
days), as `date_bin(..., TIMESTAMP '1970-01-01T00:00:00Z')` cuts them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RAW_FILE_SPAN_NS", "Level", "chain"]

# Core persists one Parquet file per table per 10-minute window of data time (gen1): what one raw file spans.
RAW_FILE_SPAN_NS = 600 * 10**9


@dataclass(frozen=True)
class Level:
    """One rollup level of a table: its bucket width, the table it reads and the table it writes."""

    name: str  # "1h"
    width_ns: int
    source: str  # the raw table (level 0) or the level before's output
    output: str  # <table>_<name>
    base: str  # the raw table's name: the key of its state and marks
    input_span_ns: int  # how much time one Parquet file of `source` holds

    @property
    def from_raw(self) -> bool:
        return self.source == self.base

    def buckets_per_run(self, max_files: int) -> int:
        """Output buckets one run may compute so that it reads at most about `max_files` files of its source."""
        return max(1, max_files * self.input_span_ns // self.width_ns)


def chain(table: str, levels: tuple[tuple[str, int], ...]) -> list[Level]:
    """The levels of `table`, each reading the one before (levels sorted by width, each a multiple of the last)."""
    out: list[Level] = []
    source, span = table, RAW_FILE_SPAN_NS
    for name, width in levels:
        out.append(Level(name, width, source, f"{table}_{name}", table, span))
        source, span = f"{table}_{name}", width
    return out
