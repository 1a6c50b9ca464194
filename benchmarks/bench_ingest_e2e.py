"""End-to-end write throughput: a DataFrame to a loopback HTTP server that accepts every write and discards it.

Ours: the ingest write path (vectorized encoder in 100k-row chunks -> batches of INGEST_BATCH_BYTES ->
one gzip per batch -> the official client's write service), to InfluxDB 2's and to InfluxDB 3's endpoint, and to
both at once (one gzip shared). Baselines, same frame, same server, same run: the official clients' batching
writers (`influxdb_client` WriteApi with WriteOptions(batch_size=5000), `influxdb3-python` with its default
batching), gzip on, waiting for the last flush. Target: 10x (the issue: ~40k rows/s here). Last line: the ratio
against the faster official writer.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from influxdb_client import InfluxDBClient, WriteOptions
from influxdb_client_3 import InfluxDBClient3, write_client_options
from influxdb_client_3 import WriteOptions as WriteOptions3

from benchmarks.loopback import DiscardServer
from common.retry import RetryPolicy
from ingest.lineprotocol import LineEncoder
from ingest.sinks import Sink
from ingest.sinks.influxdb2 import InfluxDB2Transport
from ingest.sinks.influxdb3 import InfluxDB3Transport
from ingest.spool import Spool
from ingest.writer import Writer

ROWS = 300_000
CHUNK = 100_000


def frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame({
        "device": rng.choice([f"sensor-{i:02d}" for i in range(24)], rows),
        "location": rng.choice(["office", "lab", "greenhouse"], rows),
        "temperature": np.round(rng.normal(21, 2, rows), 2), "humidity": np.round(rng.normal(45, 8, rows), 1),
        "co2": np.round(rng.normal(600, 120, rows), 0),
    }, index=pd.date_range("2024-01-01", periods=rows, freq="s", tz="UTC", name="time"))


def ours(url: str, data: pd.DataFrame, kinds: tuple[str, ...], state: Path) -> float:
    transports = {"influxdb2": lambda: InfluxDB2Transport(url, "token", "stack"),
                  "influxdb3": lambda: InfluxDB3Transport(url, "token", database="telemetry")}
    sinks = [Sink(transports[kind](), Spool(state / kind), policy=RetryPolicy(attempts=1)) for kind in kinds]
    encoder = LineEncoder("sensors", ["device", "location"])
    started = time.perf_counter()
    writer = Writer(sinks, "telemetry")
    for start in range(0, len(data), CHUNK):
        writer.write(encoder.encode(data.iloc[start:start + CHUNK].reset_index()))
    writer.close()
    elapsed = time.perf_counter() - started
    assert all(sink.counters.written == len(data) for sink in sinks), "not every row was acknowledged"
    for sink in sinks:
        sink.close()
    return elapsed


def official_v2(url: str, data: pd.DataFrame) -> float:
    started = time.perf_counter()
    client = InfluxDBClient(url=url, token="token", org="stack", enable_gzip=True)
    with client, client.write_api(write_options=WriteOptions(batch_size=5_000, flush_interval=1_000)) as write_api:
        write_api.write(bucket="telemetry", record=data, data_frame_measurement_name="sensors",
                        data_frame_tag_columns=["device", "location"])
    return time.perf_counter() - started


def official_v3(url: str, data: pd.DataFrame) -> float:
    started = time.perf_counter()
    options = write_client_options(write_options=WriteOptions3(batch_size=5_000, flush_interval=1_000))
    client = InfluxDBClient3(host=url, token="token", database="telemetry", enable_gzip=True,
                             write_client_options=options)
    client.write(record=data, data_frame_measurement_name="sensors", data_frame_tag_columns=["device", "location"])
    client.close()
    return time.perf_counter() - started


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    data = frame(ROWS)
    with DiscardServer() as server, tempfile.TemporaryDirectory() as state:
        ours(server.url, data.iloc[:CHUNK], ("influxdb2",), Path(state) / "warm")  # warm-up
        results = {
            "ours -> InfluxDB 2 (/api/v2/write)": ours(server.url, data, ("influxdb2",), Path(state) / "a"),
            "ours -> InfluxDB 3 (/api/v3/write_lp)": ours(server.url, data, ("influxdb3",), Path(state) / "b"),
            "ours -> both at once": ours(server.url, data, ("influxdb2", "influxdb3"), Path(state) / "c"),
        }
        before = server.bytes_received
        results["influxdb_client batching WriteApi"] = official_v2(server.url, data)
        results["influxdb3-python batching writer"] = official_v3(server.url, data)
        assert server.bytes_received > before, "the official clients sent nothing"
    print(f"rows: {ROWS:,} (2 tags, 3 float fields), gzip on everywhere, loopback server discarding writes")
    for name, seconds in results.items():
        print(f"{name:40s} {seconds:7.2f} s  {ROWS / seconds:12,.0f} rows/s")
    ours_rate = ROWS / results["ours -> InfluxDB 2 (/api/v2/write)"]
    ours3_rate = ROWS / results["ours -> InfluxDB 3 (/api/v3/write_lp)"]
    best_official = ROWS / min(results["influxdb_client batching WriteApi"],
                               results["influxdb3-python batching writer"])
    print(f"end-to-end ratio ours/official: {min(ours_rate, ours3_rate) / best_official:.1f}x "
          f"({min(ours_rate, ours3_rate):,.0f} vs {best_official:,.0f} rows/s, the slower of ours against the "
          "faster official writer; target >= 10x)")


if __name__ == "__main__":
    main()
