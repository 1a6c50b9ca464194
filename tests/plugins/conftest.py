"""Fixtures of the plugin tests: the local engine and generated data in the shapes the stack writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.engine.fixtures import engine, engine_clock  # noqa: F401  (fixtures used by the tests here)

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
MINUTE = 60 * 10**9


def daily_series(days: int, seed: int = 7, start: str = "2019-01-01") -> pd.DataFrame:
    """A daily series with a trend, weekly and yearly seasonality and noise (the Peyton series' shape)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=days, freq="D")
    t = np.arange(days)
    y = (8.0 + 0.002 * t + 0.4 * np.sin(2 * np.pi * t / 7) + 0.8 * np.sin(2 * np.pi * t / 365.25)
         + rng.normal(0, 0.15, days))
    return pd.DataFrame({"ds": ds, "y": y})


def series_csv(frame: pd.DataFrame) -> str:
    """The frame as Prophet's example CSV (quoted header, ISO dates)."""
    lines = ['"ds","y"'] + [f'"{day:%Y-%m-%d}",{value!r}' for day, value in zip(frame["ds"], frame["y"], strict=True)]
    return "\n".join(lines) + "\n"


def series_lines(frame: pd.DataFrame, table: str = "peyton_views", series: str = "peyton_manning") -> list[str]:
    return [f"{table},series={series} y={float(value)!r} {int(day.value)}"
            for day, value in zip(frame["ds"], frame["y"], strict=True)]


def sensor_frame(rows: int, start_ns: int = T0, step_ns: int = MINUTE, devices: int = 3, seed: int = 1,
                 quantized: bool = True) -> pd.DataFrame:
    """Sensor readings like the ingest app's: tags device/location, float fields, one row per step per device.

    `quantized` rounds temperature to 0.5 so the mode and ties are exercised."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "time": start_ns + (np.arange(rows) // devices) * step_ns,
        "device": [f"dev{i % devices}" for i in range(rows)],
        "location": ["lab"] * rows,
        "temperature": 21 + rng.normal(0, 1.5, rows),
        "humidity": 40 + rng.normal(0, 5, rows),
        "co2": rng.integers(400, 900, rows).astype(float),
    })
    if quantized:
        frame["temperature"] = (frame["temperature"] * 2).round() / 2
    return frame


def sensor_lines(frame: pd.DataFrame, table: str = "sensors") -> list[str]:
    fields = [name for name in frame.columns if name not in ("time", "device", "location")]
    out = []
    for row in frame.itertuples(index=False):
        values = ",".join(f"{name}={float(getattr(row, name))!r}" for name in fields
                          if not pd.isna(getattr(row, name)))
        out.append(f"{table},device={row.device},location={row.location} {values} {int(row.time)}")
    return out


@pytest.fixture
def query_log(engine, monkeypatch):  # noqa: F811 (the engine fixture imported above)
    """Every SQL statement plugins run on the engine, in order."""
    from tests.engine.store import Database

    statements: list[str] = []
    original = Database.query

    def recording(self, sql, params=None):
        statements.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(Database, "query", recording)
    return statements
