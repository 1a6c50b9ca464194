"""
{
    "plugin_type": ["scheduled"],
    "scheduled_args_config": [
        {
            "name": "table",
            "example": "peyton_views",
            "description": "Table whose rows of the last hour are counted on every run (default peyton_views).",
            "required": false
        }
    ]
}
"""

# Example scheduled plugin: on every tick (`every:1m` or `cron:0 */5 * * * *` - six fields, seconds first)
# count the rows a table got in the last hour and write the count with the tick's time, a heartbeat to graph.
# Bound every query by time: InfluxDB 3 Core reads the Parquet files a query's time range selects (one per
# 10 minutes of data, never compacted) and refuses a query over --query-file-limit files, so a count over a
# whole table with years of history would fail.
import re
from datetime import UTC


def process_scheduled_call(influxdb3_local, call_time, args=None):
    table = (args or {}).get("table", "peyton_views")
    # Table names cannot be query parameters, so check the name before it goes into the SQL text.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
        influxdb3_local.error(f"example_heartbeat: {table!r} is not a table name")
        return
    try:
        rows = influxdb3_local.query(f'SELECT count(*) AS n FROM "{table}" '  # a list of dicts
                                     "WHERE time >= now() - INTERVAL '1 hour'")
    except Exception as exc:  # e.g. the table does not exist yet
        influxdb3_local.warn(f"example_heartbeat: cannot count {table}: {exc}")
        return
    count = rows[0]["n"] if rows else 0
    # call_time is a naive datetime in the server's time zone (UTC in the official Docker image).
    moment = call_time if call_time.tzinfo else call_time.replace(tzinfo=UTC)
    influxdb3_local.write(LineBuilder("example_heartbeat").tag("table", table).int64_field("rows_last_hour", count)
                          .time_ns(int(moment.timestamp()) * 1_000_000_000))
    influxdb3_local.info(f"example_heartbeat: {table} got {count} rows in the hour before {call_time.isoformat()}")
