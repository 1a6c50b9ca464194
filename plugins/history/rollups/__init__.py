"""
{
    "plugin_type": ["scheduled", "onwrite"],
    "scheduled_args_config": [
        {
            "name": "tables",
            "example": "sensors weather",
            "description": "Tables of the trigger's database to roll up (space or comma separated).",
            "required": true
        },
        {
            "name": "levels",
            "example": "1h 1d",
            "description": "Bucket widths, finest first, each a multiple of the one before (default 1h 1d).",
            "required": false
        },
        {
            "name": "max_files",
            "example": "300",
            "description": "About how many Parquet files of its source one level of one table reads per run.",
            "required": false
        },
        {
            "name": "settle",
            "example": "2m",
            "description": "A bucket is computed this long after it ends (later data for it is marked).",
            "required": false
        },
        {
            "name": "kind",
            "example": "tracks",
            "description": "numeric (default) or tracks (summaries of tracking fixes: stacklib/tracks.py).",
            "required": false
        },
        {
            "name": "by",
            "example": "species individual",
            "description": "tracks only: the tags a track is kept per (default: every tag).",
            "required": false
        },
        {
            "name": "copy_to",
            "example": "history",
            "description": "Also write every rollup row into this database (kept when this one's retention expires).",
            "required": false
        }
    ],
    "onwrite_args_config": [
        {
            "name": "tables",
            "example": "sensors weather",
            "description": "The same tables as the scheduled trigger: writes into buckets it passed are marked.",
            "required": true
        },
        {
            "name": "levels",
            "example": "1h 1d",
            "description": "The same levels as the scheduled trigger.",
            "required": false
        },
        {
            "name": "max_files",
            "example": "300",
            "description": "Accepted so both triggers take the same arguments; unused here.",
            "required": false
        },
        {
            "name": "settle",
            "example": "2m",
            "description": "The same settle time as the scheduled trigger.",
            "required": false
        },
        {
            "name": "kind",
            "example": "tracks",
            "description": "Accepted so both triggers take the same arguments; unused here.",
            "required": false
        },
        {
            "name": "by",
            "example": "species individual",
            "description": "Accepted so both triggers take the same arguments; unused here.",
            "required": false
        },
        {
            "name": "copy_to",
            "example": "history",
            "description": "Accepted so both triggers take the same arguments; unused here.",
            "required": false
        }
    ]
}
"""

# Rollups: `<table>_1h` and `<table>_1d` beside each table, so that a panel over months reads a few hundred
# Parquet files instead of tens of thousands (Core never compacts: one file per table per 10 minutes of data).
# The scheduled trigger computes each completed bucket once, in bounded steps (a run reads about `max_files` files
# of each level's source, however old the table); the write trigger marks buckets that data arrives for after they
# were computed (late readings, bulk loads of history), and the next run computes them again. See levels.py,
# queries.py and state.py.

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# The engine imports this folder as a top-level package and pops sys.path[0] right after: append the plugin
# directory so the shared `stacklib` resolves.
_PLUGIN_DIR = str(Path(__file__).resolve().parents[2])
if _PLUGIN_DIR not in sys.path:
    sys.path.append(_PLUGIN_DIR)

from stacklib.args import ArgumentError, Param, choice, duration_ns, identifier, integer, parse  # noqa: E402
from stacklib.lines import PointWriter  # noqa: E402
from stacklib.runlog import RunLog  # noqa: E402
from stacklib.sql import (  # noqa: E402
    column_types,
    file_spans,
    quote,
    split_windows,
    table_span,
    tag_columns,
    timestamp_literal,
)
from stacklib.stats import bucket_ranges, bucket_start  # noqa: E402
from stacklib.tracks import TRACK_COLUMNS  # noqa: E402

from .levels import Level, chain  # noqa: E402
from .queries import aggregate_sql, bucket_sql, fields_of, points, track_points, track_sql  # noqa: E402
from .state import MARKS, STATE, Cursor, read_cursor, read_marks  # noqa: E402

PLUGIN = "rollups"
# Marks are read once they are this old: a mark lands a moment after it is stamped (the write trigger's lines are
# written when it returns), and a run must not step past one still on its way.
MARK_SETTLE_NS = 30 * 10**9
# The columns a tracks level reads: raw fixes, or the finer level's summaries.
TRACK_SOURCE = {True: ("lat", "lon", "outlier", "visible"), False: tuple(name for name, _ in TRACK_COLUMNS)}
_LEVEL_NAMES = {"m": 60, "h": 3_600, "d": 86_400, "w": 7 * 86_400}


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part for part in text.replace(",", " ").split() if part)
    if not names:
        raise ValueError("must name at least one table")
    return tuple(identifier(name) for name in names)


def _levels(text: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for name in text.replace(",", " ").split():
        unit = _LEVEL_NAMES.get(name[-1:])
        if unit is None or not name[:-1].isdigit() or int(name[:-1]) <= 0:
            raise ValueError(f"{name!r} is not a level like 1h or 1d (m, h, d, w)")
        width = int(name[:-1]) * unit * 10**9
        if out and width % out[-1][1]:
            raise ValueError(f"{name} is not a multiple of {out[-1][0]}")
        out.append((name, width))
    if not out:
        raise ValueError("must name at least one level")
    return tuple(out)


PARAMS = (
    Param("tables", _names),
    Param("levels", _levels, default=(("1h", 3_600 * 10**9), ("1d", 86_400 * 10**9))),
    Param("max_files", integer(1, 100_000), default=300),
    Param("settle", duration_ns, default=120 * 10**9),
    Param("kind", choice("numeric", "tracks"), default="numeric"),
    Param("by", _names, default=()),
    Param("copy_to", identifier, default=None),
)


def _when(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Step:
    """One level of one table in one run: which buckets it computes and what it writes."""

    def __init__(self, influxdb3_local, writers: tuple[PointWriter, ...], level: Level, config: dict, now_ns: int,
                 tables: set[str]):
        self.api, self.writers, self.level, self.config = influxdb3_local, writers, level, config
        self.now_ns, self.tables = now_ns, tables
        self.marked: list[int] = []

    def plan(self, cursor: Cursor, ready_until: int | None) -> tuple[list[int], Cursor]:
        """The buckets to compute, newly completed and marked ones, and the cursor after them. While both wait,
        each gets at least half of the run's budget: a cursor catching up on a long history does not hold back
        late data, nor a large load of marks the live buckets."""
        width = self.level.width_ns
        complete = bucket_start(self.now_ns - self.config["settle"], width)
        if ready_until is not None:  # a coarser level waits for the finer level's buckets under it
            complete = min(complete, bucket_start(ready_until, width))
        budget = self.level.buckets_per_run(self.config["max_files"])
        marks = (read_marks(self.api, self.level.base, self.level.name, cursor.marks_ns,
                            self.now_ns - MARK_SETTLE_NS) if MARKS in self.tables else [])
        waiting = len({bucket for _, bucket in marks if bucket < cursor.done_ns})
        pending = max(0, (complete - cursor.done_ns) // width)
        reserve = min(waiting, (budget + 1) // 2)  # marks waiting get at least half the budget
        live = min(pending, budget - reserve)
        if live < pending:  # the files the marks may read are not the cursor's
            files = max(1, self.config["max_files"] - reserve * width // self.level.input_span_ns)
            live = min(pending, max(live, (self._files_end(cursor.done_ns, complete, files) - cursor.done_ns) // width))
        live_end = cursor.done_ns + live * width
        chosen: list[int] = []
        marks_ns = cursor.marks_ns
        for made, bucket in marks:
            if bucket < cursor.done_ns and bucket not in chosen:
                if len(chosen) >= budget - min(live, budget - reserve):
                    break
                chosen.append(bucket)
            marks_ns = made  # a mark at or after the cursor: the cursor's own run computes that bucket
        self.marked = chosen
        return list(range(cursor.done_ns, live_end, width)) + chosen, Cursor(live_end, marks_ns)

    def _files_end(self, start: int, complete: int, files: int) -> int:
        """Where the buckets from `start` reach `files` of the source's Parquet files as Core lists them: past
        the budget above when the source is sparse (a daily series has a file a day, not one per 10 minutes; so
        does the hourly rollup of one), so a history loaded in bulk is rolled up in a few runs, not thousands.
        Past its newest file, rows Core still buffers (a load it has not persisted yet) are in no file, so no file
        count bounds them, and one run would write a bucket for each (every hour of a buffered year, all in the
        snapshot that persists the load: the stall a history load in steps avoids, ingest/pacing.py): there the run
        takes the buffer's first `files` non-empty buckets (a query no file overlaps reads the buffer alone)."""
        width = self.level.width_ns
        spans = file_spans(self.api, self.level.source)
        windows = split_windows(spans, files, start, complete - 1)
        if len(windows) > 1:
            return max(start, bucket_start(windows[1][0], width))
        newest = max((high for low, high in spans if low < complete and high >= start), default=None)
        if newest is not None:
            return max(start, min(complete, bucket_start(newest, width) + width))
        rows = self.api.query(
            f"SELECT {bucket_sql(width)} AS bucket FROM {quote(self.level.source)} "
            f"WHERE time >= {timestamp_literal(start)} AND time < {timestamp_literal(complete)} "
            f"GROUP BY 1 ORDER BY 1 LIMIT {files + 1}")
        if len(rows) <= files:
            return complete
        return max(start, int(rows[files]["bucket"]))

    def compute(self, buckets: list[int]) -> int:
        """Query each span of adjacent buckets and queue its points; the number of points."""
        columns = column_types(self.api, self.level.source)
        tags, fields = tag_columns(columns), fields_of(self.level, columns)
        tracks = self.config["kind"] == "tracks"
        if tracks:
            missing = [name for name in (*self.config["by"], *TRACK_SOURCE[self.level.from_raw])
                       if name not in columns]
            if missing:
                raise RuntimeError(f"{self.level.source} has no column {', '.join(missing)} (kind tracks)")
            tags = list(self.config["by"]) or tags
        written = 0
        for start, end in bucket_ranges(buckets, self.level.width_ns):
            sql = (track_sql(self.level, tags, start, end) if tracks
                   else aggregate_sql(self.level, tags, fields, start, end))
            try:
                rows = self.api.query(sql)
            except Exception as exc:
                raise RuntimeError(f"{self.level.source} {_when(start)}..{_when(end)}: {exc}") from exc
            for labels, values, bucket in (track_points(rows, tags) if tracks else points(rows, tags, fields)):
                added = [writer.add(self.level.output, labels, values, bucket) for writer in self.writers]
                written += added[0]
        return written


def _roll(influxdb3_local, log: RunLog, writers: tuple[PointWriter, ...], level: Level, config: dict, now_ns: int,
          tables: set[str], ready_until: int | None, next_level: Level | None) -> int | None:
    """Compute one level of one table; its `done_ns` as it stood before this run (what the next level may read),
    or None when the table has no data yet. `tables`: the database's tables as the run began (what it writes
    lands only after it returns). `writers`: the trigger's database first, then `copy_to`'s."""
    writer = writers[0]
    step = _Step(influxdb3_local, writers, level, config, now_ns, tables)
    key = cursor_key(level.base, config["copy_to"])
    cursor = read_cursor(influxdb3_local, key, level.name, now_ns) if STATE in tables else None
    if cursor is None:
        span = table_span(influxdb3_local, level.source) if level.source in tables else None
        if span is None:
            return None
        cursor = Cursor(bucket_start(span[0], level.width_ns), 0)
    started = time.perf_counter()
    buckets, after = step.plan(cursor, ready_until)
    if not buckets and after == cursor:
        return cursor.done_ns
    points_written = step.compute(buckets) if buckets else 0
    if next_level is not None:
        for index, bucket in enumerate(sorted({bucket_start(b, next_level.width_ns) for b in step.marked})):
            writer.add(MARKS, {"source": level.base, "level": next_level.name}, {"bucket_ns": bucket}, now_ns + index)
    writer.add(STATE, {"source": key, "level": level.name},
               {"done_ns": after.done_ns, "marks_ns": after.marks_ns}, now_ns)
    log.info("rolled up", table=level.source, level=level.name, buckets=len(buckets), marked=len(step.marked),
             points=points_written, through=_when(after.done_ns), ms=round((time.perf_counter() - started) * 1000, 1))
    return cursor.done_ns


def cursor_key(table: str, copy_to: str | None) -> str:
    """The `source` of a table's cursor. A trigger that copies its rows elsewhere keeps its own: added to a stack
    whose rollups exist, it starts from the table's first bucket, so the copy gets the history too."""
    return table if copy_to is None else f"{table}@{copy_to}"


def _configured(influxdb3_local, args) -> tuple[RunLog, dict | None]:
    """The run's log and its checked arguments (None, after one error line naming each problem)."""
    log = RunLog(influxdb3_local, PLUGIN)
    try:
        return log, parse(args, PARAMS)
    except ArgumentError as exc:
        log.error(str(exc))
        return log, None


def process_scheduled_call(influxdb3_local, call_time, args=None):
    log, config = _configured(influxdb3_local, args)
    if config is None:
        return
    moment = call_time if call_time.tzinfo else call_time.replace(tzinfo=UTC)
    now_ns = int(moment.timestamp()) * 10**9
    writer = PointWriter(influxdb3_local)
    writers = (writer, *((PointWriter(influxdb3_local, config["copy_to"]),) if config["copy_to"] else ()))
    tables = {str(row["table_name"]) for row in influxdb3_local.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox'")}
    for table in config["tables"]:
        levels = chain(table, config["levels"])
        ready_until = None
        for index, level in enumerate(levels):
            following = levels[index + 1] if index + 1 < len(levels) else None
            try:
                ready_until = _roll(influxdb3_local, log, writers, level, config, now_ns, tables, ready_until,
                                    following)
            except Exception as exc:  # one table's failure must not stop the others; its cursor stays put
                log.error(f"rollup failed, the next run computes it again: {exc}", table=table, level=level.name)
                break
            if ready_until is None:
                log.info("no data yet", table=level.source)
                break
    if writer.skipped_total:
        log.warn("rollup points skipped", points=writer.skipped_total, reasons=writer.skipped_summary())


def process_writes(influxdb3_local, table_batches, args=None):
    """Mark the buckets that written rows fall in when the scheduled run may have computed them already."""
    log, config = _configured(influxdb3_local, args)
    if config is None:
        return
    now_ns = time.time_ns()
    name, width = config["levels"][0]
    # Buckets that ended more than half the settle time ago may already be computed: a write into them is marked.
    passed = bucket_start(now_ns - config["settle"] // 2, width)
    writer = PointWriter(influxdb3_local)
    made = 0
    for batch in table_batches or []:
        table = str(batch.get("table_name", ""))
        if table not in config["tables"]:
            continue
        buckets = sorted({bucket_start(int(row["time"]), width) for row in batch.get("rows") or []
                          if isinstance(row.get("time"), int) and int(row["time"]) < passed})
        for bucket in buckets:
            made += writer.add(MARKS, {"source": table, "level": name}, {"bucket_ns": bucket}, now_ns + made)
        if buckets:
            log.info("late or historical rows: buckets marked for the next rollup run", table=table, level=name,
                     buckets=len(buckets), first=_when(buckets[0]), last=_when(buckets[-1]))
