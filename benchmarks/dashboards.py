"""What the real-server dashboard benchmarks share (bench_history.py, bench_birds.py): the Parquet files Core lists,
the files one query opens as Core counts them, and a dashboard's every variable and panel query sent over Flight
SQL the way Grafana sends it, timed."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
from pyarrow import flight

from grafana.datasources import SQL_LANGUAGE
from tests.engine.timebounds import scan_bounds
from tests.grafana.dashboards import database_at, queries, repeat_scopes, resolve, selection_for, variables
from tests.grafana.expand import TimeRange, expand_sql, interpolate, interval_ms, resolve_time
from tests.grafana.sqlrun import declared

__all__ = ["BROWSER_CONNECTIONS", "Files", "Flight", "Sample", "files_read", "load_seconds", "panel_pixels",
           "panel_sql", "parquet_files", "run_dashboard"]

Files = dict[str, list[tuple[int, int]]]  # table -> (min time, max time) of each of its Parquet files
Flight = Callable[[str, str], pa.Table]  # (database, sql) -> the answer, as Grafana's FlightSQL client reads it
SCREEN_PX = 1_900  # a full-width (24-column) panel on a 1920-pixel screen: Grafana's max data points is its width
VARIABLE_INTERVAL_MS = 60_000
# A browser opens at most 6 connections to one HTTP/1.1 host (Grafana's default `protocol = http`), so a page's
# panel queries run 6 at a time.
BROWSER_CONNECTIONS = 6


def parquet_files(rows: Callable[[str, str], list[dict[str, Any]]], database: str, tables: Iterable[str]) -> Files:
    """(min time, max time) of every Parquet file of each of `tables`, as `system.parquet_files` lists them
    (`rows(database, sql)` answers JSON rows). One query per table: without a `table_name = ...` filter Core 3.6.0
    pairs every database's table ids with this database's files (influxdb3_system_tables/src/parquet_files.rs,
    `scan`: `list_db_schema()` of all databases, `parquet_files(self.db_id, table_id)`), listing files twice and
    under other tables' names."""
    found: Files = {}
    for table in tables:
        spans = rows(database, f"SELECT min_time, max_time FROM system.parquet_files WHERE table_name = '{table}'")
        found[table] = [(int(row["min_time"]), int(row["max_time"])) for row in spans]
    return found


def files_read(sql: str, database: str, files: Files) -> int:
    """The most Parquet files one scan of `sql` opens, counted as Core counts them: the time bounds of each scan
    of the optimized plan (tests/engine/timebounds.py, Core's `ChunkFilter`) against each file's span."""
    most = 0
    for scan in scan_bounds(declared(database).sql(sql).optimized_logical_plan()):
        low = scan.lower if scan.lower is not None else -2**63
        high = scan.upper if scan.upper is not None else 2**63
        most = max(most, sum(1 for first, last in files.get(scan.table, ()) if first <= high and last >= low))
    return most


def panel_pixels(panel: dict[str, Any]) -> int:
    return SCREEN_PX * int(panel.get("gridPos", {}).get("w", 24)) // 24


@dataclass
class Sample:
    """One query of a dashboard at one range: each run's seconds (the first is the first since the server
    started, if the caller restarted it), the most files a scan opens, and the answer or the server's error."""

    label: str
    database: str
    seconds: list[float] = field(default_factory=list)
    files: int = 0
    answer: pa.Table | None = None
    error: str | None = None

    @property
    def warm(self) -> list[float]:
        return self.seconds[1:] or self.seconds

    @property
    def median(self) -> float:
        return statistics.median(self.warm) if self.warm else 0.0

    @property
    def p95(self) -> float:
        """The 95th percentile of the warm runs (their maximum for fewer than 20)."""
        ordered = sorted(self.warm)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0


def _run(sample: Sample, query: Flight, sql: str, runs: int) -> None:
    for _ in range(runs):
        started = time.perf_counter()
        try:
            sample.answer = query(sample.database, sql)
        except (flight.FlightError, pa.ArrowException) as exc:  # refused, or failed while streaming
            sample.error = str(exc).splitlines()[0][:200]
            return
        sample.seconds.append(time.perf_counter() - started)


def _options(answer: pa.Table | None) -> list[str]:
    found = [] if answer is None else [str(value) for value in answer.column(0).to_pylist() if value is not None]
    return found or [""]  # Grafana's value for a variable without options (its query runs with '')


def panel_sql(board: dict[str, Any], uid: str, time_range: TimeRange, now: datetime,
              selected: dict[str, list[str]], options: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """(label, database, SQL as Grafana sends it) of every SQL panel query of `board`: a panel with its own
    relative time (`timeFrom`) at that time, a repeated panel's first copy with the first value."""
    scopes = repeat_scopes(board)
    found = []
    for target in queries(board, uid):
        if not target.is_sql:
            continue
        panel = target.panel
        window = (TimeRange(resolve_time(f"now-{panel['timeFrom']}", now), now) if panel.get("timeFrom")
                  else time_range)
        values = selection_for(panel, scopes, selected, options)
        found.append((target.label, database_at(target.datasource, window, now),
                      expand_sql(interpolate(target.text, values), window,
                                 interval_ms(window, panel_pixels(panel), panel.get("interval")))))
    return found


def _sql_options(time_range: TimeRange, answer_of: Callable[[Any, str], pa.Table | None]) \
        -> Callable[[Any, str, TimeRange], list[str]]:
    """A variable's options as `resolve` asks for them: a SQL variable's query expanded for `time_range` and
    answered by `answer_of(variable, sql)`; a Flux variable (InfluxDB 2's, not measured here) keeps its current."""
    def options_of(variable, text: str, _default: TimeRange) -> list[str]:
        if variable.datasource.language != SQL_LANGUAGE:
            return list(variable.current or [])
        return _options(answer_of(variable, expand_sql(text, time_range, VARIABLE_INTERVAL_MS)))
    return options_of


def run_dashboard(query: Flight, board: dict[str, Any], uid: str, time_range: TimeRange, now: datetime,
                  files: dict[str, Files], runs: int) -> list[Sample]:
    """Every variable query (as Grafana refreshes them for `time_range`, chained) and then every panel query of
    `board`, each run `runs` times in a row."""
    samples: dict[str, Sample] = {}
    texts: dict[str, str] = {}

    def measured(variable, sql: str) -> pa.Table | None:
        sample = samples.setdefault(f"{uid}: variable {variable.name}",
                                    Sample(f"{uid}: variable {variable.name}",
                                           database_at(variable.datasource, time_range, now)))
        texts[sample.label] = sql
        _run(sample, query, sql, 1)
        return None if sample.error else sample.answer

    selected, options = resolve(board, now, _sql_options(time_range, measured))
    for item in variables(board):
        if item.datasource.language != SQL_LANGUAGE:
            continue
        sample = samples[f"{uid}: variable {item.name}"]
        if not sample.error:
            _run(sample, query, texts[sample.label], runs - 1)
        sample.files = files_read(texts[sample.label], sample.database, files[sample.database])
    for label, database, sql in panel_sql(board, uid, time_range, now, selected, options):
        sample = Sample(label, database)
        _run(sample, query, sql, runs)
        sample.files = files_read(sql, database, files[database])
        samples[label] = sample
    return list(samples.values())


def load_seconds(query: Flight, board: dict[str, Any], uid: str, time_range: TimeRange, now: datetime) -> float:
    """Wall-clock seconds of the dashboard's load as Grafana's page does it: the variables in order (each waits
    for the ones before), then every panel query, BROWSER_CONNECTIONS at a time. A query the server refuses
    counts the time of its refusal."""

    def answer(database: str, sql: str) -> pa.Table | None:
        try:
            return query(database, sql)
        except (flight.FlightError, pa.ArrowException):
            return None

    started = time.perf_counter()
    selected, options = resolve(board, now, _sql_options(
        time_range, lambda variable, sql: answer(variable.datasource.database, sql)))
    with ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
        list(pool.map(lambda item: answer(item[1], item[2]),
                      panel_sql(board, uid, time_range, now, selected, options)))
    return time.perf_counter() - started
