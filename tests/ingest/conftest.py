"""Fixtures for the ingest tests: a loopback server that answers like InfluxDB 2 and 3 as each test scripts it,
the environment for the CLI against it, and a file writer (data generators are in formats.py)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.engine.engine import LocalEngine
from tests.support.influxdb2 import InfluxDB2
from tests.support.influxdb3 import InfluxDB3
from tests.support.lineprotocol import ParsedPoint, parse_lines
from tests.support.recorder import Recorded, RecordingServer, Reply

WRITE_PATHS = {"/api/v2/write": "influxdb2", "/api/v3/write_lp": "influxdb3"}


@dataclass
class FakeInflux:
    """InfluxDB 2 (tests/support/influxdb2.py) and InfluxDB 3 Core (tests/support/influxdb3.py, over the local
    engine) on one loopback port, each answering as its server's source does, plus failures a test scripts.

    `script[kind]` holds replies for the next writes to that database kind ("influxdb2"/"influxdb3");
    `outage` makes every write fail (connection dropped) while set. Points of accepted writes are parsed with
    the strict parser into `landed[kind]` (every write, so a rewrite of the same point shows twice).
    """

    v2: InfluxDB2 = field(default_factory=lambda: InfluxDB2(token="token-2"))
    v3: InfluxDB3 = field(default_factory=lambda: InfluxDB3(LocalEngine(), token="apiv3_token-3"))
    script: dict[str, list[Reply]] = field(default_factory=lambda: {"influxdb2": [], "influxdb3": []})
    outage: threading.Event = field(default_factory=threading.Event)
    landed3: list[ParsedPoint] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.v2.add_bucket("telemetry")
        self.v3.engine.create_database("telemetry")

    @property
    def token2(self) -> str:
        return self.v2.token

    @property
    def token3(self) -> str:
        return self.v3.token

    @property
    def buckets(self) -> set[str]:
        return set(self.v2.buckets)

    @property
    def databases(self) -> set[str]:
        return {name for name in self.v3.engine.databases if not name.startswith("_")}

    @property
    def landed(self) -> dict[str, list[ParsedPoint]]:
        return {"influxdb2": [point for _, point in self.v2.log], "influxdb3": list(self.landed3)}

    def __call__(self, request: Recorded) -> Reply:
        kind = WRITE_PATHS.get(request.path)
        if kind is not None:
            if self.outage.is_set():
                return Reply(close_connection=True)
            with self.lock:
                scripted = self.script[kind].pop(0) if self.script[kind] else None
            if scripted is not None and scripted.status != 204:
                return scripted
        if not request.path.startswith("/api/v3/"):
            return self.v2(request)
        reply = self.v3(request)
        if kind == "influxdb3" and reply.status == 204:
            points = parse_lines(request.text())
            with self.lock:
                self.landed3.extend(points)
        return reply

    def keys(self, kind: str, measurement: str | None = None) -> list[tuple]:
        """(measurement, sorted tags, timestamp) of every landed point: InfluxDB's identity of a point."""
        return [(p.measurement, tuple(sorted(p.tags.items())), p.timestamp) for p in self.landed[kind]
                if measurement is None or p.measurement == measurement]


@pytest.fixture
def fake_influx() -> Iterator[tuple[FakeInflux, RecordingServer]]:
    fake = FakeInflux()
    with RecordingServer(fake) as server:
        yield fake, server


@pytest.fixture
def ingest_env(tmp_path: Path, fake_influx, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for the CLI against the fake databases, with state in a temporary folder."""
    fake, server = fake_influx
    values = {
        "INFLUXDB2_URL": server.url, "INFLUXDB2_TOKEN": fake.token2, "INFLUXDB2_ORG": "stack",
        "INFLUXDB3_URL": server.url, "INFLUXDB3_TOKEN": fake.token3, "INGEST_STATE_DIR": str(tmp_path / "state"),
        "INGEST_RETRY_ATTEMPTS": "2", "INGEST_RETRY_MAX_WAIT": "1s", "LOG_FORMAT": "text",
    }
    for key in list(__import__("os").environ):
        if key.startswith(("INGEST_", "INFLUXDB", "MOVEBANK_", "WEATHER_", "SENSORS_", "OPEN_METEO", "OPENWEATHER")):
            monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, content: bytes, *, compress: bool = False) -> Path:
        path = tmp_path / name
        path.write_bytes(gzip.compress(content) if compress else content)
        return path

    return write


@pytest.fixture
def influxdb3_outputs(ingest_env, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple]:
    """(config, outputs) writing to the stand-in's InfluxDB 3 alone, history loads in steps of `windows` windows
    (0: off), its databases created."""
    from ingest.config import IngestConfig
    from ingest.outputs import Outputs

    def make(run_id: str, windows: int = 0) -> tuple:
        monkeypatch.setenv("INGEST_WINDOWS_PER_SNAPSHOT", str(windows))
        monkeypatch.setenv("INGEST_INFLUXDB2", "false")
        config = IngestConfig.from_env()
        outputs = Outputs(config, run_id)
        outputs.ensure_buckets()
        return config, outputs

    return make
