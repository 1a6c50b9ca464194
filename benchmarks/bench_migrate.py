"""Moving a bucket from InfluxDB 2 to InfluxDB 3 on real servers: `python -m ingest migrate` against InfluxData's
documented path on the same data.

The servers come from INFLUXD_BIN and INFLUXDB3_BIN (or PATH) and run with docker-compose.yml's settings, as in
bench_real_servers.py. The `telemetry` bucket gets bird fixes (a Movebank export: the real O_ASSEN study from
the shared data folder when it is there, plus a generated one of 60 birds) and two days of the simulated sensor
fleet, both loaded by the ingest app into InfluxDB 2 only. Then, into a database of its own each:

- ours: `python -m ingest migrate --bucket telemetry --no-verify` (plan, windows streamed, cursors), then
  `--verify-only` on its own (counts per window and field on both sides, a sample compared value by value),
  timed apart;
- InfluxData's documented path (docs.influxdata.com/influxdb/v2/write-data/migrate-data/migrate-oss: export the
  bucket as line protocol and write it to the other InfluxDB): `influxd inspect export-lp` (one line per field
  value), the file cut into pieces under Core's 10 MiB request limit (`influxdb3 write` sends its whole file in
  one request, influxdb3/src/commands/write.rs), and `influxdb3 write --file` for each piece.

Both results are checked by `migrate --verify-only` (every window's counts, a sample of points). Without the
binaries it prints why and ends with a skip line (exit 0). The last line is the ratio (documented path's time /
ours).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_real_servers import movebank_export, real_stack
from tests.integration.stacks.native import NativeStack, find_binaries
from tests.support.paths import REPO

BIRDS = 200_000
SENSOR_SPAN = "2d"
PIECE_BYTES = 10 * 1024 * 1024 - 64 * 1024  # under Core's --max-http-request-size (10 MiB)
TABLES = ("bird_fixes", "sensors")


def load_influxdb2(stack: NativeStack, folder: Path) -> dict[str, int]:
    """Birds and sensors into InfluxDB 2's telemetry bucket through the ingest app (InfluxDB 3 left out)."""
    env = {"INGEST_INFLUXDB3": "false", "SENSORS_DEVICES": "6", "SENSORS_INTERVAL": "10s"}
    sources = []
    shared = REPO.parent / "shared" / "data" / "movebank_oystercatcher.csv"
    if shared.is_file():
        sources.append(str(shared))
    generated = folder / "movebank-export.csv"
    movebank_export(generated, BIRDS)
    sources.append(str(generated))
    for args in (("birds", *sources), ("sensors", "--backfill", SENSOR_SPAN)):
        result = stack.ingest(*args, "--no-progress", env=env, timeout=3600)
        assert result.returncode == 0, result.stderr[-2000:]
    counts = {}
    for table in TABLES:
        field = "lat" if table == "bird_fixes" else "co2"
        query = (f'from(bucket: "telemetry") |> range(start: 2000-01-01T00:00:00Z) |> filter(fn: (r) => '
                 f'r._measurement == "{table}" and r._field == "{field}") |> group() |> count()')
        counts[table] = stack.flux_count(query)
    return counts


def verify(stack: NativeStack, database: str) -> tuple[float, str]:
    """`migrate --verify-only` against `database`: counts per window and field on both sides and a sample of
    points value by value (a day of data per query, so no query reads the whole table); (seconds, its verdict)."""
    started = time.perf_counter()
    checked = stack.ingest("migrate", "--bucket", "telemetry", "--database", database, "--no-progress",
                           "--verify-only", timeout=3600)
    seconds = time.perf_counter() - started
    verdict = next((line.split(" run=", 1)[-1].split(" ", 1)[-1] for line in checked.stderr.splitlines()
                    if "verify telemetry" in line), checked.stderr[-2000:])
    assert checked.returncode == 0, checked.stderr[-3000:]
    return seconds, verdict


def ours(stack: NativeStack, database: str) -> tuple[float, str]:
    started = time.perf_counter()
    moved = stack.ingest("migrate", "--bucket", "telemetry", "--database", database, "--no-progress", "--no-verify",
                         timeout=3600)
    seconds = time.perf_counter() - started
    assert moved.returncode == 0, moved.stderr[-3000:]
    summary = next(line for line in moved.stderr.splitlines() if "migrate telemetry: read" in line)
    return seconds, summary.split(" run=", 1)[-1].split(" ", 1)[-1].split(" source=", 1)[0]


def documented(stack: NativeStack, database: str, folder: Path) -> tuple[float, int, int]:
    """export-lp, cut under 10 MiB at line ends, `influxdb3 write --file` per piece; (seconds, lines, pieces)."""
    binaries = stack.binaries
    bucket_id = requests.get(f"{stack.influxdb2_url}/api/v2/buckets", params={"name": "telemetry"},
                             headers=stack.influxdb2_headers, timeout=10).json()["buckets"][0]["id"]
    engine = stack.service("influxdb2").host_path("/var/lib/influxdb2/engine")
    export = folder / "export.lp"
    started = time.perf_counter()
    subprocess.run([str(binaries.influxd), "inspect", "export-lp", "--bucket-id", bucket_id, "--engine-path",
                    str(engine), "--output-path", str(export)], check=True, capture_output=True, timeout=3600)
    pieces, lines = cut(export, folder / "pieces")
    for piece in pieces:
        result = subprocess.run([str(binaries.influxdb3), "write", "--host", stack.influxdb3_url, "--token",
                                 stack.env["INFLUXDB3_ADMIN_TOKEN"], "--database", database, "--file", str(piece)],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
    return time.perf_counter() - started, lines, len(pieces)


def cut(path: Path, folder: Path) -> tuple[list[Path], int]:
    """The export in pieces of at most PIECE_BYTES, at line ends (what `split -C 10m` does)."""
    folder.mkdir()
    pieces, lines, size, handle = [], 0, 0, None
    with open(path, "rb") as source:
        for line in source:
            if handle is None or size + len(line) > PIECE_BYTES:
                if handle is not None:
                    handle.close()
                pieces.append(folder / f"piece-{len(pieces):05d}.lp")
                handle, size = open(pieces[-1], "wb"), 0  # noqa: SIM115 - closed when the next piece starts
            handle.write(line)
            size += len(line)
            lines += 1
    if handle is not None:
        handle.close()
    return pieces, lines


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    binaries, missing = find_binaries()
    if binaries is None:
        print(f"migrate benchmark skipped: {missing}")
        print("ratio: skipped (no server binaries)")
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        with real_stack(binaries, folder / "stack") as stack:
            versions = stack.versions()
            print(f"servers: InfluxDB 2 {versions['influxdb2']}, InfluxDB 3 Core {versions['influxdb3']}", flush=True)
            source = load_influxdb2(stack, folder)
            rows = sum(source.values())
            print(f"InfluxDB 2 bucket telemetry: {source['bird_fixes']:,} bird fixes (14 fields), "
                  f"{source['sensors']:,} sensor readings (8 fields)", flush=True)
            ours_s, summary = ours(stack, "bench-migrate")
            print(f"1. ours: python -m ingest migrate   {ours_s:7.1f} s {rows / ours_s:10,.0f} rows/s ({summary})",
                  flush=True)
            verify_s, verdict = verify(stack, "bench-migrate")
            print(f"   its verification (--verify-only) {verify_s:7.1f} s: {verdict}", flush=True)
            export_s, lines, pieces = documented(stack, "bench-export", folder)
            print(f"2. documented: export-lp + influxdb3 write ({lines:,} lines, {pieces} pieces under 10 MiB) "
                  f"{export_s:7.1f} s {rows / export_s:10,.0f} rows/s", flush=True)
            print(f"   checked by migrate --verify-only: {verify(stack, 'bench-export')[1]}", flush=True)
            windows = {table: int(stack.sql("bench-migrate", "SELECT count(DISTINCT date_bin(INTERVAL '10 minutes', "
                                                             f"time)) AS n FROM {table} WHERE time >= "
                                                             "'2000-01-01T00:00:00Z'")[0]["n"]) for table in TABLES}
        print("   Parquet files this history makes in InfluxDB 3 (one per table per 10-minute window of data time "
              f"per snapshot, at least): {', '.join(f'{k} {v:,}' for k, v in windows.items())}")
        print(f"ratio documented/ours: {export_s / ours_s:.1f}x ({rows / ours_s:,.0f} vs {rows / export_s:,.0f} "
              "rows/s)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
