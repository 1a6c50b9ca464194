"""Peak memory of `python -m ingest birds` as the input grows past the batch budget: it must stay flat.

Generates Movebank exports (the real 22-column layout, CRLF, quoted text) of 1x, 10x and 40x INGEST_BATCH_BYTES
(8 MiB, also the CSV block the reader works in), loads each in a fresh process into both databases (a loopback
server that discards writes) and reads that process's peak RSS. Also shown: the peak of a process that only
imports the app (the fixed cost). At 1x the whole input is a single block; from about 2 blocks on, the reader
holds one block and its carry-over while the writer still references the previous chunk, and that is where the
peak settles. Last line: peak at 40x over peak at 10x (target: about 1, flat), with the 1x figure beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.loopback import DiscardServer  # noqa: E402

BUDGET = 8 << 20
CSV_BYTES_PER_ROW = 311  # one fix of the generated export
MULTIPLES = (1, 10, 40)
STUDY = "O_ASSEN - Eurasian oystercatchers (Haematopus ostralegus, Haematopodidae) breeding in Assen (the Netherlands)"

# VmHWM, not ru_maxrss: Linux carries a forked child's pre-exec high-water mark (the parent's pages) into
# ru_maxrss, while VmHWM belongs to the process's own address space.
MEASURE = """
import re, sys
import ingest.jobs
from ingest.__main__ import main
code = main(sys.argv[1:]) if len(sys.argv) > 1 else 0
status = open("/proc/self/status").read()
print(code, re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
"""


def export(path: Path, rows: int) -> None:
    rng = np.random.default_rng(rows)
    stamps = pd.date_range("2018-05-04 09:43:15", periods=rows, freq="7min")
    frame = pd.DataFrame({
        "event-id": np.arange(20432407608, 20432407608 + rows), "visible": "true",
        "timestamp": stamps.strftime("%Y-%m-%d %H:%M:%S.000"),
        "location-long": np.round(6.58 + rng.normal(0, 0.01, rows), 7),
        "location-lat": np.round(53.0 + rng.normal(0, 0.01, rows), 7), "bar:barometric-pressure": "",
        "external-temperature": np.round(rng.normal(25, 5, rows), 1), "gps:dop": np.round(rng.uniform(1, 5, rows), 1),
        "gps:satellite-count": rng.integers(4, 12, rows), "gps-time-to-fix": np.round(rng.uniform(5, 60, rows), 1),
        "ground-speed": rng.uniform(0, 3, rows), "heading": rng.uniform(0, 360, rows),
        "height-above-msl": np.round(rng.normal(5, 2, rows), 1), "import-marked-outlier": "false",
        "location-error-numerical": np.round(rng.uniform(2, 9, rows), 1), "manually-marked-outlier": "false",
        "vertical-error-numerical": np.round(rng.uniform(3, 12, rows), 1), "sensor-type": "gps",
        "individual-taxon-canonical-name": "Haematopus ostralegus",
        "tag-local-identifier": rng.choice(["5642", "5643", "5650", "5661"], rows),
        "individual-local-identifier": rng.choice(["5515867", "5515851", "5515879", "5515868"], rows),
        "study-name": STUDY,
    })
    frame.to_csv(path, index=False, lineterminator="\r\n", quoting=2)  # csv.QUOTE_NONNUMERIC: text quoted


def peak(args: list[str], env: dict[str, str]) -> tuple[int, float]:
    result = subprocess.run([sys.executable, "-c", MEASURE, *args], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=900, check=False)
    code, kib = result.stdout.split()[-2:]
    if int(code) != 0:
        raise SystemExit(f"ingest exited with {code}:\n{result.stderr[-2000:]}")
    return int(code), int(kib) / 1024


def main() -> None:
    with DiscardServer() as server, tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PYTHONPATH": str(REPO), "INFLUXDB2_URL": server.url, "INFLUXDB3_URL": server.url,
               "INFLUXDB2_TOKEN": "token", "INFLUXDB3_TOKEN": "token", "INGEST_STATE_DIR": f"{folder}/state",
               "INGEST_BATCH_BYTES": str(BUDGET), "INGEST_BATCH_ROWS": "1000000", "LOG_LEVEL": "WARNING"}
        _, imports = peak([], env)
        results = []
        for multiple in MULTIPLES:
            rows = BUDGET * multiple // CSV_BYTES_PER_ROW
            path = Path(folder) / f"movebank-{multiple}x.csv"
            export(path, rows)
            size = path.stat().st_size
            _, mib = peak(["birds", str(path), "--skip-buckets", "--no-progress"], env)
            results.append((multiple, rows, size, mib))
            path.unlink()
    print(f"batch budget (INGEST_BATCH_BYTES): {BUDGET >> 20} MiB; CSV block: 8 MiB; both databases")
    print(f"imports only: peak RSS {imports:7.1f} MiB")
    for multiple, rows, size, mib in results:
        print(f"input {multiple:3d}x budget: {rows:9,} rows, {size / 2**20:7.1f} MiB CSV -> peak RSS {mib:7.1f} MiB")
    first, middle, last = results
    print(f"memory ratio peak {last[0]}x / peak {middle[0]}x: {last[3] / middle[3]:.2f} "
          f"({last[3]:.0f} vs {middle[3]:.0f} MiB; {first[0]}x, one block: {first[3]:.0f} MiB; flat = about 1.0)")


if __name__ == "__main__":
    main()
