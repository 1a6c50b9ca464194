"""Every dashboard on a stack a year old, in real InfluxDB 3 Core: each panel and variable query at 1 h, 24 h, 7 d,
30 d, 90 d, 1 y and 5 y, the first run after a restart (cold) and warm.

Core runs as docker-compose.yml starts it (tests/integration/stacks/native.py, influxdb3-init creating the
databases, tables and triggers of plugins/provision.yaml; the triggers are then disabled so that nothing but the
queries runs) with `--wal-snapshot-size=1`: the data is written in time order, whole days at a time, each batch in
its own snapshot, so every table has the Parquet files months of live writes leave (one per 10-minute window with data,
one per bucket of a rollup). Every declared table gets rows in its declared columns and types:

- live tables: `DAYS` (365) days back from now at their cadence (sensors a minute, bird fixes 5 minutes, weather
  15 minutes, the `monitoring` tables a minute but 30 days, the database's retention; a backup run a day), two tag
  sets each; their rollup and track-summary tables a row per tag set per complete bucket (hour, day, week);
- the Peyton series a row a day from 2007-12-10 for 2,905 days, with its rollups and its hourly statistics;
- a forecast run a day (its rows in the run's second, run ids as the plugin makes them), statistics of the sensors
  per hour.
The values are random in each column's type (the figures are about files and plans, not answers; the real bird
study's Birds dashboard is bench_birds.py). Then, for each range, Core is restarted and every dashboard's variable
queries (chained, as Grafana refreshes them) and panel queries (a panel's own relative time where it has one) are
sent over Flight SQL as Grafana sends them, each RUNS times: status, the most Parquet files one scan opens (as
Core counts them), the first run's time, the warm runs' p95, and Core's peak memory for the range.

Targets (issue "History that stays fast"): nothing refused at any range, every query ≤ 1 s (p95) warm and cold, the
1-year / 24-hour ratio of the dashboards' total time ≤ 3. Without the binaries it prints why and a skip line. The
last line is that ratio. `BENCH_HISTORY_DAYS` shortens the history for a trial run; `BENCH_HISTORY_SAMPLES=<path>`
writes every query's figures at every range as CSV.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compose" / "influxdb3-init"))  # the declared tables

from benchmarks.bench_real_servers import real_stack
from benchmarks.dashboards import Files, Sample, parquet_files, run_dashboard
from common.retention import RAW, raw_retention
from grafana import history
from plugins.stacklib.tables import EVALUATION, FORECAST, SERIES, analytics_table
from tests.grafana.dashboards import boards
from tests.grafana.expand import TimeRange, resolve_time
from tests.grafana.sqlrun import copied_tables, declared_schemas, provision, rollup_tables
from tests.integration.stacks.native import NativeStack, find_binaries

DAYS = int(os.environ.get("BENCH_HISTORY_DAYS", "365"))
RUNS = 6  # the first after the restart, then five warm
RANGES = {"1 h": "now-1h", "24 h": "now-24h", "7 d": "now-7d", "30 d": "now-30d", "90 d": "now-90d",
          "1 y": "now-1y", "5 y": "now-5y"}
CADENCE_S = {"sensors": 60, "bird_fixes": 300, "weather": 900, "backup_run": 86_400}
# plugins/provision.yaml: the live databases (`retention: raw`) keep RAW_RETENTION (raw rows and their rollups: Core
# leaves older rows out of every query); `history` keeps the rollups copied there beside its own raw tables.
KEPT_DAYS = dict.fromkeys((database.name for database in provision().databases if database.retention == RAW),
                          (raw_retention(None) or timedelta(days=DAYS)).days)
PEYTON_START, PEYTON_DAYS = datetime(2007, 12, 10, tzinfo=UTC), 2_905
TAG_SETS = 2
FORECAST_ROWS = 30  # rows of one forecast run, one nanosecond apart in the run's second
DAY_NS, S_NS = 86_400 * 10**9, 10**9
TARGET_S = 1.0
BATCH_LINES = 30_000
SAMPLES = os.environ.get("BENCH_HISTORY_SAMPLES", "")  # a CSV path: every query's figures


def _value(name: str, kind: pa.DataType, times: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Line-protocol field values of one column for rows at `times` (ns): random in the column's type, but a
    position where a latitude or longitude goes, the row's time where a `_ns` column goes, a positive count."""
    size = len(times)
    if pa.types.is_boolean(kind):
        return ["t" if flag else "f" for flag in rng.random(size) < 0.05]
    if pa.types.is_string(kind):
        return ['"bench"'] * size
    if pa.types.is_unsigned_integer(kind):
        return [f"{value}u" for value in rng.integers(0, 10**9, size)]
    if pa.types.is_integer(kind):
        if name.endswith("_ns"):
            return [f"{value}i" for value in times]
        if name == "ds":
            return [f"{value}i" for value in times // DAY_NS * DAY_NS + DAY_NS]
        return [f"{value}i" for value in rng.integers(1, 60, size)]
    if "lat" in name:
        return [f"{value:.5f}" for value in rng.uniform(52.5, 53.5, size)]
    if "lon" in name:
        return [f"{value:.5f}" for value in rng.uniform(6.0, 7.0, size)]
    return [f"{value:.3f}" for value in np.abs(rng.normal(20, 5, size))]


def lines(table: str, schema: pa.Schema, times: np.ndarray, tag_sets: np.ndarray, rng: np.random.Generator) \
        -> list[str]:
    """Line protocol of rows of `table` at `times` (ns), each in tag set `tag_sets[i]`."""
    tags = [item.name for item in schema if pa.types.is_dictionary(item.type)]
    fields = [item for item in schema if item.name != "time" and not pa.types.is_dictionary(item.type)]
    values = {item.name: _value(item.name, item.type, times, rng) for item in fields}
    out = []
    for index, stamp in enumerate(times):
        number = int(tag_sets[index])
        if "run" in tags:  # a run id as the forecast plugin makes them: its start time, then a suffix
            moment = datetime.fromtimestamp(int(stamp) // S_NS, UTC)
            labels = [f"run={moment:%Y-%m-%dT%H:%M:%SZ}-{number:06x}" if tag == "run" else f"{tag}={tag}-{number}"
                      for tag in tags]
        else:
            labels = [f"{tag}={tag}-{number}" for tag in tags]
        out.append(f"{','.join([table, *labels])} "
                   f"{','.join(f'{item.name}={values[item.name][index]}' for item in fields)} {int(stamp)}")
    return out


def _every(start_ns: int, end_ns: int, step_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows every `step_ns` in [start, end) for each tag set: (times, tag set of each)."""
    first = -(-start_ns // step_ns) * step_ns
    stamps = np.arange(first, end_ns, step_ns, dtype=np.int64)
    return np.repeat(stamps, TAG_SETS), np.tile(np.arange(TAG_SETS), len(stamps))


def _source_rows(name: str, now_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, tag sets) of a table that is not a rollup, as a stack `DAYS` days old wrote it."""
    start = now_ns - DAYS * DAY_NS
    if name in (SERIES.name, analytics_table(SERIES.name).name):  # a row a day, 2007-12-10 on
        first = int(PEYTON_START.timestamp()) * S_NS
        return _every(first, first + PEYTON_DAYS * DAY_NS, DAY_NS)
    if name in (FORECAST.name, EVALUATION.name):  # a run a day at 03:00, its rows in the run's second
        runs, sets = _every(start + 3 * 3_600 * S_NS, now_ns, DAY_NS)
        count = FORECAST_ROWS if name == FORECAST.name else 1
        return np.repeat(runs, count) + np.tile(np.arange(count), len(runs)), np.repeat(sets, count)
    if name.startswith("analytics_"):  # statistics of each complete hour
        return _every(start, now_ns - 3_600 * S_NS, 3_600 * S_NS)
    return _every(start, now_ns, CADENCE_S.get(name, 60) * S_NS)


def plan(now: datetime) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """(database, table, times, tag sets) of every declared table: the tables' own rows, then their rollups, a row
    per tag set for each complete bucket in which the source has rows; in a live database only what its
    retention keeps, in `history` every bucket (the live tables' raw copies there stay empty)."""
    now_ns = int(now.timestamp()) * S_NS
    schemas = declared_schemas()
    rollups = rollup_tables()
    derived = {(table.database, table.name) for table in rollups}
    copies = {(table.database, table.name) for table in copied_tables()}
    sources: dict[str, np.ndarray] = {}
    for database, tables in schemas.items():
        for name in sorted(tables):
            if (database, name) in derived:
                continue
            if (database, name) in copies:
                continue  # empty on a stack that loaded no history there: only the live rollups are copied
            times, sets = _source_rows(name, now_ns)
            sources[name] = times
            kept = times >= _kept_from(database, now_ns)
            yield database, name, times[kept], sets[kept]
    for table in rollups:
        tier = next(tier for tier in history.TIERS[1:] if table.name.endswith(tier.suffix))
        width = tier.width_s * S_NS
        edge = (now_ns - history.LAG_S * S_NS) // width * width - width  # the newest complete bucket
        buckets = np.unique(sources[table.name.removesuffix(tier.suffix)] // width * width)
        buckets = buckets[(buckets <= edge) & (buckets >= _kept_from(table.database, now_ns))]
        yield table.database, table.name, np.repeat(buckets, TAG_SETS), np.tile(np.arange(TAG_SETS), len(buckets))


def _kept_from(database: str, now_ns: int) -> int:
    """The oldest time a query of `database` still sees (its retention's cutoff)."""
    return now_ns - KEPT_DAYS[database] * DAY_NS if database in KEPT_DAYS else 0


def load(stack: NativeStack, now: datetime) -> None:
    """Every table's rows, oldest first, in requests of whole days of data time (a request per database, the
    three sent together, so each batch is one WAL flush and so one snapshot)."""
    schemas = declared_schemas()
    rng = np.random.default_rng(7)
    chunks: dict[int, dict[str, list[str]]] = {}
    rows = 0
    for database, table, times, sets in plan(now):
        order = np.argsort(times, kind="stable")
        times, sets = times[order], sets[order]
        days = times // DAY_NS
        edges = np.flatnonzero(np.diff(days)) + 1
        for part_times, part_sets in zip(np.split(times, edges), np.split(sets, edges), strict=True):
            if len(part_times):
                chunks.setdefault(int(part_times[0] // DAY_NS), {}).setdefault(database, []).extend(
                    lines(table, schemas[database][table], part_times, part_sets, rng))
                rows += len(part_times)
    print(f"{rows:,} rows generated in {len(chunks)} days of data time")
    session = requests.Session()

    def write(database: str, text: list[str]) -> None:
        for part in _requests(text):
            answer = session.post(f"{stack.influxdb3_url}/api/v3/write_lp", headers=stack.influxdb3_headers,
                                  params={"db": database, "precision": "nanosecond"}, data=part, timeout=600)
            if answer.status_code not in (200, 204):
                raise RuntimeError(f"write to {database}: {answer.status_code} {answer.text[:300]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(3) as pool:
        for number, batch in enumerate(batches(chunks)):
            list(pool.map(lambda item: write(*item), batch.items()))
            if number % 20 == 0:
                print(f"  request {number} of the load written, {time.perf_counter() - started:.0f} s")
    print(f"written in {time.perf_counter() - started:.0f} s")


def _requests(text: list[str], limit: int = 8 * 2**20) -> Iterator[str]:
    """The lines as request bodies under Core's 10 MiB request limit (a rollup line of `history` holds 40 fields)."""
    start, size = 0, 0
    for index, line in enumerate(text):
        if size + len(line) + 1 > limit and index > start:
            yield "\n".join(text[start:index])
            start, size = index, 0
        size += len(line) + 1
    if start < len(text):
        yield "\n".join(text[start:])


def batches(chunks: dict[int, dict[str, list[str]]]) -> Iterator[dict[str, list[str]]]:
    """Consecutive days together up to BATCH_LINES lines (a day of the Peyton series is one line a table): the
    files are the same, one per 10-minute window of each table, in fewer WAL flushes."""
    batch: dict[str, list[str]] = {}
    for day in sorted(chunks):
        for database, text in chunks.pop(day).items():
            batch.setdefault(database, []).extend(text)
        if sum(len(text) for text in batch.values()) >= BATCH_LINES:
            yield batch
            batch = {}
    if batch:
        yield batch


def disable_triggers(stack: NativeStack) -> None:
    """Nothing but the benchmark's queries runs: every provisioned trigger disabled."""
    for database in declared_schemas():
        for row in stack.sql(database, "SELECT trigger_name FROM system.processing_engine_triggers"):
            requests.post(f"{stack.influxdb3_url}/api/v3/configure/processing_engine_trigger/disable",
                          headers=stack.influxdb3_headers,
                          params={"db": database, "trigger_name": row["trigger_name"]}, timeout=60).raise_for_status()


def peak_mib(stack: NativeStack) -> float:
    """The InfluxDB 3 process's peak resident memory since it started (VmHWM)."""
    process = stack.processes["influxdb3"].popen
    assert process is not None
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def restart(stack: NativeStack) -> float:
    started = time.perf_counter()
    stack.stop("influxdb3")
    stack.start("influxdb3")
    return time.perf_counter() - started


def report(results: dict[str, dict[str, list[Sample]]], starts: dict[str, float], peaks: dict[str, float]) -> None:
    uids = sorted(next(iter(results.values())))
    print("\nwhole dashboard (every query once, s): warm median / first run after the restart")
    print(f"{'range':>6} {'start s':>8} {'peak MiB':>9} " + " ".join(f"{uid:>15}" for uid in uids))
    for name, by_board in results.items():
        cells = [f"{sum(item.median for item in by_board[uid]):6.2f}/"
                 f"{sum(item.seconds[0] for item in by_board[uid] if item.seconds):6.2f}" for uid in uids]
        print(f"{name:>6} {starts[name]:8.1f} {peaks[name]:9.0f} " + " ".join(f"{cell:>15}" for cell in cells))
    everything = [(name, sample) for name, by_board in results.items() for samples in by_board.values()
                  for sample in samples]
    failed = [(name, sample) for name, sample in everything if sample.error]
    print(f"\nqueries: {len(everything)} (each run {RUNS} times); refused or failed: {len(failed)}")
    for name, sample in failed:
        print(f"  {name}: {sample.label}: {sample.error}")
    slow = sorted(((max(sample.p95, sample.seconds[0] if sample.seconds else 0.0), name, sample)
                   for name, sample in everything if not sample.error), key=lambda item: -item[0])
    over = [item for item in slow if item[0] > TARGET_S]
    print("slowest (warm p95 or first run): " + "; ".join(
        f"{seconds:.2f} s {sample.label} at {name} ({sample.files} files)" for seconds, name, sample in slow[:5]))
    print(f"over {TARGET_S:.0f} s: {len(over)}; the most files one scan opens: "
          f"{max(sample.files for _, sample in everything)}")


def write_samples(results: dict[str, dict[str, list[Sample]]], path: Path) -> None:
    """Every query at every range as CSV (range, query, files, first run s, warm median s, warm p95 s, error)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["range", "query", "files", "first_s", "median_s", "p95_s", "error"])
        for name, by_board in results.items():
            for samples in by_board.values():
                for item in samples:
                    out.writerow([name, item.label, item.files, f"{item.seconds[0]:.4f}" if item.seconds else "",
                                  f"{item.median:.4f}", f"{item.p95:.4f}", item.error or ""])
    print(f"every query's figures: {path}")


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    binaries, missing = find_binaries()
    if binaries is None:
        print(f"history benchmark skipped: {missing}")
        print("ratio: skipped (no server binaries)")
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-history-"))
    results: dict[str, dict[str, list[Sample]]] = {}
    starts: dict[str, float] = {}
    peaks: dict[str, float] = {}
    try:
        with real_stack(binaries, folder, "--wal-snapshot-size=1", services=("influxdb3",)) as stack:
            print(f"InfluxDB 3 Core {stack.versions()['influxdb3']}; a stack {DAYS} days old")
            disable_triggers(stack)
            now = datetime.now(UTC)
            load(stack, now)
            time.sleep(3)
            restart(stack)  # the last day's snapshot, and the files as a restarted server lists them
            files: dict[str, Files] = {database: parquet_files(stack.sql, database, tables)
                                       for database, tables in declared_schemas().items()}
            print("Parquet files: " + ", ".join(f"{table} {len(spans):,}" for tables in files.values()
                                                for table, spans in sorted(tables.items())))
            print("Parquet files: " + ", ".join(f"{database} {sum(len(spans) for spans in tables.values()):,}"
                                                for database, tables in files.items()))
            dashboards = boards()
            for name, start in RANGES.items():
                starts[name] = restart(stack)
                moment = datetime.now(UTC)
                window = TimeRange(resolve_time(start, moment), moment)
                results[name] = {uid: run_dashboard(stack.flight, board, uid, window, moment, files, RUNS)
                                 for uid, board in sorted(dashboards.items())}
                peaks[name] = peak_mib(stack)
                total = sum(sample.median for samples in results[name].values() for sample in samples)
                print(f"{name}: started in {starts[name]:.1f} s; every dashboard {total:.2f} s warm; peak "
                      f"{peaks[name]:.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(results, starts, peaks)
    if SAMPLES:
        write_samples(results, Path(SAMPLES))
    year, day = (sum(sample.median for samples in results[name].values() for sample in samples)
                 for name in ("1 y", "24 h"))
    print(f"ratio: every dashboard at 1 y {year:.2f} s / at 24 h {day:.2f} s = {year / day:.2f} (target ≤ 3)")


if __name__ == "__main__":
    main()
