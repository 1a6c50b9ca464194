"""History loads in steps (ingest/pacing.py, README "Bulk loads and live writes") on a real InfluxDB 3 Core: the
ingest's own `birds` command loads a generated study while a probe writes live points, and Core's Parquet files
say how many windows each snapshot persisted. Core runs with `--wal-snapshot-size=2` (a snapshot after 3 WAL
files, seconds apart) so the steps take seconds, not Core's default quarter of an hour each, and with
`--query-file-limit=100`, fewer files than the study has, so that a reload must read back what is stored in parts.
Needs INFLUXDB3_BIN (or `influxdb3` on PATH); skipped with the reason otherwise, never faked."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import requests

from ingest.pacing import WINDOW_NS
from tests.ingest.formats import movebank_csv, movebank_row
from tests.support.paths import REPO

pytestmark = pytest.mark.integration

BIRDS, FIXES = 4, 1200  # each bird a fix every 7 minutes over the same 840 ten-minute windows


@pytest.fixture
def core(tmp_path: Path):
    from tests.integration.stacks.native import binary, start_influxdb3

    server = binary("INFLUXDB3_BIN", "influxdb3")
    if server is None:
        pytest.skip("needs an InfluxDB 3 Core binary (INFLUXDB3_BIN, or `influxdb3` on PATH)")
    process, url = start_influxdb3(server, "influxdb3", tmp_path / "server.log", "--node-id=steps",
                                   "--object-store=file", f"--data-dir={tmp_path / 'data'}", "--without-auth",
                                   "--wal-snapshot-size=2", "--query-file-limit=100")
    try:
        yield url, tmp_path / "data"
    finally:
        process.stop()


def sql(url: str, database: str, query: str) -> list[dict]:
    answer = requests.get(f"{url}/api/v3/query_sql", params={"db": database, "q": query, "format": "json"},
                          timeout=60)
    answer.raise_for_status()
    return answer.json()


def load(url: str, tmp_path: Path, study: Path, windows_per_snapshot: int) -> tuple[subprocess.CompletedProcess,
                                                                                        list[float]]:
    """`python -m ingest birds` into `history` while a live point goes to `telemetry` every 0.2 s."""
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            requests.post(f"{url}/api/v3/write_lp", params={"db": "telemetry", "precision": "nanosecond"},
                          data=f"probe,device=p v=1 {time.time_ns()}", timeout=120).raise_for_status()
            latencies.append(time.perf_counter() - started)
            stop.wait(0.2)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    env = {**os.environ, "INFLUXDB3_URL": url, "INFLUXDB3_TOKEN": "unused", "INGEST_INFLUXDB2": "false",
           "INGEST_STATE_DIR": str(tmp_path / f"state-{windows_per_snapshot}"), "LOG_FORMAT": "text",
           "INGEST_WINDOWS_PER_SNAPSHOT": str(windows_per_snapshot), "INGEST_BATCH_ROWS": "100"}
    try:
        result = subprocess.run([sys.executable, "-m", "ingest", "birds", str(study), "--no-progress"], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=600)
    finally:
        stop.set()
        thread.join()
    return result, latencies


def fix_files_per_snapshot(url: str, windows: int) -> Counter[str]:
    """The study's Parquet files by the snapshot that wrote them (a file is named by its snapshot's last WAL
    file, paths.rs `ParquetFilePath::new`), once Core lists a file for every window of the study (a live point a
    second meanwhile: Core snapshots only as WAL files come)."""
    query = "SELECT path FROM system.parquet_files WHERE table_name = 'bird_fixes'"
    deadline = time.monotonic() + 120
    while len(paths := [row["path"] for row in sql(url, "history", query)]) < windows:
        assert time.monotonic() < deadline, f"{len(paths)} of {windows} windows persisted after 120 s"
        requests.post(f"{url}/api/v3/write_lp", params={"db": "telemetry"}, data="probe,device=p v=2",
                      timeout=30).raise_for_status()
        time.sleep(1)
    return Counter(path.rsplit("/", 1)[1] for path in paths)


def generated_study(tmp_path: Path) -> tuple[Path, int]:
    """A Movebank export of BIRDS birds of FIXES fixes each over the same days, listed bird after bird as Movebank
    exports them, and the 10-minute windows it holds."""
    rows = [movebank_row(fix, individual=f"bird-{bird}") for bird in range(BIRDS) for fix in range(FIXES)]
    study = tmp_path / "study.csv"
    study.write_bytes(movebank_csv(rows))
    return study, len({pd.Timestamp(row["timestamp"], tz="UTC").value // WINDOW_NS for row in rows})


def test_a_history_load_in_steps_bounds_every_snapshot_and_loses_nothing(core, tmp_path):
    url, _ = core
    study, windows = generated_study(tmp_path)
    requests.post(f"{url}/api/v3/write_lp", params={"db": "telemetry"}, data="probe,device=p v=0",
                  timeout=30).raise_for_status()

    result, latencies = load(url, tmp_path, study, 200)
    assert result.returncode == 0, result.stderr[-3000:]
    per_snapshot = fix_files_per_snapshot(url, windows)
    rows = sql(url, "history", "SELECT sum(row_count) AS n FROM system.parquet_files WHERE table_name = 'bird_fixes'")
    assert rows == [{"n": BIRDS * FIXES}]  # every fix persisted, once (a count(*) would pass the file limit)
    assert max(per_snapshot.values()) <= 200 and len(per_snapshot) >= windows // 200
    assert sum(per_snapshot.values()) == windows  # sent in time order: each window in one step, one file
    steps = sql(url, "monitoring", "SELECT max(step) AS steps FROM ingest_steps WHERE database = 'history'")
    assert 1 <= steps[0]["steps"] <= windows // 200  # a progress point a second while a full step waited
    assert "windows persisted by InfluxDB 3" in result.stderr and latencies

    again, _ = load(url, tmp_path, study, 200)  # what is stored spans 840 files: read back in parts of at most 100
    assert again.returncode == 0, again.stderr[-3000:]
    assert "could not read" not in again.stderr
    assert f"influxdb3: written 0 (0 rows/s), already stored unchanged {BIRDS * FIXES:,}" in again.stderr


def test_without_steps_a_snapshot_takes_more_than_a_step(core, tmp_path):
    """The control: the same study unstepped (what stalls live writes) goes past a step's budget in one snapshot."""
    url, _ = core
    study, windows = generated_study(tmp_path)
    result, _ = load(url, tmp_path, study, 0)
    assert result.returncode == 0, result.stderr[-3000:]
    per_snapshot = fix_files_per_snapshot(url, windows)
    assert max(per_snapshot.values()) > 200  # past a step's budget in one snapshot
