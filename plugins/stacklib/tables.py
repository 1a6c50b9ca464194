"""The tables, columns and endpoints the plugins write and serve, declared once as plain data.

Grafana dashboards, plugins/provision.yaml (checked by tests) and the README are derived from these names, so
renaming a column here is the only edit needed in Python. No third-party imports: the dashboards generator
imports this module as `plugins.stacklib.tables` from the repository root.
Types are InfluxDB 3 column type names, as `POST /api/v3/configure/table` takes them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANALYTICS_FIELDS", "ANALYTICS_PREFIX", "ANALYTICS_TAGS", "ENDPOINTS", "EVALUATION", "FORECAST",
    "FORECAST_DATABASE", "HOST_DATABASE", "HOST_TABLES", "RUN_WINDOW_NS", "SERIES", "STATISTICS",
    "WHOLE_TABLE_BUCKET", "TableSpec", "analytics_table", "host_table",
]

FLOAT, INT, UINT = "float64", "int64", "uint64"

# The InfluxDB 3 database that holds every table the plugins write (letters, digits, hyphens).
FORECAST_DATABASE = "forecast"


@dataclass(frozen=True)
class TableSpec:
    """One table: its name, tag columns and field columns with their types."""

    name: str
    tags: tuple[str, ...]
    fields: tuple[tuple[str, str], ...]
    description: str = ""

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    @property
    def field_types(self) -> dict[str, str]:
        return dict(self.fields)


# A daily series loaded over HTTP (default: Peyton Manning's Wikipedia page views, log scale).
SERIES = TableSpec(
    name="peyton_views",
    tags=("series",),
    fields=(("y", FLOAT),),
    description="Daily series loaded by the load_series plugin; one point per day at 00:00 UTC.",
)

# Prophet's forecast, H days past the last observation. Core writes one Parquet file per table per 10 minutes of
# DATA time per snapshot and never compacts, so rows stamped with their forecast dates would add a file to each of
# H day-windows on every run, and a query of one run would scan the files of every run. Instead all rows of a run
# are stamped inside the run's own 10-minute window (its start time plus the row's index in nanoseconds) and carry
# the day they forecast in `ds` (Unix nanoseconds): one file per run, and a run is read by time, e.g.
# `time >= to_timestamp(left(run, 20)) AND time < to_timestamp(left(run, 20)) + INTERVAL '1 second'`.
FORECAST = TableSpec(
    name="peyton_forecast",
    tags=("series", "run"),
    fields=(("ds", INT), ("yhat", FLOAT), ("yhat_lower", FLOAT), ("yhat_upper", FLOAT)),
    description="Forecast rows of each run, stamped in the run's 10-minute window; `ds` is the forecast day (Unix "
                "ns). Run ids start with the run's RFC 3339 start time, so max(run) is the latest.",
)
# Where a run's rows are: within one second of its start (at most 3,650 rows, one nanosecond apart).
RUN_WINDOW_NS = 10**9

# The forecaster grading itself on the last K days it held out, one row per run at the run's time.
EVALUATION = TableSpec(
    name="forecast_evaluation",
    tags=("series", "run"),
    fields=(("mae", FLOAT), ("mape", FLOAT), ("coverage", FLOAT), ("holdout_days", INT), ("train_rows", INT),
            ("test_rows", INT), ("fit_seconds", FLOAT)),
    description="Holdout accuracy per run: MAE, MAPE (%) and the share of actuals inside the interval.",
)

# Table statistics: one table per source table, one row per field per bucket.
ANALYTICS_PREFIX = "analytics_"
ANALYTICS_TAGS = ("field", "bucket")
ANALYTICS_FIELDS = (("count", INT), ("min", FLOAT), ("max", FLOAT), ("mean", FLOAT), ("median", FLOAT),
                    ("mode", FLOAT), ("p95", FLOAT))
STATISTICS = tuple(name for name, _ in ANALYTICS_FIELDS)
# The `bucket` tag value of whole-table statistics (the bucket argument's text otherwise, e.g. "1h").
WHOLE_TABLE_BUCKET = "all"


def analytics_table(source_table: str) -> TableSpec:
    """The statistics table written for `source_table`."""
    return TableSpec(
        name=f"{ANALYTICS_PREFIX}{source_table}",
        tags=ANALYTICS_TAGS,
        fields=ANALYTICS_FIELDS,
        description=f"Per-field statistics of {source_table}, stamped with the bucket start "
                    f"(or the minute they were computed for bucket={WHOLE_TABLE_BUCKET}).",
    )


# Request paths of the HTTP plugins, served at http://<influxdb3>/api/v3/engine/<path>.
ENDPOINTS = {
    "load_series": "peyton-load",
    "forecast_now": "peyton-forecast",
    "forecast_chart": "peyton-chart",
    "analytics": "analytics",
    "example_http": "example-hello",
    "packages_check": "packages-check",
}


# ---- Host metrics: written by a community plugin, not ours --------------------------------------------------------
# The system_metrics plugin of InfluxData's plugin repository (trigger `system-metrics`, plugin
# gh:influxdata/system_metrics/system_metrics.py, fetched by the server from INFLUXDB3_PLUGIN_REPO, pinned to a
# commit in docker-compose.yml). Names are those of its README ("Measurements and Fields") at that commit, types
# those its code writes (`_float_fields` / `_uint_fields`; the same on a real InfluxDB 3 server). The tables are
# provisioned up front, so the Host dashboard says "no data" rather than "table not found" when the plugin could
# not be downloaded.
HOST_DATABASE = "monitoring"
_CPU_SHARES = tuple((name, FLOAT) for name in ("user", "system", "idle", "iowait", "nice", "irq", "softirq", "steal",
                                               "guest", "guest_nice"))
_FREQUENCY = tuple((name, FLOAT) for name in ("frequency_current", "frequency_min", "frequency_max"))
HOST_TABLES = (
    TableSpec("system_cpu", ("host", "cpu"),
              (*_CPU_SHARES, *_FREQUENCY, ("ctx_switches", UINT), ("interrupts", UINT), ("soft_interrupts", UINT),
               ("syscalls", UINT), ("load1", FLOAT), ("load5", FLOAT), ("load15", FLOAT)),
              "Whole-machine CPU: state shares (%) since the previous run, load averages, counters; cpu=total."),
    TableSpec("system_cpu_cores", ("host", "core"), (("usage", FLOAT), *_CPU_SHARES, *_FREQUENCY),
              "Per core: busy share (%) and state shares since the previous run."),
    TableSpec("system_memory", ("host",),
              (*((name, UINT) for name in ("total", "available", "used", "free", "active", "inactive", "buffers",
                                           "cached", "shared", "slab")), ("percent", FLOAT)),
              "Memory in bytes; percent used."),
    TableSpec("system_swap", ("host",),
              (*((name, UINT) for name in ("total", "used", "free")), ("percent", FLOAT), ("sin", UINT),
               ("sout", UINT)),
              "Swap in bytes; percent used; bytes swapped in and out."),
    TableSpec("system_memory_faults", ("host",),
              tuple((name, UINT) for name in ("page_faults", "major_faults", "minor_faults", "rss", "vms", "dirty",
                                               "uss", "pss")),
              "Page faults and memory of the engine's own process."),
    TableSpec("system_disk_usage", ("host", "device", "mountpoint", "fstype"),
              (("total", UINT), ("used", UINT), ("free", UINT), ("percent", FLOAT)),
              "Per mounted partition: bytes and percent used."),
    TableSpec("system_disk_io", ("host", "device"),
              tuple((name, UINT) for name in ("reads", "writes", "read_bytes", "write_bytes", "read_time",
                                               "write_time", "busy_time", "read_merged_count", "write_merged_count")),
              "Per device: cumulative I/O counters."),
    TableSpec("system_disk_performance", ("host", "device"),
              tuple((name, FLOAT) for name in ("read_bytes_per_sec", "write_bytes_per_sec", "read_iops",
                                                "write_iops", "avg_read_latency_ms", "avg_write_latency_ms",
                                                "util_percent")),
              "Per device: I/O rates since the previous run."),
    TableSpec("system_network", ("host", "interface"),
              tuple((name, UINT) for name in ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errin",
                                               "errout", "dropin", "dropout")),
              "Per interface: cumulative traffic and error counters."),
)


def host_table(name: str) -> TableSpec:
    """A host-metrics table by name; KeyError names the known ones."""
    for spec in HOST_TABLES:
        if spec.name == name:
            return spec
    raise KeyError(f"plugins/stacklib/tables.py: no host table {name!r} (tables: "
                   f"{', '.join(spec.name for spec in HOST_TABLES)})")
