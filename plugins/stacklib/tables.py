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
    "FORECAST_DATABASE", "RUN_WINDOW_NS", "SERIES", "STATISTICS", "WHOLE_TABLE_BUCKET", "TableSpec",
    "analytics_table",
]

FLOAT, INT = "float64", "int64"

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
