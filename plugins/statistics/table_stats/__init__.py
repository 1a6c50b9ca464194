"""
{
    "plugin_type": ["onwrite"],
    "onwrite_args_config": [
        {
            "name": "bucket",
            "example": "1h",
            "description": "Time bucket (30m, 1h, 10d): one row per numeric field per bucket. Default: whole table.",
            "required": false
        },
        {
            "name": "target_database",
            "example": "forecast",
            "description": "Database to write analytics_<table> into. Defaults to the trigger's database.",
            "required": false
        },
        {
            "name": "fields",
            "example": "temperature,humidity",
            "description": "Comma-separated numeric fields to summarize. Defaults to every numeric field.",
            "required": false
        },
        {
            "name": "resync",
            "example": "1d",
            "description": "Whole-table mode: lifetime of the running state before a rebuild from the table.",
            "required": false
        },
        {
            "name": "max_files",
            "example": "400",
            "description": "Most Parquet files one query of the table opens: reads are cut into time windows.",
            "required": false
        }
    ]
}
"""

# Table statistics on write: for each numeric field of the written table, count, min, max, mean, median, mode
# and 95th percentile into analytics_<table> (tags: field, bucket), and the latest values into the engine's
# global cache for the analytics API. See buckets.py and running.py for why a flush never re-reads the table.

import sys
import time
from pathlib import Path

# The engine imports this folder as a top-level package with only plugins/statistics on sys.path and pops
# sys.path[0] right after: append (never insert) the plugin directory so the shared `stacklib` resolves.
_PLUGIN_DIR = str(Path(__file__).resolve().parents[2])
if _PLUGIN_DIR not in sys.path:
    sys.path.append(_PLUGIN_DIR)

from stacklib import analytics  # noqa: E402
from stacklib.args import ArgumentError, Param, database_name, duration_ns, identifier, integer, parse  # noqa: E402
from stacklib.lines import PointWriter  # noqa: E402
from stacklib.runlog import RunLog  # noqa: E402
from stacklib.sql import MAX_FILES_PER_QUERY, column_types, tag_columns  # noqa: E402
from stacklib.tables import ANALYTICS_PREFIX, WHOLE_TABLE_BUCKET, analytics_table  # noqa: E402

from . import buckets, running  # noqa: E402
from .batch import classify  # noqa: E402

PLUGIN = "table_stats"
_SCHEMA_TTL_SECONDS = 300.0


def _field_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.replace(" ", ",").split(",") if part.strip())
    if not names:
        raise ValueError("must name at least one field")
    return tuple(identifier(name) for name in names)


def _bucket(text: str) -> tuple[str, int]:
    return text, duration_ns(text)


PARAMS = (
    Param("bucket", _bucket, default=None),
    Param("target_database", database_name, default=None),
    Param("fields", _field_list, default=None),
    Param("resync", duration_ns, default=86400 * 10**9),
    Param("max_files", integer(1, 100_000), default=MAX_FILES_PER_QUERY),
)


def _tags_of(influxdb3_local, table: str, columns: set[str]) -> list[str]:
    """The table's tag columns, cached per trigger; re-read when the batch shows a column not seen yet."""
    key = f"{PLUGIN}.schema:{table}"
    types = influxdb3_local.cache.get(key)
    if types is None or not columns <= set(types):
        types = column_types(influxdb3_local, table)
        influxdb3_local.cache.put(key, types, ttl=_SCHEMA_TTL_SECONDS)
    return tag_columns(types)


def _summarize_table(influxdb3_local, log: RunLog, writer: PointWriter, config: dict, table: str,
                     rows: list) -> int:
    """Statistics rows written for one table batch."""
    if not rows:
        log.info("empty batch: nothing to summarize", table=table)
        return 0
    tags = _tags_of(influxdb3_local, table, {name for row in rows for name in row} - {"time"})
    columns = classify(rows, tags)
    if columns.bad_time:
        log.warn("rows without an integer time skipped", table=table, rows=columns.bad_time)
    if columns.numbers_as_text:
        log.warn("fields hold numbers stored as text; write them as numbers to get statistics",
                 table=table, fields=",".join(columns.numbers_as_text))
    fields = columns.numeric
    if config["fields"]:
        fields = [name for name in fields if name in config["fields"]]
    if not fields or not columns.rows:
        log.info("no numeric field to summarize in this batch", table=table,
                 columns=",".join(columns.numbers_as_text + columns.other) or "none")
        return 0
    target = analytics_table(table).name
    latest: dict[str, tuple[int, object]] = {}
    written = 0
    if config["bucket"]:
        label, width = config["bucket"]
        recomputed = buckets.recompute(influxdb3_local, table, tags, fields, width, columns.rows, config["max_files"])
        for field, per_bucket in recomputed.items():
            for start, stats in per_bucket.items():
                written += writer.add(target, {"field": field, "bucket": label}, stats.as_fields(), start)
            newest = max(per_bucket)
            latest[field] = (newest, per_bucket[newest])
    else:
        label = WHOLE_TABLE_BUCKET
        stamp = time.time_ns() // (60 * 10**9) * (60 * 10**9)
        results, rebuilt = running.update(influxdb3_local, table, tags, fields, columns.rows,
                                          config["resync"] / 10**9, config["max_files"])
        if rebuilt:
            log.info("running statistics rebuilt from the table", table=table, fields=",".join(rebuilt))
        for field, stats in results.items():
            written += writer.add(target, {"field": field, "bucket": label}, stats.as_fields(), stamp)
            latest[field] = (stamp, stats)
    if latest:
        analytics.publish(influxdb3_local.cache, table, label, latest)
    return written


def process_writes(influxdb3_local, table_batches, args=None):
    log = RunLog(influxdb3_local, PLUGIN)
    try:
        config = parse(args, PARAMS)
    except ArgumentError as exc:
        log.error(str(exc))
        return
    if not table_batches:
        # A `table:` trigger fires on every WAL flush of its database, with [] when its table was not written
        # (influxdb3_processing_engine, v3.10.1): nothing to do, and nothing worth a log line every second.
        return
    writer = PointWriter(influxdb3_local, config["target_database"])
    started = time.perf_counter()
    summarized = 0
    for batch in table_batches:
        table = str(batch.get("table_name", ""))
        if table.startswith(ANALYTICS_PREFIX):
            continue  # our own output (an all_tables trigger would otherwise summarize its statistics)
        try:
            identifier(table)
        except ValueError:
            log.warn("table name is not an identifier; skipped", table=table)
            continue
        try:
            summarized += _summarize_table(influxdb3_local, log, writer, config, table, list(batch.get("rows") or []))
        except Exception as exc:  # one table's failure must not lose the other tables' statistics
            log.error(f"statistics failed: {type(exc).__name__}: {exc}", table=table)
    if writer.skipped_total:
        log.warn("statistics rows skipped", rows=writer.skipped_total, reasons=writer.skipped_summary())
    log.info("statistics written", rows=summarized, tables=len(table_batches),
             ms=round((time.perf_counter() - started) * 1000, 1))
