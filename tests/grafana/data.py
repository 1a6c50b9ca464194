"""Data for the dashboards' queries, in the shapes the stack writes, in a local engine (tests/engine).

Telemetry rows have exactly the tags and fields ingest.schema declares (values generated per field name, with
a fallback for fields added later); the `forecast` database is filled by the real plugins, run by the
engine with the arguments of their provisioned triggers (plugins/provision.yaml): table statistics on the
sensor and series writes, and two scheduled Prophet forecasts a day apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ingest.schema import BIRD_FIXES, SENSORS, TELEMETRY, WEATHER
from ingest.sources.weather import OPEN_METEO_VARIABLES
from plugins.stacklib.tables import EVALUATION, FORECAST_DATABASE, HOST_DATABASE, HOST_TABLES, SERIES, UINT
from tests.engine import PLUGIN_DIR, LocalEngine
from tests.grafana.sqlrun import copied_tables, rollup_tables

__all__ = [
    "StackData", "bird_fixes", "build", "create_rollup_tables", "host_lines", "movebank_csv", "open_meteo_hourly",
    "sensor_rows", "series_lines", "weather_rows",
]

HOUR = timedelta(hours=1)
INDIVIDUALS = {"Haematopus ostralegus": ["5515867", "5515851", "5515879"], "Larus argentatus": ["G-17"]}
WEATHER_PLACES = ("Assen", "Amsterdam")
ENGINE_KINDS = {"float64": "float", "int64": "int", "uint64": "uint", "bool": "bool", "utf8": "string"}
SENSOR_DEVICES = {"sensor-01": "office", "sensor-02": "office", "sensor-03": "lab", "sensor-04": "greenhouse"}


@dataclass
class StackData:
    engine: LocalEngine
    now: datetime
    birds: pd.DataFrame
    weather: pd.DataFrame
    sensors: pd.DataFrame
    series: str
    runs: list[str] = field(default_factory=list)


def _triggers() -> dict[str, dict]:
    provision = yaml.safe_load((PLUGIN_DIR / "provision.yaml").read_text())
    return {trigger["name"]: trigger for trigger in provision["triggers"]}


def _trigger_for(triggers: dict[str, dict], spec: str) -> dict:
    return next(trigger for trigger in triggers.values() if trigger["spec"] == spec and not trigger.get("disabled"))


def _plugin(trigger: dict) -> str:
    return trigger["plugin"].removesuffix(".py")


def bird_fixes(now: datetime, rng: np.random.Generator) -> pd.DataFrame:
    """Two weeks of fixes every 2 h per individual: random walks near Assen, each with one fix marked as an
    outlier (a 30 km jump) and one hidden (visible=false)."""
    frames = []
    for species, individuals in INDIVIDUALS.items():
        for number, individual in enumerate(individuals):
            times = pd.date_range(end=now - HOUR, periods=14 * 12, freq="2h")
            lat = 52.99 + 0.02 * number + np.cumsum(rng.normal(0, 0.004, len(times)))
            lon = 6.56 + 0.02 * number + np.cumsum(rng.normal(0, 0.006, len(times)))
            outlier = np.zeros(len(times), dtype=bool)
            visible = np.ones(len(times), dtype=bool)
            outlier[40], visible[90] = True, False
            lat[40] += 0.3
            frames.append(pd.DataFrame({"time": times, "species": species, "individual": individual,
                                        "tag": f"tag-{individual}", "sensor_type": "gps", "study": "test-study",
                                        "lat": lat, "lon": lon, "visible": visible, "outlier": outlier}))
    frame = pd.concat(frames, ignore_index=True)
    return frame[["time", *BIRD_FIXES.tags, *BIRD_FIXES.field_names]]


def _field_values(name: str, hours: np.ndarray, rng: np.random.Generator, *, indoor: bool) -> np.ndarray:
    """Plausible values of a declared field by its name; any other (newly declared) field gets 0..100."""
    size = len(hours)
    day = np.sin(2 * np.pi * (hours % 24) / 24)
    values = {
        "temperature": (21 if indoor else 12) + 6 * day + rng.normal(0, 0.5, size),
        "humidity": np.clip((50 if indoor else 70) - 15 * day + rng.normal(0, 3, size), 5, 100),
        "pressure": 1013 + np.cumsum(rng.normal(0, 0.3, size)),
        "wind_speed": np.abs(4 + 2 * day + rng.normal(0, 1, size)),
        "wind_direction": (200 + np.cumsum(rng.normal(0, 15, size))) % 360,
        "precipitation": np.where(rng.random(size) < 0.2, rng.gamma(1.5, 0.6, size), 0.0),
        "cloud_cover": np.clip(50 + 40 * day + rng.normal(0, 10, size), 0, 100),
        "co2": 420 + 300 * np.clip(day, 0, None) + rng.normal(0, 15, size),
        "co": np.clip(0.4 + rng.normal(0, 0.1, size), 0, None),
        "light": np.clip(600 * day, 0, None) + rng.random(size) * 5,
        "motion": (rng.random(size) < 0.2).astype(float),
        "smoke": (rng.random(size) < 0.01).astype(float),
        "battery": np.linspace(90, 15 + 5 * rng.random(), size),
    }
    return values.get(name, rng.random(size) * 100)


def weather_rows(now: datetime, rng: np.random.Generator) -> pd.DataFrame:
    """Three days of hourly conditions per location, every declared field."""
    frames = []
    for location in WEATHER_PLACES:
        times = pd.date_range(end=now, periods=72, freq="1h")
        hours = np.arange(len(times), dtype=float)
        frame = pd.DataFrame({"time": times, "location": location, "provider": "open-meteo"})
        for item in WEATHER.fields:
            frame[item.name] = _field_values(item.name, hours, rng, indoor=False)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def sensor_rows(now: datetime, rng: np.random.Generator) -> pd.DataFrame:
    """Six hours of one reading per minute per device, every declared field."""
    times = pd.date_range(end=now - timedelta(minutes=1), periods=360, freq="1min")
    frames = []
    for device, location in SENSOR_DEVICES.items():
        hours = np.arange(len(times)) / 60.0
        frame = pd.DataFrame({"time": times, "device": device, "location": location})
        for item in SENSORS.fields:
            frame[item.name] = _field_values(item.name, hours, rng, indoor=True)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _lines(table: str, frame: pd.DataFrame, tags: tuple[str, ...]) -> list[str]:
    """Line protocol for rows whose tag values need no escaping (device and location names)."""
    fields = [name for name in frame.columns if name not in ("time", *tags)]
    stamps = frame["time"].dt.as_unit("ns").astype("int64").to_numpy()
    return [f"{table},{','.join(f'{tag}={row[tag]}' for tag in tags)} "
            f"{','.join(f'{name}={float(row[name])!r}' for name in fields)} {stamp}"
            for row, stamp in zip(frame.to_dict("records"), stamps, strict=True)]


def series_lines(now: datetime, rng: np.random.Generator, name: str) -> list[str]:
    """A daily series like Peyton Manning's (log page views) ending yesterday, one point per day at 00:00 UTC."""
    days = pd.date_range(end=pd.Timestamp(now).normalize() - pd.Timedelta(days=1), periods=240, freq="D")
    t = np.arange(len(days))
    values = 8 + 0.002 * t + 0.4 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.15, len(days))
    return [f"{SERIES.name},series={name} y={float(value)!r} {day.value}" for day, value in zip(days, values,
                                                                                                 strict=True)]


# Tag values of the host-metrics series, as the system_metrics plugin writes them (per core, mount, device, NIC).
HOST_SERIES = {"cpu": ["total"], "core": ["0", "1"], "device": ["sda", "sdb"], "mountpoint": ["/", "/var/lib"],
               "fstype": ["ext4"], "interface": ["eth0", "lo"]}
# Cumulative counters (the plugin writes psutil's running totals): they grow between samples, one resets once.
COUNTERS = {"ctx_switches", "interrupts", "soft_interrupts", "syscalls", "sin", "sout", "page_faults",
            "major_faults", "minor_faults", "reads", "writes", "read_bytes", "write_bytes", "read_time", "write_time",
            "busy_time", "read_merged_count", "write_merged_count", "bytes_sent", "bytes_recv", "packets_sent",
            "packets_recv", "errin", "errout", "dropin", "dropout"}


def _host_series(tags: tuple[str, ...]) -> list[dict[str, str]]:
    """The tag sets of one host table: every combination of its tags' values (each mount on one device)."""
    combos: list[dict[str, str]] = [{}]
    for tag in tags:
        if tag == "host":
            continue
        combos = [{**combo, tag: value} for combo in combos for value in HOST_SERIES[tag]]
    return [combo for combo in combos if HOST_SERIES["mountpoint"].index(combo.get("mountpoint", "/"))
            == HOST_SERIES["device"].index(combo.get("device", "sda"))] if "mountpoint" in tags else combos


def host_lines(now: datetime, rng: np.random.Generator, host: str = "stack") -> list[str]:
    """Six hours of the system_metrics plugin's writes every 30 s: each table of HOST_TABLES with its tags and
    typed fields (uint64 as `123u`, as the plugin's LineBuilder writes them), percentages in 0..100, cumulative
    counters that grow and reset once half-way."""
    stamps = pd.date_range(end=now - timedelta(seconds=30), periods=720, freq="30s").as_unit("ns").asi8
    lines = []
    for spec in HOST_TABLES:
        for combo in _host_series(spec.tags):
            tags = ",".join(f"{key}={value}" for key, value in {"host": host, **combo}.items())
            columns = {}
            for name, kind in spec.fields:
                if kind != UINT:
                    columns[name] = [repr(float(v)) for v in np.round(rng.uniform(0, 100, len(stamps)), 1)]
                    continue
                if name in COUNTERS:
                    values = np.cumsum(rng.integers(0, 5_000, len(stamps)))
                    values[len(values) // 2:] -= values[len(values) // 2]
                else:
                    values = rng.integers(1 << 30, 1 << 34, len(stamps))
                columns[name] = [f"{int(v)}u" for v in values]
            for index, stamp in enumerate(stamps):
                fields = ",".join(f"{name}={values[index]}" for name, values in columns.items())
                lines.append(f"{spec.name},{tags} {fields} {stamp}")
    return lines


def movebank_csv(frame: pd.DataFrame, path: Path) -> None:
    """The fixes as a Movebank website export (hyphenated headers, quoted strings, UTC without a zone)."""
    lat, lon = BIRD_FIXES.field_names[:2]
    export = pd.DataFrame({
        "event-id": np.arange(1, len(frame) + 1),
        "visible": np.where(frame["visible"], "true", "false"),
        "timestamp": frame["time"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S.000"),
        "location-long": frame[lon], "location-lat": frame[lat],
        "manually-marked-outlier": np.where(frame["outlier"], "true", "false"),
        "sensor-type": frame["sensor_type"], "individual-taxon-canonical-name": frame["species"],
        "tag-local-identifier": frame["tag"], "individual-local-identifier": frame["individual"],
        "study-name": frame["study"],
    })
    export.to_csv(path, index=False, quoting=2, lineterminator="\r\n")


def open_meteo_hourly(rows: pd.DataFrame) -> dict[str, Any]:
    """The rows as an Open-Meteo archive response (hourly block, UTC)."""
    hourly: dict[str, list] = {"time": rows["time"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M").tolist()}
    for name, variable in OPEN_METEO_VARIABLES.items():
        hourly[variable] = [round(float(value), 2) for value in rows[name]]
    return {"latitude": 52.99, "longitude": 6.56, "utc_offset_seconds": 0, "timezone": "GMT", "hourly": hourly}


def create_rollup_tables(engine: LocalEngine, database: str | None = None) -> None:
    """The rollup tables influxdb3-init creates up front (of one database, or of all), and the raw tables it creates
    empty where they are copied, in the local engine."""
    for table in (*rollup_tables(), *copied_tables()):
        if database not in (None, table.database):
            continue
        if not engine.has_database(table.database):
            engine.create_database(table.database)
        engine.database(table.database).create_table(table.name, table.tags, [
            (name, ENGINE_KINDS[kind]) for name, kind in table.fields])


def roll_up(engine: LocalEngine, triggers: dict[str, dict], moment: datetime, runs: int = 8) -> None:
    """What influxdb3-init and the rollup triggers do: the rollup tables created up front (from provision.yaml,
    as influxdb3-init derives them), then the scheduled trigger run a few times at `moment`, every table's
    completed buckets computed. Each run finds what was written before it in Parquet files, as on the server,
    where a snapshot persists it minutes later (rows still in Core's buffer go `max_files` buckets a run)."""
    create_rollup_tables(engine)
    scheduled = [trigger for trigger in triggers.values()
                 if _plugin(trigger) == "history/rollups" and str(trigger["spec"]).startswith("every:")]
    for trigger in scheduled:
        for _ in range(runs):
            engine.snapshot()
            engine.run_schedule(_plugin(trigger), trigger["database"], moment.replace(tzinfo=None),
                                args=trigger.get("arguments"), trigger=trigger["name"]).raise_for_error()


def build(now: datetime | None = None, seed: int = 11) -> StackData:
    """Every table the dashboards read, filled; `now` defaults to the current hour (UTC)."""
    moment = now or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(seed)
    engine = LocalEngine()
    engine.restart()
    triggers = _triggers()
    birds, weather, sensors = bird_fixes(moment, rng), weather_rows(moment, rng), sensor_rows(moment, rng)
    engine.load_frame(BIRD_FIXES.database, BIRD_FIXES.name, birds, tags=BIRD_FIXES.tags)
    engine.load_frame(TELEMETRY, WEATHER.name, weather, tags=WEATHER.tags)

    sensor_trigger = _trigger_for(triggers, f"table:{SENSORS.name}")
    engine.run_writes(_plugin(sensor_trigger), sensor_trigger["database"], _lines(SENSORS.name, sensors, SENSORS.tags),
                      table=SENSORS.name, args=sensor_trigger.get("arguments"),
                      trigger=sensor_trigger["name"]).raise_for_error()

    forecast_trigger = next(trigger for trigger in triggers.values()
                            if _plugin(trigger) == "forecast/prophet_forecast")
    series = str(forecast_trigger["arguments"]["series"])
    series_trigger = _trigger_for(triggers, f"table:{SERIES.name}")
    engine.run_writes(_plugin(series_trigger), FORECAST_DATABASE, series_lines(moment, rng, series), table=SERIES.name,
                      args=series_trigger.get("arguments"), trigger=series_trigger["name"]).raise_for_error()
    for days_ago in (1, 0):  # two daily runs, the latest an hour ago
        call = (moment - timedelta(days=days_ago, hours=1)).replace(tzinfo=None)
        engine.run_schedule(_plugin(forecast_trigger), FORECAST_DATABASE, call,
                            args=forecast_trigger.get("arguments"), trigger=forecast_trigger["name"]).raise_for_error()
    runs = [row["run"] for row in engine.query(FORECAST_DATABASE, f"SELECT run FROM {EVALUATION.name} ORDER BY time")]
    engine.create_database(HOST_DATABASE)
    engine.write(HOST_DATABASE, host_lines(moment, rng))
    roll_up(engine, triggers, moment)
    return StackData(engine, moment, birds, weather, sensors, series, runs)
