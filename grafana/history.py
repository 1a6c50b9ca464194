"""Range-aware sources: a panel reads raw rows for the newest part of its range and rollups for the rest.

InfluxDB 3 Core keeps one Parquet file per table per 10 minutes of data and a query opens every file its time
bounds select, so a panel over a year of a live table would open 52,560 files. The rollups plugin
(plugins/history/rollups) writes `<table>_1h`, `<table>_1d` and `<table>_7d` beside it (count, sum, min, max, last
per field and tag set, one row per bucket stamped with the bucket's start). `source()` is the FROM clause of a
panel: one UNION ALL of every tier, each bounded by time so that

- the coarsest tier is picked by the range's length (raw up to 2 days, 1 hour up to 31 days, 1 day up to 800 days,
  7 days beyond), so no scan opens more than about 800 files of one table at any range the picker offers;
- the finer tiers fill in what the coarser has not rolled up yet (buckets that ended less than `LAG` ago), down to
  raw rows for the newest hour: the newest data is always there, and every reading is counted once;
- every bound is a constant expression of Grafana's `$__timeFrom()`, `$__timeTo()` and `now()`. DataFusion folds
  it to a timestamp before the scan, and Core prunes files by it (measured on Core 3.6.0: a branch switched off by
  a constant-false *guard* still counts its files against `--query-file-limit`; one whose time bounds fold to a
  narrow interval counts only the files there). So the tiers are switched by their bounds, never by a guard.

Each tier's rows carry, per field f, `f_count`, `f_sum`, `f_min`, `f_max` and `f_last` (a raw row is a bucket of
one reading); the aggregates below combine them exactly: a mean is the sum of sums over the sum of counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from plugins.stacklib.tracks import TRACK_COLUMNS, fix_columns

__all__ = [
    "LAG_S", "ROLLUP_LEVELS", "TIERS", "Tier", "coarsest", "count", "last", "maximum", "mean", "minimum",
    "reads", "rolled_up", "source", "tier_bounds", "track_source",
]

HOUR, DAY = 3_600, 86_400
# A bucket is read from its rollup once it ended this long ago: the plugin runs every minute and computes a bucket
# 2 minutes (its `settle`) after it ends; the daily level follows its last hour a run later.
LAG_S = 15 * 60
EPOCH = "TIMESTAMP '1970-01-01T00:00:00Z'"
FROM, TO = "$__timeFrom()", "$__timeTo()"
NANOSECOND = "INTERVAL '1 nanosecond'"


@dataclass(frozen=True)
class Tier:
    """One source of a table's data: raw (suffix "") or a rollup level."""

    suffix: str  # "" for the raw table, "_1h" for its hourly rollup
    width_s: int  # bucket width (raw: one Parquet file's span of data time)
    coarsest_up_to_s: int | None  # the longest range for which this is the coarsest tier read (None: any)

    @property
    def level(self) -> str:
        return self.suffix.removeprefix("_")


TIERS = (Tier("", 600, 2 * DAY), Tier("_1h", HOUR, 31 * DAY), Tier("_1d", DAY, 800 * DAY), Tier("_7d", 7 * DAY, None))
# The `levels` argument of the rollup triggers in plugins/provision.yaml (a test checks it is the same).
ROLLUP_LEVELS = " ".join(tier.level for tier in TIERS[1:])
AGGREGATES = ("count", "sum", "min", "max", "last")
PROVISION = Path(__file__).resolve().parent.parent / "plugins" / "provision.yaml"


@cache
def rolled_up(kind: str = "numeric") -> frozenset[str]:
    """The tables the rollup triggers of plugins/provision.yaml roll up as `kind` (numeric: `source()`, tracks:
    `track_source()`): the only ones those may read."""
    triggers = yaml.safe_load(PROVISION.read_text(encoding="utf-8"))["triggers"]
    return frozenset(name for trigger in triggers if trigger["plugin"] == "history/rollups"
                     and trigger["arguments"].get("kind", "numeric") == kind
                     for name in str(trigger["arguments"]["tables"]).split())


def coarsest(range_s: float) -> Tier:
    """The coarsest tier a range of this length reads (what bounds its points and its files)."""
    return next(tier for tier in TIERS if tier.coarsest_up_to_s is None or range_s <= tier.coarsest_up_to_s)


def _interval(seconds: int) -> str:
    return f"INTERVAL '{seconds} seconds'"


def _floor(tier: Tier, moment: str) -> str:
    return f"date_bin({_interval(tier.width_s)}, {moment}, {EPOCH})"


def _longer_than(seconds: int) -> str:
    """The range is longer than `seconds` (timestamps compared, so it folds on every DataFusion version)."""
    return f"{FROM} < {TO} - {_interval(seconds)}"


def _done(index: int) -> str:
    """Where tier `index`'s rows end (D): its rollup's edge (buckets that ended at least LAG_S ago), or the bucket
    the range ends in when that is earlier."""
    return _floor(TIERS[index], f"least(now() - {_interval(LAG_S)}, {TO})")


def _used(index: int) -> str:
    """Tier `index` is read: the range is longer than what the next finer tier serves alone."""
    return _longer_than(TIERS[index - 1].coarsest_up_to_s)


def reads(tier: Tier) -> str:
    """SQL that is true when the range reads `tier` (folds to a constant): e.g. to bin by its bucket."""
    return "true" if tier is TIERS[0] else _used(TIERS.index(tier))


def tier_bounds(index: int) -> tuple[str, str]:
    """SQL for the closed interval [lower, upper] of tier `index`'s rows; both fold to timestamps.

    A rollup tier i reads its buckets from S_i up to D_i (`_done`): S_i is the bucket the range starts in when i
    is the coarsest tier the range needs, D of the next coarser tier when that one is read too, and D_i itself
    (nothing) when the range is too short for tier i. Raw rows run from D_1 (or from the range's start when no
    rollup is read) to the range's end. So the tiers are disjoint and leave no gap. Core refuses a scan whose time
    filters do not intersect (influxdb3_write/src/lib.rs `ChunkFilter::new`, v3.6.0: "provided filters on time
    column did not produce a valid set of boundaries"), so a tier with nothing to read gets the one-nanosecond
    interval after S_i instead: rollup rows are stamped at bucket starts, never there."""
    if index == 0:
        return f"CASE WHEN {_used(1)} THEN greatest({FROM}, {_done(1)}) ELSE {FROM} END", TO
    first = _floor(TIERS[index], FROM)
    coarser = (f"WHEN {_used(index + 1)} THEN greatest({first}, {_done(index + 1)}) "
               if index + 1 < len(TIERS) else "")
    start, done = f"(CASE {coarser}WHEN {_used(index)} THEN {first} ELSE {_done(index)} END)", _done(index)
    return (f"CASE WHEN {start} < {done} THEN {start} ELSE {start} + {NANOSECOND} END",
            f"greatest({done} - {NANOSECOND}, {start} + {NANOSECOND})")


def _raw_columns(fields: Sequence[str]) -> list[str]:
    out = []
    for name in fields:
        value = f"CAST({name} AS DOUBLE)"
        out += [f"CASE WHEN {name} IS NULL THEN 0 ELSE 1 END AS {name}_count", f"{value} AS {name}_sum",
                f"{value} AS {name}_min", f"{value} AS {name}_max", f"{value} AS {name}_last"]
    return out


def _rollup_columns(fields: Sequence[str]) -> list[str]:
    return [f"{name}_{what}" for name in fields for what in AGGREGATES]


def source(table: str, tags: Sequence[str], fields: Sequence[str], where: str = "") -> str:
    """`(SELECT ... UNION ALL ...) AS <table>`: every tier of `table` within the panel's range, with the columns
    time, `tags` and f_count/f_sum/f_min/f_max/f_last of each of `fields`. `where` (tag conditions, e.g. the
    dashboard's selection) is added to every tier."""
    if table not in rolled_up():
        raise ValueError(f"{table} has no rollups: add it to a rollup trigger's tables in {PROVISION.name}")
    extra = f" AND {where}" if where else ""
    branches = []
    for index, tier in enumerate(TIERS):
        lower, upper = tier_bounds(index)
        columns = ["time", *tags, *(_raw_columns(fields) if index == 0 else _rollup_columns(fields))]
        branches.append(f"SELECT {', '.join(columns)} FROM {table}{tier.suffix}\n"
                        f"  WHERE time >= {lower} AND time <= {upper}{extra}")
    return "(" + "\n  UNION ALL\n".join(branches) + f") AS {table}"


def track_source(table: str, tags: Sequence[str], where: str = "") -> str:
    """`(SELECT ... UNION ALL ...) AS <table>`: the track summaries (plugins/stacklib/tracks.py) of `table` within
    the panel's range, tier by tier as `source()` reads them, a raw fix being the summary of itself. The columns:
    time, `tags` and TRACK_COLUMNS; a leg between two rows is not in them (`lag()` over the rows gives it)."""
    if table not in rolled_up("tracks"):
        raise ValueError(f"{table} has no track summaries: add it to a rollup trigger with kind: tracks in "
                         f"{PROVISION.name}")
    extra = f" AND {where}" if where else ""
    branches = []
    for index, tier in enumerate(TIERS):
        lower, upper = tier_bounds(index)
        columns = ["time", *tags, *(fix_columns() if index == 0 else [name for name, _ in TRACK_COLUMNS])]
        branches.append(f"SELECT {', '.join(columns)} FROM {table}{tier.suffix}\n"
                        f"  WHERE time >= {lower} AND time <= {upper}{extra}")
    return "(" + "\n  UNION ALL\n".join(branches) + f") AS {table}"


def mean(name: str) -> str:
    """The mean of every reading in the group (exact: sums over counts, not a mean of means)."""
    return f"sum({name}_sum) / nullif(sum({name}_count), 0)"


def count(name: str) -> str:
    return f"sum({name}_count)"


def minimum(name: str) -> str:
    return f"min({name}_min)"


def maximum(name: str) -> str:
    return f"max({name}_max)"


def last(name: str) -> str:
    """The newest value in the group (rollup rows are stamped at their bucket's start, before any raw row)."""
    return f"last_value({name}_last ORDER BY (coalesce({name}_count, 0) > 0), time)"
