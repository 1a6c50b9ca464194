"""Live writes during a bulk load on a real InfluxDB 3 Core: the bird study unpaced, then in bounded steps.

A bare Core from INFLUXDB3_BIN (or PATH) with `--wal-snapshot-size=1` (a snapshot every WAL flush, the cadence
under which bounded steps bound each snapshot), fresh for each run. `python -m ingest birds` loads the real
O_ASSEN study (../shared/data/movebank_oystercatcher.csv, 20,156 fixes over a year: 11,668 ten-minute windows)
while a probe writes one live point every 0.25 s to another table and times each answer, through the load and
10 s after it. Run 1: INGEST_WINDOWS_PER_SECOND=0 (the whole study in one request, one snapshot of every window);
run 2: PACED windows a second.

Without the binary or the study it prints why and ends with a skip line (exit 0). The last line is the ratio of
the worst live-write latency, unpaced / paced.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.stacks.native import binary, start_influxdb3
from tests.support.paths import REPO

STUDY = REPO.parent / "shared" / "data" / "movebank_oystercatcher.csv"
PACED = 400
AFTER = 10.0


def run(server: Path, windows_per_second: int) -> tuple[float, list[float], int]:
    """(load seconds, every live write's latency, Parquet files of the study) for one fresh server."""
    folder = Path(tempfile.mkdtemp(prefix="bench-bulk-live-"))
    process, url = start_influxdb3(server, "influxdb3", folder / "server.log", "--node-id=bench",
                                   "--object-store=file", f"--data-dir={folder / 'data'}", "--without-auth",
                                   "--wal-snapshot-size=1")
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            started = time.perf_counter()
            answer = requests.post(f"{url}/api/v3/write_lp", params={"db": "telemetry", "precision": "nanosecond"},
                                   data=f"probe,device=p v={number} {time.time_ns()}", timeout=300)
            latencies.append(time.perf_counter() - started)
            assert answer.status_code in (200, 204), answer.text
            stop.wait(0.25)

    try:
        requests.post(f"{url}/api/v3/write_lp", params={"db": "telemetry"}, data="probe,device=p v=0",
                      timeout=30).raise_for_status()
        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        env = {**os.environ, "INFLUXDB3_URL": url, "INFLUXDB3_TOKEN": "unused", "INGEST_INFLUXDB2": "false",
               "INGEST_STATE_DIR": str(folder / "state"), "INGEST_WINDOWS_PER_SECOND": str(windows_per_second)}
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "ingest", "birds", str(STUDY), "--no-progress"], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=1800)
        seconds = time.perf_counter() - started
        assert result.returncode == 0, result.stderr[-2000:]
        time.sleep(AFTER)
        stop.set()
        thread.join()
        files = requests.get(f"{url}/api/v3/query_sql", timeout=60, params={
            "db": "telemetry", "format": "json",
            "q": "SELECT count(*) AS n FROM system.parquet_files WHERE table_name = 'bird_fixes'"}).json()[0]["n"]
        return seconds, latencies, int(files)
    finally:
        stop.set()
        process.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    server = binary("INFLUXDB3_BIN", "influxdb3")
    if server is None or not STUDY.is_file():
        print(f"bulk/live benchmark skipped: {'no influxdb3 (INFLUXDB3_BIN)' if server is None else f'no {STUDY}'}")
        print("ratio: skipped (no server binary or no study)")
        return
    worst = {}
    for rate in (0, PACED):
        seconds, latencies, files = run(server, rate)
        worst[rate] = max(latencies)
        label = "unpaced" if rate == 0 else f"{rate} windows/s"
        print(f"bird study, {label}: load {seconds:.1f} s, {files} Parquet files; live writes through the load and "
              f"{AFTER:.0f} s after: {len(latencies)}, median {statistics.median(latencies) * 1000:.0f} ms, worst "
              f"{worst[rate]:.2f} s")
    print(f"ratio: worst live write, unpaced {worst[0]:.2f} s / {PACED} windows/s {worst[PACED]:.2f} s = "
          f"{worst[0] / worst[PACED]:.1f}x")


if __name__ == "__main__":
    main()
