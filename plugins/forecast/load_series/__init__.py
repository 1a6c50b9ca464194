"""
{
    "plugin_type": ["http"],
    "http_args_config": [
        {
            "name": "url",
            "example": "https://example.com/daily_series.csv",
            "description": "ds,y CSV: http(s)/file URL or absolute path. Default: Prophet's Peyton Manning data.",
            "required": false
        },
        {
            "name": "table",
            "example": "peyton_views",
            "description": "Table to write the series to (default peyton_views).",
            "required": false
        },
        {
            "name": "series",
            "example": "peyton_manning",
            "description": "Value of the series tag, to keep several series in one table (default peyton_manning).",
            "required": false
        },
        {
            "name": "timeout",
            "example": "30",
            "description": "Download timeout in seconds (default 30).",
            "required": false
        },
        {
            "name": "max_bytes",
            "example": "20000000",
            "description": "Refuse a download larger than this many bytes (default 20 MB).",
            "required": false
        },
        {
            "name": "max_files",
            "example": "400",
            "description": "Most Parquet files one query opens: stored points are read in windows (default 400).",
            "required": false
        }
    ]
}
"""

# Load a daily series over HTTP: GET or POST /api/v3/engine/<path> downloads the CSV named by the trigger's
# `url` argument (never by the request: the endpoint must not fetch what a caller asks for), writes one point
# per day at 00:00 UTC, and answers {"status": "success", "rows_written": N, "rows_unchanged": M, ...}. Points keep
# their day as timestamp and the series as tag; a point already stored with the same value is not written again
# (InfluxDB 3 Core would store it again in new Parquet files), so loading twice writes nothing the second time.

import sys
from pathlib import Path

# The engine imports this folder as a top-level package with only plugins/forecast on sys.path and pops
# sys.path[0] right after: append (never insert) the plugin directory so the shared `stacklib` resolves.
_PLUGIN_DIR = str(Path(__file__).resolve().parents[2])
if _PLUGIN_DIR not in sys.path:
    sys.path.append(_PLUGIN_DIR)

from stacklib.args import ArgumentError, Param, identifier, integer, parse, tag_value, url_or_path  # noqa: E402
from stacklib.lines import PointWriter  # noqa: E402
from stacklib.runlog import RunLog  # noqa: E402
from stacklib.series import SeriesError, fetch_text, parse_series_csv  # noqa: E402
from stacklib.sql import MAX_FILES_PER_QUERY, quote, table_exists, windowed_query  # noqa: E402
from stacklib.tables import SERIES  # noqa: E402

PLUGIN = "load_series"
DEFAULT_URL = "https://raw.githubusercontent.com/facebook/prophet/main/examples/example_wp_log_peyton_manning.csv"
PARAMS = (
    Param("url", url_or_path, default=DEFAULT_URL),
    Param("table", identifier, default=SERIES.name),
    Param("series", tag_value, default="peyton_manning"),
    Param("timeout", integer(1, 600), default=30),
    Param("max_bytes", integer(1_000, 500_000_000), default=20_000_000),
    Param("max_files", integer(1, 100_000), default=MAX_FILES_PER_QUERY),
)
_JSON = {"Content-Type": "application/json"}


def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    log = RunLog(influxdb3_local, PLUGIN)
    try:
        config = parse(args, PARAMS)
    except ArgumentError as exc:
        log.error(str(exc))
        return {"status": "error", "error": str(exc), "run": log.run_id}, 500, _JSON
    try:
        text = fetch_text(config["url"], config["timeout"], config["max_bytes"])
    except SeriesError as exc:
        log.error(str(exc), url=config["url"])
        return {"status": "error", "error": str(exc), "run": log.run_id}, 502, _JSON
    try:
        parsed = parse_series_csv(text)
    except SeriesError as exc:
        log.error(str(exc), url=config["url"])
        return {"status": "error", "error": str(exc), "run": log.run_id}, 422, _JSON
    for reason in parsed.rejected[:5]:
        log.warn(f"row quarantined: {reason}")
    if not parsed.points:
        log.error("no usable row in the CSV", url=config["url"], rejected=len(parsed.rejected))
        return {"status": "error", "error": "no usable row in the CSV", "rows_rejected": len(parsed.rejected),
                "run": log.run_id}, 422, _JSON
    stored = _stored(influxdb3_local, config, min(parsed.points), max(parsed.points))
    writer = PointWriter(influxdb3_local)
    for stamp, value in sorted(parsed.points.items()):
        if stored.get(stamp) != value:
            writer.add(config["table"], {"series": config["series"]}, {SERIES.field_names[0]: value}, stamp)
    unchanged = len(parsed.points) - writer.written - writer.skipped_total
    log.info("series loaded", table=config["table"], series=config["series"], rows=writer.written,
             unchanged=unchanged, rejected=len(parsed.rejected), duplicates=parsed.duplicates)
    return {"status": "success", "rows_written": writer.written, "rows_unchanged": unchanged,
            "rows_rejected": len(parsed.rejected), "duplicate_days": parsed.duplicates, "table": config["table"],
            "series": config["series"], "run": log.run_id}, 200, _JSON


def _stored(influxdb3_local, config: dict, first_ns: int, last_ns: int) -> dict[int, float]:
    """The points of the series already stored in the CSV's time range. InfluxDB 3 Core writes every write into
    new Parquet files and never compacts them, so a reload writes only what is new or changed. Read in time
    windows of at most max_files files: the range of a long series holds more than --query-file-limit files."""
    table = config["table"]
    if not table_exists(influxdb3_local, table):
        return {}
    rows = windowed_query(
        influxdb3_local, table, f"SELECT time, {quote(SERIES.field_names[0])} AS y FROM {quote(table)} "
        "WHERE series = $series AND {window}", {"series": config["series"]}, config["max_files"], first_ns, last_ns)
    return {int(row["time"]): row["y"] for row in rows if isinstance(row.get("time"), int)}
