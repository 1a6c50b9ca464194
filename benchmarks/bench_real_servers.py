"""Measurements on real InfluxDB 2 and InfluxDB 3 Core processes, started like the stack starts them.

The servers come from INFLUXD_BIN and INFLUXDB3_BIN (or PATH) and run with docker-compose.yml's own settings
(tests/integration/stacks/native.py; influxdb3-init provisions databases, packages and triggers), plus
`--wal-snapshot-size=1` so that every WAL flush is snapshotted to Parquet at once instead of after ~10
minutes of writes: the file counts below are then the worst case a live server reaches over time.

1. End-to-end ingest of 600,000 rows in Movebank's export format into both databases: ours (`python -m ingest
   birds FILE`, one sink at a time) against the official clients' batching writers (influxdb-client's WriteApi,
   influxdb3-python's batching writer, from the same CSV through pandas), rows landed checked by a count.
2. The statistics trigger inside the engine: its own time per flush (the `ms=` of its log line) for a 1,000-row
   batch with 10,000 rows and with 1,000,000 rows in the table.
3. A Prophet forecast inside the engine (POST /api/v3/engine/peyton-forecast) on a 2,905-day series.
4. The Parquet files of the forecast tables after repeated forecast runs and reloads (system.parquet_files).

Without the binaries it prints why and ends with a skip line (exit 0). The last line is the ingest ratio.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ingest.formats import MOVEBANK_HEADER, STUDY
from tests.integration.conftest import write_env
from tests.integration.stacks.native import Binaries, NativeStack, find_binaries, free_port
from tests.integration.stacks.settings import StackSettings
from tests.plugins.conftest import daily_series, series_csv
from tests.support.paths import REPO

ROWS = 600_000
INDIVIDUALS = 60
FLUSHES = 5
# Core allows 5 databases and the stack has four (forecast, telemetry, monitoring, history): one bench database
# exists at a time in InfluxDB 3, each deleted once counted; InfluxDB 2 keeps both buckets.
BENCH_DBS = ("bench-ours", "bench-official")


def movebank_export(path: Path, rows: int) -> tuple[int, int]:
    """A Movebank website export (CRLF, quoted text columns): INDIVIDUALS birds, a fix every 10 minutes each.
    Returns the first and last timestamp (ns)."""
    per_bird = rows // INDIVIDUALS
    index = np.arange(per_bird * INDIVIDUALS)
    bird = index % INDIVIDUALS
    step = index // INDIVIDUALS
    start = pd.Timestamp("2018-05-01", tz="UTC").value
    stamps = start + step.astype(np.int64) * 600 * 10**9 + bird.astype(np.int64) * 7 * 10**9
    times = pd.to_datetime(stamps, utc=True).strftime("%Y-%m-%d %H:%M:%S.000")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "event-id": 20432407608 + index, "visible": "true", "timestamp": times,
        "location-long": np.round(6.5 + rng.normal(0, 0.2, len(index)), 7),
        "location-lat": np.round(53.0 + rng.normal(0, 0.2, len(index)), 7),
        "bar:barometric-pressure": "", "external-temperature": np.round(rng.normal(20, 5, len(index)), 1),
        "gps:dop": 3.2, "gps:satellite-count": 5 + index % 4, "gps-time-to-fix": 7.9,
        "ground-speed": np.round(np.abs(rng.normal(1, 1, len(index))), 3), "heading": (index * 37) % 360,
        "height-above-msl": 5.0, "import-marked-outlier": "false", "location-error-numerical": 5.3,
        "manually-marked-outlier": "false", "vertical-error-numerical": 8.6, "sensor-type": "gps",
        "individual-taxon-canonical-name": "Haematopus ostralegus", "tag-local-identifier": (5600 + bird).astype(str),
        "individual-local-identifier": (5515800 + bird).astype(str), "study-name": STUDY,
    })[MOVEBANK_HEADER]
    quoted = ["sensor-type", "individual-taxon-canonical-name", "tag-local-identifier",
              "individual-local-identifier", "study-name"]
    lines = pd.Series("", index=frame.index)
    for position, column in enumerate(MOVEBANK_HEADER):
        text = frame[column].astype(str)
        text = '"' + text.str.replace('"', '""') + '"' if column in quoted else text
        lines = text if position == 0 else lines + "," + text
    path.write_text(",".join(MOVEBANK_HEADER) + "\r\n" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    return int(stamps.min()), int(stamps.max())


def official_frame(path: Path) -> pd.DataFrame:
    """The same CSV as the official clients' users would shape it: our tags and fields, time as index."""
    raw = pd.read_csv(path)
    frame = pd.DataFrame({
        "species": raw["individual-taxon-canonical-name"], "individual": raw["individual-local-identifier"].astype(str),
        "tag": raw["tag-local-identifier"].astype(str), "sensor_type": raw["sensor-type"], "study": raw["study-name"],
        "lat": raw["location-lat"].astype(float), "lon": raw["location-long"].astype(float),
        "visible": raw["visible"].astype(str).str.lower() == "true",
        "outlier": raw["manually-marked-outlier"].astype(str).str.lower() == "true",
    })
    for column in ("external-temperature", "gps:dop", "gps:satellite-count", "gps-time-to-fix", "ground-speed",
                   "heading", "height-above-msl", "location-error-numerical", "vertical-error-numerical"):
        frame[re.sub(r"[^a-z0-9]+", "_", column)] = raw[column].astype(float)
    frame.index = pd.to_datetime(raw["timestamp"], utc=True)
    frame.index.name = "time"
    return frame


TAGS = ["species", "individual", "tag", "sensor_type", "study"]


def official_v2(stack: NativeStack, path: Path, bucket: str) -> float:
    from influxdb_client import InfluxDBClient, WriteOptions

    failures: list[str] = []
    started = time.perf_counter()
    data = official_frame(path)
    client = InfluxDBClient(url=stack.influxdb2_url, token=stack.env["INFLUXDB2_ADMIN_TOKEN"],
                            org=stack.env["INFLUXDB2_ORG"], enable_gzip=True, timeout=120_000)
    options = WriteOptions(batch_size=5_000, flush_interval=1_000)
    with client, client.write_api(write_options=options,
                                  error_callback=lambda conf, data, exc: failures.append(str(exc))) as write_api:
        write_api.write(bucket=bucket, record=data, data_frame_measurement_name="bird_fixes",
                        data_frame_tag_columns=TAGS)
    seconds = time.perf_counter() - started
    assert not failures, failures[:3]
    return seconds


def official_v3(stack: NativeStack, path: Path, database: str) -> float:
    from influxdb_client_3 import InfluxDBClient3, WriteOptions, write_client_options

    failures: list[str] = []
    started = time.perf_counter()
    data = official_frame(path)
    options = write_client_options(write_options=WriteOptions(batch_size=5_000, flush_interval=1_000),
                                   error_callback=lambda conf, data, exc: failures.append(str(exc)))
    client = InfluxDBClient3(host=stack.influxdb3_url, token=stack.env["INFLUXDB3_ADMIN_TOKEN"], database=database,
                             enable_gzip=True, write_client_options=options)
    client.write(record=data, data_frame_measurement_name="bird_fixes", data_frame_tag_columns=TAGS)
    client.close()
    seconds = time.perf_counter() - started
    assert not failures, failures[:3]
    return seconds


def ours(stack: NativeStack, path: Path, database: str, sink: str) -> float:
    # The bench's own buckets: the ingest's service token writes only the stack's (influxdb2-init), so the load
    # gets the operator token, as the official client does.
    env = {"INGEST_BUCKET": database, "INGEST_HISTORY_BUCKET": database,
           "INGEST_INFLUXDB2": str(sink == "influxdb2").lower(),
           "INGEST_INFLUXDB3": str(sink == "influxdb3").lower(), **stack.operator_env}
    started = time.perf_counter()
    result = stack.ingest("birds", str(path), "--no-progress", env=env, timeout=3600)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    return seconds


def count_v3(stack: NativeStack, database: str, first: int, last: int) -> int:
    rows = stack.sql(database, "SELECT count(*) AS n FROM bird_fixes WHERE "
                               f"time >= to_timestamp_nanos({first}) AND time <= to_timestamp_nanos({last})")
    return int(rows[0]["n"]) if rows else 0


def count_v2(stack: NativeStack, bucket: str) -> int:
    flux = (f'from(bucket: "{bucket}") |> range(start: 2018-01-01T00:00:00Z, stop: 2020-01-01T00:00:00Z) '
            '|> filter(fn: (r) => r._measurement == "bird_fixes" and r._field == "lat") |> group() |> count()')
    return stack.flux_count(flux)


def create_bucket(stack: NativeStack, name: str) -> None:
    headers = stack.influxdb2_headers
    org_id = requests.get(f"{stack.influxdb2_url}/api/v2/orgs", params={"org": stack.env["INFLUXDB2_ORG"]},
                          headers=headers, timeout=10).json()["orgs"][0]["id"]
    requests.post(f"{stack.influxdb2_url}/api/v2/buckets", json={"orgID": org_id, "name": name},
                  headers=headers, timeout=10)


def ingest_benchmark(stack: NativeStack, folder: Path) -> dict[str, float]:
    path = folder / "movebank-export.csv"
    first, last = movebank_export(path, ROWS)
    for database in BENCH_DBS:
        create_bucket(stack, database)
    results, landed = {}, {}
    for name, database, write in (("ours -> InfluxDB 3", "bench-ours", lambda db: ours(stack, path, db, "influxdb3")),
                                  ("influxdb3-python batching writer -> InfluxDB 3", "bench-official",
                                   lambda db: official_v3(stack, path, db))):
        requests.post(f"{stack.influxdb3_url}/api/v3/configure/database", json={"db": database},
                      headers=stack.influxdb3_headers, timeout=30)
        results[name] = write(database)
        time.sleep(2)
        landed[name] = count_v3(stack, database, first, last)
        requests.delete(f"{stack.influxdb3_url}/api/v3/configure/database", params={"db": database},
                        headers=stack.influxdb3_headers, timeout=60)
    results["ours -> InfluxDB 2"] = ours(stack, path, "bench-ours", "influxdb2")
    results["influxdb_client batching WriteApi -> InfluxDB 2"] = official_v2(stack, path, "bench-official")
    time.sleep(2)
    landed["ours -> InfluxDB 2"] = count_v2(stack, "bench-ours")
    landed["influxdb_client batching WriteApi -> InfluxDB 2"] = count_v2(stack, "bench-official")
    print(f"1. ingest of {ROWS:,} Movebank rows ({INDIVIDUALS} birds, 14 fields), CSV file to acknowledged writes")
    for name, seconds in results.items():
        print(f"   {name:48s} {seconds:7.1f} s {ROWS / seconds:10,.0f} rows/s   landed {landed[name]:,}")
        assert landed[name] == ROWS, f"{name}: {landed[name]:,} of {ROWS:,} rows landed"
    return results


def flush_ms(stack: NativeStack, rows_in_table: int, batch_start: int) -> float:
    """Write a 1,000-row sensor batch; the statistics trigger's own time for it (`ms=` in its log line)."""
    lines = "\n".join(f"sensors,device=bench-{i % 10},location=lab temperature={20 + i % 7}.5,humidity={40 + i % 9}.0,"
                      f"co2={500 + i}.0 {batch_start + i * 10**9}" for i in range(1000))
    since = time.time_ns()
    answer = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", params={"db": "telemetry"}, data=lines,
                           headers=stack.influxdb3_headers, timeout=60)
    assert answer.status_code == 204, answer.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = stack.sql("telemetry", "SELECT log_text FROM system.processing_engine_logs WHERE "
                                      f"trigger_name = 'sensors-statistics' AND event_time >= "
                                      f"to_timestamp_nanos({since}) ORDER BY event_time")
        found = [float(m.group(1)) for row in rows
                 for m in [re.search(r"statistics written .*ms=([\d.]+)", row["log_text"])] if m]
        if found:
            return max(found)
        time.sleep(1)
    raise TimeoutError(f"no statistics log line for the batch with {rows_in_table:,} rows in the table")


def persisted(stack: NativeStack, database: str, table: str) -> tuple[int, int]:
    """(files, rows) of a table in Parquet, from system.parquet_files."""
    rows = stack.sql(database, "SELECT count(*) AS files, sum(row_count) AS stored FROM system.parquet_files "
                               f"WHERE table_name = '{table}'")
    return int(rows[0]["files"] or 0), int(rows[0]["stored"] or 0)


def row_count(stack: NativeStack, database: str, table: str) -> int:
    """count(*) a year at a time: one scan of a table of daily files (the Peyton series: 2,905) is more than the
    stack's --query-file-limit (2,000)."""
    years = range(2000, datetime.now(UTC).year + 2)
    return sum(int(stack.sql(database, f'SELECT count(*) AS n FROM "{table}" WHERE time >= '
                                       f"'{year}-01-01T00:00:00Z' AND time < '{year + 1}-01-01T00:00:00Z'")[0]["n"])
               for year in years)


def settle(stack: NativeStack, database: str, tables: tuple[str, ...], marker_ns: int) -> dict[str, int]:
    """Parquet files per table once every row written so far is in Parquet.

    Core snapshots only WAL periods older than the 10-minute window of the newest write
    (influxdb3_wal/src/snapshot_tracker.rs, v3.6.0), so a write stamped later (in a table of its own) lets the
    rows just written be persisted (a marker a second: three WAL periods make it persist everything); then wait
    until the files hold every row the table answers."""
    deadline = time.monotonic() + 300
    for tick in itertools.count():
        if time.monotonic() > deadline:
            break
        answer = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", params={"db": database},
                               data=f"bench_marker value=1i {marker_ns + tick}", headers=stack.influxdb3_headers,
                               timeout=60)
        assert answer.status_code == 204, answer.text
        known = {row["table_name"] for row in stack.sql(
            database, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox'")}
        counts, done = {}, True
        for table in tables:
            files, stored = persisted(stack, database, table)
            total = row_count(stack, database, table) if table in known else 0
            counts[table] = files
            done = done and stored >= total
        if done:
            return counts
        time.sleep(1)
    raise TimeoutError(f"rows of {', '.join(tables)} not persisted within 300 s")


def statistics_benchmark(stack: NativeStack) -> float:
    hour = 3_600 * 10**9
    now = time.time_ns() // hour * hour
    loaded = 0
    results: dict[int, list[float]] = {}
    batch = 0
    for target in (10_000, 1_000_000):
        # Older readings, written while the trigger is off, fill the table up to the target.
        stack_disable(stack, True)
        while loaded < target:
            chunk = min(100_000, target - loaded)
            lines = "\n".join(f"sensors,device=fill-{i % 50},location=hall temperature={(i % 300) / 10},"
                              f"humidity=50.0,co2=600.0 {now - 400 * hour + (loaded + i) * 10**9}"
                              for i in range(chunk))
            answer = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", params={"db": "telemetry"},
                                   data=lines, headers=stack.influxdb3_headers, timeout=300)
            assert answer.status_code == 204, answer.text
            loaded += chunk
        # Measure a table at rest, not one the server is still persisting on the same two cores.
        settle(stack, "telemetry", ("sensors",), now - 100 * hour)
        stack_disable(stack, False)
        results[target] = []
        for _ in range(FLUSHES):
            results[target].append(flush_ms(stack, target, now + batch * 1_000 * 10**9))
            batch += 1
    files = persisted(stack, "telemetry", "sensors")[0]
    print(f"2. statistics trigger (bucket 1h), one 1,000-row flush, its own time in the engine "
          f"(median of {FLUSHES})")
    for target, timings in results.items():
        print(f"   {target:>9,} rows in the table: {np.median(timings):8.1f} ms   "
              f"(each: {', '.join(f'{ms:.1f}' for ms in timings)})")
    print(f"   the 1M-row table is {files:,} Parquet files")
    ratio = float(np.median(results[1_000_000]) / np.median(results[10_000]))
    print(f"   1M/10k: {ratio:.2f} (target <= 1.5)")
    return ratio


def stack_disable(stack: NativeStack, disable: bool) -> None:
    action = "disable" if disable else "enable"
    answer = requests.post(f"{stack.influxdb3_url}/api/v3/configure/processing_engine_trigger/{action}",
                           params={"db": "telemetry", "trigger_name": "sensors-statistics"},
                           headers=stack.influxdb3_headers, timeout=30)
    assert answer.status_code == 200, answer.text


def forecast_benchmark(stack: NativeStack, folder: Path) -> None:
    series = folder / "peyton.csv"
    shared = REPO.parent / "shared" / "data" / "peyton_manning.csv"
    if shared.is_file():
        shutil.copyfile(shared, series)
        label = "Peyton Manning series (shared data)"
    else:
        series.write_text(series_csv(daily_series(2905, start="2007-12-10")))
        label = "generated 2,905-day series"
    trigger = {"db": "forecast", "plugin_filename": "forecast/load_series", "trigger_name": "bench-load",
               "trigger_specification": "request:bench-load", "trigger_arguments": {"url": str(series)},
               "disabled": False, "trigger_settings": {"run_async": False, "error_behavior": "log"}}
    requests.post(f"{stack.influxdb3_url}/api/v3/configure/processing_engine_trigger", json=trigger,
                  headers=stack.influxdb3_headers, timeout=60)
    timings, files = [], []
    for run in range(5):
        loaded = stack.engine("bench-load", method="POST")
        assert loaded.status_code == 200, loaded.text
        started = time.perf_counter()
        answer = stack.engine("peyton-forecast", method="POST")
        timings.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        counts = settle(stack, "forecast", ("peyton_views", "peyton_forecast", "forecast_evaluation"),
                        time.time_ns() + 3_600 * 10**9)
        files.append((run + 1, loaded.json()["rows_written"], counts))
    print(f"3. Prophet forecast inside the engine (365 days, 30-day holdout) on the {label}:")
    print(f"   {np.median(timings):.1f} s a run (median; each: {', '.join(f'{t:.1f}' for t in timings)} s)")
    print("4. Parquet files after each reload of the same series and forecast run (system.parquet_files):")
    for run, written, counts in files:
        print(f"   run {run}: reload wrote {written:>5,} rows; files " + ", ".join(f"{k} {v:,}" for k, v in
                                                                                counts.items()))


@contextlib.contextmanager
def real_stack(binaries: Binaries, folder: Path, *influxdb3_extra: str,
               settings: dict[str, str] | None = None,
               services: tuple[str, ...] = ("influxdb2", "influxdb3")) -> Iterator[NativeStack]:
    """The databases as docker-compose.yml starts them (plus `influxdb3_extra` and .env `settings`), in a folder
    of their own."""
    (folder / "backups").mkdir(parents=True)
    env_file, env = write_env(folder, {"INFLUXDB2_PORT": str(free_port()), "INFLUXDB3_PORT": str(free_port()),
                                       "GRAFANA_PORT": str(free_port()), "BACKUP_DIR": str(folder / "backups"),
                                       **(settings or {})})
    stack = NativeStack(env=env, root=folder, binaries=binaries, settings=StackSettings.load(env_file, folder / "v"),
                        influxdb3_extra=influxdb3_extra)
    try:
        stack.up(services)
        yield stack
    finally:
        stack.close()


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    binaries, missing = find_binaries()
    if binaries is None:
        print(f"real-server benchmarks skipped: {missing}")
        print("ratio: skipped (no server binaries)")
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-real-"))
    # Ingest runs on the servers as docker-compose.yml starts them. The statistics and Parquet figures need
    # the rows just written in Parquet files, so that stack snapshots after every WAL flush.
    with real_stack(binaries, folder / "ingest") as stack:
        versions = stack.versions()
        print(f"servers: InfluxDB 2 {versions['influxdb2']}, InfluxDB 3 Core {versions['influxdb3']} "
              f"({binaries.influxd}, {binaries.influxdb3})")
        results = ingest_benchmark(stack, folder)
    with real_stack(binaries, folder / "engine", "--wal-snapshot-size=1") as stack:
        statistics_benchmark(stack)
        forecast_benchmark(stack, folder)
    v3 = results["influxdb3-python batching writer -> InfluxDB 3"] / results["ours -> InfluxDB 3"]
    v2 = results["influxdb_client batching WriteApi -> InfluxDB 2"] / results["ours -> InfluxDB 2"]
    print(f"ingest ratio ours/official on real servers: InfluxDB 3 {v3:.1f}x, InfluxDB 2 {v2:.1f}x "
          f"(the smaller: {min(v2, v3):.1f}x)")


if __name__ == "__main__":
    main()
