"""
{
    "plugin_type": ["http"],
    "http_args_config": [
        {
            "name": "max_age",
            "example": "1h",
            "description": "Answer from the cache only when it was updated within this time; else read the table.",
            "required": false
        }
    ]
}
"""

# The analytics API: GET /api/v3/engine/<path>?table=<table> answers the latest statistics of a table as JSON,
# from the engine's global cache (filled by the table_stats plugin on every write) or, when the cache has
# nothing (after a restart), from analytics_<table> in this trigger's database. Unknown table: 404 JSON.

import sys
from datetime import UTC, datetime
from pathlib import Path

# The engine imports this folder as a top-level package with only plugins/statistics on sys.path and pops
# sys.path[0] right after: append (never insert) the plugin directory so the shared `stacklib` resolves.
_PLUGIN_DIR = str(Path(__file__).resolve().parents[2])
if _PLUGIN_DIR not in sys.path:
    sys.path.append(_PLUGIN_DIR)

from stacklib import analytics  # noqa: E402
from stacklib.args import ArgumentError, Param, duration_ns, identifier, parse  # noqa: E402
from stacklib.runlog import RunLog  # noqa: E402
from stacklib.sql import file_windows, lookback_bounds, quote, table_exists, window_condition  # noqa: E402
from stacklib.tables import ANALYTICS_PREFIX, analytics_table  # noqa: E402
from stacklib.windows import over  # noqa: E402

PLUGIN = "analytics_api"
PARAMS = (Param("max_age", duration_ns, default=None),)
QUERY_PARAMS = (Param("table", identifier),)
_JSON = {"Content-Type": "application/json"}


def _fresh(entry: dict, max_age_ns: int | None) -> bool:
    if max_age_ns is None:
        return True
    updated = datetime.fromisoformat(entry["updated_at"].replace("Z", "+00:00"))
    return (datetime.now(UTC) - updated).total_seconds() * 10**9 <= max_age_ns


def _from_table(influxdb3_local, table: str) -> dict | None:
    target = analytics_table(table).name
    if not table_exists(influxdb3_local, target):
        return None
    # The latest statistics in growing windows back from now (stacklib.sql.lookback_bounds), then in the table's
    # newest MAX_FILES_PER_QUERY Parquet files: the whole table would be refused past Core's --query-file-limit.
    for bound in lookback_bounds():
        if bound is None:
            bound = window_condition(file_windows(influxdb3_local, target)[-1])
        since = f" WHERE {bound}"
        rows = influxdb3_local.query(
            f"SELECT * FROM (SELECT *, row_number() {over('bucket', 'field', order='time DESC')} AS rn "
            f"FROM {quote(target)}{since}) WHERE rn = 1")
        if rows:
            return analytics.latest_from_rows(table, rows)
    return None


def _known_tables(influxdb3_local) -> list[str]:
    rows = influxdb3_local.query(
        "SELECT table_name FROM information_schema.tables WHERE table_name LIKE $pattern",
        {"pattern": ANALYTICS_PREFIX + "%"})
    return sorted(str(row["table_name"])[len(ANALYTICS_PREFIX):] for row in rows)


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    log = RunLog(influxdb3_local, PLUGIN)
    try:
        config = parse(args, PARAMS)
    except ArgumentError as exc:
        log.error(str(exc))
        return {"error": str(exc)}, 500, _JSON
    try:
        params = parse(query_parameters, QUERY_PARAMS, source="query parameter", allow_unknown=True)
    except ArgumentError as exc:
        try:
            known = _known_tables(influxdb3_local)
        except Exception as query_error:  # the hint is optional; the 400 is the answer
            log.warn(f"could not list analytics tables: {query_error}")
            known = []
        return {"error": str(exc), "tables": known}, 400, _JSON
    table = params["table"]
    entry = analytics.read_cached(influxdb3_local.cache, table)
    if entry is not None and not _fresh(entry, config["max_age"]):
        entry = None
    if entry is None:
        try:
            entry = _from_table(influxdb3_local, table)
        except Exception as exc:
            log.error(f"reading {analytics_table(table).name} failed: {exc}", table=table)
            return {"error": f"reading statistics of {table!r} failed", "table": table}, 500, _JSON
    if entry is None:
        log.info("no statistics for table", table=table)
        return {"error": f"no statistics for table {table!r}", "table": table}, 404, _JSON
    log.info("statistics served", table=table, source=entry["source"])
    return entry, 200, _JSON
