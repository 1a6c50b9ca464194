"""A daily-average panel over 90 days of one live sensor on real InfluxDB 3 Core: the raw table against the
range-aware tiers the dashboards read (grafana/history.py).

Core (INFLUXDB3_BIN, or PATH) runs on loopback with a snapshot after every WAL file, so each 10-minute window of the
90 days written becomes its own Parquet file, as on a stack that ran for 90 days (12,960 files; the issue's
measurement: 4.8 s warm on 2 cores). The rollup tables get the rows the rollups plugin writes (count, sum, min,
max, last, mean per bucket), computed here from the same readings. Both queries are Grafana's daily-average
panel for "Last 90 days" (interval 1 day), run warm 5 times each; the answers must be equal (the tiers read the
first day's bucket whole, so the range starts on a day boundary). Without the binary it prints why and ends with
a skip line (exit 0). The last line is the ratio (raw median / tiers median).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grafana import history
from tests.grafana.expand import TimeRange, expand_sql
from tests.integration.stacks.native import find_binaries, free_port

DAYS, DB, TABLE = 90, "bench", "sensors"
FIELD = "temperature"
RUNS = 5


def lines(frame: pd.DataFrame, table: str, columns: dict[str, str]) -> list[str]:
    """Line protocol of `frame` (tags device, location; `columns`: field -> "f" or "i")."""
    stamps = frame["time"].dt.as_unit("ns").astype("int64").to_numpy()
    out = []
    for index, stamp in enumerate(stamps):
        fields = ",".join(f"{name}={frame[name].iat[index]}{'i' if kind == 'i' else ''}"
                          for name, kind in columns.items())
        out.append(f"{table},device=d1,location=lab {fields} {stamp}")
    return out


def rollup(raw: pd.DataFrame, freq: str) -> pd.DataFrame:
    """What the rollups plugin writes for one level: per bucket (epoch-aligned) count, sum, min, max, last, mean."""
    grouped = raw.set_index("time")[FIELD].resample(freq, origin="epoch", label="left", closed="left")
    out = pd.DataFrame({f"{FIELD}_count": grouped.count(), f"{FIELD}_sum": grouped.sum(),
                        f"{FIELD}_min": grouped.min(), f"{FIELD}_max": grouped.max(), f"{FIELD}_last": grouped.last()})
    out = out[out[f"{FIELD}_count"] > 0]
    out[f"{FIELD}_mean"] = out[f"{FIELD}_sum"] / out[f"{FIELD}_count"]
    return out.reset_index()


def main() -> None:
    binaries, why = find_binaries()
    if binaries is None:
        print(f"skip: {why}")
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-history-"))
    port = free_port()
    env = {**os.environ, "PATH": f"/usr/bin:{os.environ.get('PATH', '')}"}
    server = subprocess.Popen([str(binaries.influxdb3), "serve", "--node-id", "bench", "--object-store", "file",
                               "--data-dir", str(folder), "--without-auth", "--http-bind", f"127.0.0.1:{port}",
                               "--query-file-limit", "20000", "--wal-snapshot-size", "1",
                               "--disable-telemetry-upload"],
                              stdout=(folder / "server.log").open("w"), stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{base}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = (now - timedelta(days=DAYS)).replace(hour=0, minute=0)
        times = pd.date_range(start, now - timedelta(minutes=1), freq="1min", tz="UTC")
        raw = pd.DataFrame({"time": times, FIELD: np.random.default_rng(3).normal(21, 3, len(times)).round(3)})
        began = time.perf_counter()
        payload = lines(raw, TABLE, {FIELD: "f"})
        # One day a request: each day's 144 windows persist as their own files at the next snapshot.
        for offset in range(0, len(payload), 1440):
            requests.post(f"{base}/api/v3/write_lp", params={"db": DB, "precision": "nanosecond"},
                          data="\n".join(payload[offset:offset + 1440]), timeout=120).raise_for_status()
        edge = now - timedelta(seconds=history.LAG_S)
        for tier in history.TIERS[1:]:
            rows = rollup(raw, f"{tier.width_s}s")
            rows = rows[rows["time"] + pd.Timedelta(seconds=tier.width_s) <= edge]
            kinds = {f"{FIELD}_{what}": ("i" if what == "count" else "f")
                     for what in ("count", "sum", "min", "max", "last", "mean")}
            text = lines(rows, f"{TABLE}{tier.suffix}", kinds)
            if text:
                requests.post(f"{base}/api/v3/write_lp", params={"db": DB, "precision": "nanosecond"},
                              data="\n".join(text), timeout=120).raise_for_status()
        time.sleep(5)
        counts = requests.post(f"{base}/api/v3/query_sql", json={
            "db": DB, "q": "SELECT table_name, count(*) AS files FROM system.parquet_files GROUP BY 1 ORDER BY 1"},
            timeout=60).json()
        print(f"loaded in {time.perf_counter() - began:.0f} s; files: "
              + ", ".join(f"{row['table_name']} {row['files']}" for row in counts))
        window = TimeRange(start, now)
        queries = {
            "raw": f"SELECT $__dateBin(time) AS time, avg({FIELD}) AS {FIELD} FROM {TABLE} WHERE $__timeFilter(time) "
                   "GROUP BY 1 ORDER BY 1",
            "tiers": f"SELECT $__dateBin(time) AS time, {history.mean(FIELD)} AS {FIELD} "
                     f"FROM {history.source(TABLE, ('device', 'location'), (FIELD,))} GROUP BY 1 ORDER BY 1",
        }
        timings: dict[str, list[float]] = {}
        answers = {}
        for name, text in queries.items():
            sql = expand_sql(text, window, 86_400_000)
            for _ in range(RUNS + 1):  # the first run warms the server's caches
                began = time.perf_counter()
                reply = requests.post(f"{base}/api/v3/query_sql", json={"db": DB, "q": sql}, timeout=600)
                reply.raise_for_status()
                timings.setdefault(name, []).append(time.perf_counter() - began)
            answers[name] = reply.json()
        for name, values in timings.items():
            print(f"{name}: median {statistics.median(values[1:]):.3f} s (cold {values[0]:.3f} s), "
                  f"{len(answers[name])} days")
        assert len(answers["raw"]) == len(answers["tiers"]), "the two answers differ in days"
        for mine, theirs in zip(answers["tiers"], answers["raw"], strict=True):
            assert mine["time"] == theirs["time"] and abs(mine[FIELD] - theirs[FIELD]) < 1e-9, (mine, theirs)
        print("answers equal day by day")
        raw_median, tier_median = (statistics.median(timings[name][1:]) for name in ("raw", "tiers"))
        print(f"ratio raw/tiers: {raw_median / tier_median:.1f}x (raw {raw_median:.3f} s, tiers {tier_median:.3f} s)")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
