"""Read data back: a measurement over a time range, aggregated per window, as a pandas DataFrame or CSV.

InfluxDB 2 is read with the official client's Flux query API (`aggregateWindow` then `pivot`); InfluxDB 3
with its HTTP SQL API (`POST /api/v3/query_sql`, Parquet answer, `date_bin` + GROUP BY tags). Both give one
row per window and series: `time`, the tag columns, one column per numeric field.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pandas as pd
import requests

from common.config import format_duration, parse_duration
from ingest.arrowio import read_parquet
from ingest.config import IngestConfig
from ingest.sinks.influxdb3 import with_port
from ingest.stored import sql_ident

__all__ = ["AGGREGATES", "QueryError", "Reader", "parse_window"]

AGGREGATES = {"mean": "avg", "min": "min", "max": "max", "sum": "sum", "count": "count", "median": "median"}
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_NUMERIC_SQL = ("Float64", "Int64", "UInt64")


class QueryError(RuntimeError):
    """A query could not run; the message names the database and why."""


def parse_window(text: str, what: str) -> timedelta:
    """`30d`, `1h`, `15m` -> timedelta; ValueError names the option."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if value.total_seconds() < 1 or value.total_seconds() != int(value.total_seconds()):
        raise ValueError(f"{what}: {text!r} must be whole seconds, at least 1s")
    return value


def _name(value: str, what: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{what} {value!r} may hold letters, digits, '_', '.' and '-' only")
    return value


class Reader:
    def __init__(self, config: IngestConfig, *, timeout: float | None = None):
        self.config = config
        self.timeout = timeout or config.http_timeout

    def query(self, database: str, measurement: str, *, source: str, span: timedelta, window: timedelta,
              aggregate: str = "mean") -> pd.DataFrame:
        if window > span:
            raise ValueError(f"the window ({format_duration(window)}) is longer than the range "
                             f"({format_duration(span)})")
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate {aggregate!r} is not one of {', '.join(AGGREGATES)}")
        _name(database, "bucket")
        _name(measurement, "measurement")
        if source == "influxdb2":
            return self._influxdb2(database, measurement, span, window, aggregate)
        if source == "influxdb3":
            return self._influxdb3(database, measurement, span, window, aggregate)
        raise ValueError(f"source {source!r} is not influxdb2 or influxdb3")

    # ---- InfluxDB 2: Flux through influxdb-client -----------------------------------------------------
    @staticmethod
    def flux(bucket: str, measurement: str, span: timedelta, window: timedelta, aggregate: str) -> str:
        return "\n".join([
            'import "types"',
            f"from(bucket: {json.dumps(bucket)})",
            f"  |> range(start: -{format_duration(span)})",
            f"  |> filter(fn: (r) => r._measurement == {json.dumps(measurement)})",
            "  |> filter(fn: (r) => types.isNumeric(v: r._value))",
            f"  |> aggregateWindow(every: {format_duration(window)}, fn: {aggregate}, createEmpty: false)",
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
            '  |> drop(columns: ["_start", "_stop", "_measurement"])',
        ])

    def _influxdb2(self, bucket: str, measurement: str, span: timedelta, window: timedelta,
                   aggregate: str) -> pd.DataFrame:
        from influxdb_client import InfluxDBClient
        from influxdb_client.rest import ApiException

        target = self.config.influxdb2
        if target is None:
            raise QueryError("InfluxDB 2 is not configured (INGEST_INFLUXDB2=false or no token)")
        query = self.flux(bucket, measurement, span, window, aggregate)
        with InfluxDBClient(url=target.url, token=target.token, org=target.org,
                            timeout=int(self.timeout * 1000)) as client:
            try:
                frames = client.query_api().query_data_frame(query, org=target.org)
            except ApiException as exc:
                raise QueryError(f"InfluxDB 2 query on bucket {bucket!r} failed ({exc.status}): "
                                 f"{getattr(exc, 'message', '') or exc.reason}") from None
        frame = pd.concat(frames, ignore_index=True) if isinstance(frames, list) else frames
        if frame.empty:
            return pd.DataFrame(columns=["time"])
        frame = frame.drop(columns=[column for column in ("result", "table") if column in frame.columns])
        frame = frame.rename(columns={"_time": "time"})
        return frame.sort_values("time", kind="stable").reset_index(drop=True)

    # ---- InfluxDB 3: SQL over HTTP ------------------------------------------------------------------------
    def _sql(self, session: requests.Session, url: str, database: str, query: str, fmt: str) -> requests.Response:
        accept = {"parquet": "application/vnd.apache.parquet", "json": "application/json"}[fmt]
        try:
            response = session.post(f"{url}/api/v3/query_sql", json={"db": database, "q": query, "format": fmt},
                                    headers={"Accept": accept}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise QueryError(f"InfluxDB 3 at {url} unreachable: {exc}") from None
        if not response.ok:
            raise QueryError(f"InfluxDB 3 query on database {database!r} failed ({response.status_code}): "
                             f"{response.text[:300]}")
        return response

    @staticmethod
    def sql(measurement: str, tags: list[str], fields: list[str], span: timedelta, window: timedelta,
            aggregate: str) -> str:
        function = AGGREGATES[aggregate]
        columns = [f"date_bin(INTERVAL '{int(window.total_seconds())} seconds', time) AS time",
                   *[sql_ident(tag) for tag in tags],
                   *[f"{function}({sql_ident(name)}) AS {sql_ident(name)}" for name in fields]]
        group = ", ".join(["1", *[sql_ident(tag) for tag in tags]])
        return (f"SELECT {', '.join(columns)} FROM {sql_ident(measurement)} "
                f"WHERE time >= now() - INTERVAL '{int(span.total_seconds())} seconds' "
                f"GROUP BY {group} ORDER BY {group}")

    def _influxdb3(self, database: str, measurement: str, span: timedelta, window: timedelta,
                   aggregate: str) -> pd.DataFrame:
        target = self.config.influxdb3
        if target is None:
            raise QueryError("InfluxDB 3 is not configured (INGEST_INFLUXDB3=false or no token)")
        url = with_port(target.url)
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {target.token}"
            literal = measurement.replace("'", "''")
            schema = self._sql(session, url, database, "SELECT column_name, data_type FROM information_schema.columns "
                               f"WHERE table_name = '{literal}' AND table_schema = 'iox'", "json").json()
            if not schema:
                raise QueryError(f"InfluxDB 3 database {database!r} has no table {measurement!r}")
            tags = [row["column_name"] for row in schema if str(row["data_type"]).startswith("Dictionary")]
            fields = [row["column_name"] for row in schema if str(row["data_type"]) in _NUMERIC_SQL]
            if not fields:
                raise QueryError(f"table {measurement!r} has no numeric field to aggregate")
            body = self._sql(session, url, database, self.sql(measurement, tags, fields, span, window, aggregate),
                             "parquet").content
        frame = read_parquet(body).to_pandas() if body else pd.DataFrame(columns=["time"])
        return frame.reset_index(drop=True)
