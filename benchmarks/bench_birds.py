"""The Birds dashboard on a real bird study in real InfluxDB 3 Core: raw fixes against the track summaries it reads
(the rollups plugin with kind tracks, grafana/history.py `track_source`), and what a bulk load does to live writes.

The stack's own servers and provisioning (tests/integration/stacks/native.py: influxdb3-init creates the
bird-tracks triggers) with `--wal-snapshot-size=1`, so each 10-minute window of the study becomes its own Parquet
file as on a stack that received it live. Steps:

1. Bulk load: `python -m ingest birds` of the real O_ASSEN study (../shared/data/movebank_oystercatcher.csv, CC0)
   into InfluxDB 3, while a probe writes one live sensor point every 0.25 s and times each answer.
2. The real bird-tracks trigger (every minute) summarizes the study: time until the weekly level is done, and each
   run's own time (its log line's `ms=`).
3. Every panel and variable query of the Birds dashboard over Flight SQL (as Grafana reads it), warm (median of 3
   after a first run), at the whole study's span, 30 days and 7 days at its end, and the dashboard's default 10
   years: as generated (summaries) and with every tier read from the raw fixes (the dashboard before the
   summaries). Answers compared. Then the dashboard as shipped, loaded as Grafana's page loads it (the variables
   in order, the panel queries 6 at a time): the wall-clock time, median of 3.

Without the binaries or the data set it prints why and ends with a skip line (exit 0). The last line is the ratio
of the whole dashboard's time at its default range, raw / summaries.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compose" / "influxdb3-init"))  # the declared tables

from benchmarks.bench_real_servers import real_stack
from benchmarks.dashboards import BROWSER_CONNECTIONS, Files, load_seconds, parquet_files, run_dashboard
from grafana import history
from grafana.boards import birds
from grafana.generate import render
from ingest.schema import BIRD_FIXES
from plugins.stacklib.tracks import fix_columns
from tests.grafana.expand import TimeRange
from tests.grafana.sqlrun import declared_schemas
from tests.integration.stacks.native import NativeStack, find_binaries
from tests.support.paths import REPO

STUDY = REPO.parent / "shared" / "data" / "movebank_oystercatcher.csv"
STUDY_DB = BIRD_FIXES.database  # history loaded from the past: `history`, which no raw retention reaches
RUNS = 3
STACK_LIMIT = 2_000  # docker-compose.yml's --query-file-limit: the raw dashboard needs more, so the bench raises it
_MS = re.compile(r"\bms=([0-9.]+)")


def raw_track_source(table: str, tags, where: str = "") -> str:
    """The dashboard before the summaries: every fix of the range, as a summary of one fix."""
    extra = f" AND {where}" if where else ""
    return (f"(SELECT time, {', '.join([*tags, *fix_columns()])} FROM {table}\n"
            f"  WHERE time >= $__timeFrom() AND time <= $__timeTo(){extra}) AS {table}")


@contextmanager
def raw_tiers():
    original = history.track_source
    history.track_source = raw_track_source
    try:
        yield
    finally:
        history.track_source = original


def board_json(raw: bool) -> dict:
    """The dashboard as provisioned (or as it read the raw fixes)."""
    if not raw:
        return json.loads(render(birds.build()))
    with raw_tiers():
        return json.loads(render(birds.build()))


def live_probe(stack: NativeStack, stop: threading.Event, latencies: list[float]) -> None:
    """One sensor point every 0.25 s, as the live ingest writes them; each answer's time."""
    number = 0
    while not stop.is_set():
        number += 1
        line = f"sensors,device=probe,location=bench temperature={20 + number % 7}.5 {time.time_ns()}"
        started = time.perf_counter()
        answer = requests.post(f"{stack.influxdb3_url}/api/v3/write_lp", headers=stack.influxdb3_headers,
                               params={"db": "telemetry", "precision": "nanosecond"}, data=line, timeout=120)
        latencies.append(time.perf_counter() - started)
        assert answer.status_code in (200, 204), answer.text
        stop.wait(0.25)


def bulk_load(stack: NativeStack) -> None:
    latencies: list[float] = []
    stop = threading.Event()
    probe = threading.Thread(target=live_probe, args=(stack, stop, latencies), daemon=True)
    probe.start()
    started = time.perf_counter()
    result = stack.ingest("birds", stack.ingest_file(STUDY), "--no-progress", timeout=3600,
                          env={"INGEST_INFLUXDB2": "false", "INGEST_INFLUXDB3": "true"})
    seconds = time.perf_counter() - started
    stop.set()
    probe.join()
    assert result.returncode == 0, result.stderr[-2000:]
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    print(f"bulk load of the study: {seconds:.1f} s; live writes meanwhile: {len(latencies)}, median "
          f"{statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, worst {latencies[-1] * 1000:.0f} ms")


def summarized(stack: NativeStack) -> tuple[int, int]:
    """Wait until the weekly summaries hold every fix; (files of the raw table, fixes)."""
    started = time.perf_counter()
    while True:  # counted again each time: right after a load, a snapshot in progress can count rows twice
        fixes = int(stack.sql(STUDY_DB, "SELECT count(*) AS n FROM bird_fixes")[0]["n"])
        rows = stack.sql(STUDY_DB, "SELECT sum(fixes) AS n FROM bird_fixes_7d")
        done = int(rows[0].get("n") or 0) if rows else 0
        if done == fixes:
            break
        if time.perf_counter() - started > 3600:
            raise RuntimeError(f"the weekly summaries hold {done} of {fixes} fixes after an hour")
        time.sleep(10)
    logs = stack.sql(STUDY_DB, "SELECT log_text FROM system.processing_engine_logs WHERE trigger_name = "
                                  "'bird-tracks' AND log_text LIKE '%rolled up%'")
    runs = [float(match.group(1)) for row in logs if (match := _MS.search(row["log_text"]))]
    files = int(stack.sql(STUDY_DB, "SELECT count(*) AS n FROM system.parquet_files "
                                       "WHERE table_name = 'bird_fixes'")[0]["n"])
    errors = stack.sql(STUDY_DB, "SELECT log_text FROM system.processing_engine_logs WHERE trigger_name LIKE "
                                    "'bird-track%' AND log_level = 'ERROR'")
    assert not errors, errors[:3]
    print(f"track summaries: {fixes} fixes in {files} Parquet files summarized {time.perf_counter() - started:.0f} s "
          f"after the load; {len(runs)} level steps, slowest {max(runs):.0f} ms, median {statistics.median(runs):.0f} "
          "ms")
    return files, fixes


def dashboard_seconds(stack: NativeStack, board: dict, time_range: TimeRange, now: datetime,
                      files: dict[str, Files]) -> tuple[float, int, dict]:
    """(the whole dashboard's time: every variable query, then every panel query, each the median of RUNS warm
    runs; the most files one scan opens; each query's answer, or the server's error, by label)."""
    samples = run_dashboard(stack.flight, board, "birds", time_range, now, files, RUNS + 1)
    for sample in samples:
        if sample.error:
            print(f"  {sample.label} failed: {sample.error[:160]}")
    return (sum(sample.median for sample in samples), max(sample.files for sample in samples),
            {sample.label: sample.error or sample.answer for sample in samples})


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    binaries, missing = find_binaries()
    if binaries is None or not STUDY.is_file():
        print(f"birds benchmark skipped: {missing or f'no {STUDY}'}")
        print("ratio: skipped (no server binaries or no study)")
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-birds-"))
    try:
        with real_stack(binaries, folder, "--wal-snapshot-size=1",
                        settings={"INFLUXDB3_QUERY_FILE_LIMIT": "20000"}) as stack:
            print(f"InfluxDB 3 Core {stack.versions()['influxdb3']}, 2 cores; study {STUDY.name}")
            bulk_load(stack)
            summarized(stack)
            span = stack.sql(STUDY_DB, "SELECT min(time) AS lo, max(time) AS hi FROM bird_fixes")[0]
            first, last = (datetime.fromisoformat(str(span[key]).replace("Z", "")).replace(tzinfo=UTC)
                           for key in ("lo", "hi"))
            now = datetime.now(UTC)
            ranges = {"whole study": TimeRange(first - timedelta(hours=1), last + timedelta(hours=1)),
                      "30 days": TimeRange(last - timedelta(days=30), last + timedelta(hours=1)),
                      "7 days": TimeRange(last - timedelta(days=7), last + timedelta(hours=1)),
                      "default 10 years": TimeRange(now - timedelta(days=3652), now)}
            boards = {"summaries": board_json(raw=False), "raw fixes": board_json(raw=True)}
            files = {STUDY_DB: parquet_files(stack.sql, STUDY_DB, declared_schemas()[STUDY_DB])}
            totals: dict[tuple[str, str], float] = {}
            for name, time_range in ranges.items():
                results = {kind: dashboard_seconds(stack, board, time_range, now, files)
                           for kind, board in boards.items()}
                for kind, (seconds, _, _) in results.items():
                    totals[(name, kind)] = seconds
                print(f"Birds dashboard, {name}: raw fixes {totals[(name, 'raw fixes')]:.2f} s "
                      f"(up to {results['raw fixes'][1]} files a scan), summaries {totals[(name, 'summaries')]:.2f} s "
                      f"(up to {results['summaries'][1]} files; the stack's limit {STACK_LIMIT}); every variable "
                      f"and panel query, median of {RUNS}")
                loads = [load_seconds(stack.flight, boards["summaries"], "birds", time_range, now) for _ in range(RUNS)]
                print(f"  loaded as Grafana's page loads it (variables in order, then the panels "
                      f"{BROWSER_CONNECTIONS} at a time): {statistics.median(loads):.2f} s, median of {RUNS}")
                fixes = {kind: next(answer for label, answer in answers.items() if "'Fixes' query A" in label)
                         for kind, (_, _, answers) in results.items()}
                if fixes["summaries"] != fixes["raw fixes"]:
                    print(f"  the Fixes stat differs: {fixes}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raw, tiers = totals[("default 10 years", "raw fixes")], totals[("default 10 years", "summaries")]
    print(f"ratio: the Birds dashboard at its default range, raw fixes {raw:.2f} s / summaries {tiers:.2f} s = "
          f"{raw / tiers:.1f}x")


if __name__ == "__main__":
    main()
