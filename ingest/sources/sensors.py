"""Sensors -> `sensors`: a simulated device fleet, or the replay of a sensor CSV.

The simulation gives each device a room with a daily rhythm: temperature follows the day with a per-device
offset and slow drift, humidity moves against it, CO2 and motion follow occupancy (working hours, quieter at
weekends), light follows daylight plus lamps when the room is used after dark, CO and smoke stay near zero
with rare events, and the battery drains and is recharged. Every value is a pure function of (seed, device,
timestamp) through a counter-based hash, so the same seed gives the same readings for the same instants, a
backfill can be re-run without duplicates, and a restarted service fills its gap with the values it would
have written.

Replay reads a CSV with a time column and numeric columns (each becomes a float64 field named after the
column, in snake_case), tagged with a device (and optionally a location); bad times or numbers are
quarantined with their line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.csvreader import CsvFile
from ingest.lineprotocol import LineEncoder
from ingest.schema import SENSORS
from ingest.sources import Chunk, SourceError
from ingest.sources.parse import Verdicts, column_kind, normalize_name, parse_floats, parse_times

__all__ = ["TIME_COLUMNS", "Fleet", "Replay"]

log = logging.getLogger("ingest.sensors")

NS = 1_000_000_000
DAY = 86_400
ENCODER = LineEncoder(SENSORS.name, SENSORS.tags, SENSORS.field_names)
TIME_COLUMNS = ("time", "timestamp", "date_time", "datetime", "date", "ds")
INDEX_COLUMNS = {"", "id", "index", "unnamed_0"}

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a well-mixed 64-bit hash per element."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(seed: int, device: np.ndarray, tick: np.ndarray, stream: int) -> np.ndarray:
    """Deterministic uniforms in [0, 1) for (seed, device, tick, stream)."""
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed & 0xFFFFFFFF) * np.uint64(1_000_003) + np.uint64(stream)
                   + device.astype(np.uint64) * np.uint64(0x632BE59BD9B4E019))
        bits = _mix(key ^ tick.astype(np.int64).view(np.uint64))
    return (bits >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _normal(seed: int, device: np.ndarray, tick: np.ndarray, stream: int) -> np.ndarray:
    u1 = _uniform(seed, device, tick, stream)
    u2 = _uniform(seed, device, tick, stream + 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


@dataclass(frozen=True)
class Device:
    name: str
    location: str
    utc_offset_hours: float
    temperature: float      # set point, °C
    humidity: float         # mean relative humidity, %
    occupancy: float        # 0..1, how busy the room is
    phase: float            # 0..1, where it is in its drift / battery cycle
    battery_days: float     # days from full to recharge


class Fleet:
    """`devices` simulated sensors spread over `locations` (name, UTC offset in hours), fixed by `seed`."""

    def __init__(self, devices: int, seed: int, locations: Sequence[tuple[str, float]] = (("lab", 1.0),)):
        if devices < 1:
            raise ValueError("the fleet needs at least one device")
        if not locations:
            raise ValueError("the fleet needs at least one location")
        self.seed = seed
        ids = np.arange(devices)
        pick = _uniform(seed, ids, np.zeros(devices, dtype=np.int64), 900)
        traits = [_uniform(seed, ids, np.zeros(devices, dtype=np.int64), 910 + k) for k in range(5)]
        self.devices = [
            Device(name=f"sensor-{index + 1:02d}", location=locations[index % len(locations)][0],
                   utc_offset_hours=float(locations[index % len(locations)][1]),
                   temperature=round(19.5 + 3.0 * traits[0][index], 1), humidity=round(38 + 14 * traits[1][index]),
                   occupancy=0.3 + 0.6 * traits[2][index], phase=float(traits[3][index]),
                   battery_days=20 + 40 * float(traits[4][index]) + float(pick[index]))
            for index in range(devices)]

    def readings(self, start_ns: int, end_ns: int, interval_s: int) -> pa.Table:
        """Readings at every multiple of `interval_s` in [start, end), for every device (time-major order)."""
        step = interval_s * NS
        first = -(-start_ns // step) * step
        stamps = np.arange(first, end_ns, step, dtype=np.int64)
        count = len(self.devices)
        if not len(stamps):
            return _empty()
        times = np.repeat(stamps, count)
        device = np.tile(np.arange(count), len(stamps))
        tick = times // (interval_s * NS)
        seconds = times / NS

        def trait(name: str) -> np.ndarray:
            return np.asarray([getattr(item, name) for item in self.devices], dtype=np.float64)[device]

        local_hour = ((seconds / 3600.0) + trait("utc_offset_hours")) % 24.0
        weekday = ((np.floor((seconds + trait("utc_offset_hours") * 3600) / DAY) + 3) % 7)  # 0 = Monday
        workday = weekday < 5
        day_curve = np.sin(2 * np.pi * (local_hour - 9.0) / 24.0)  # peaks mid-afternoon
        busy = np.exp(-(((local_hour - 13.0) / 3.5) ** 2)) * np.where(workday, 1.0, 0.35) * trait("occupancy")
        drift = 0.6 * np.sin(2 * np.pi * (seconds / (3.7 * DAY) + trait("phase")))
        seed = self.seed

        temperature = trait("temperature") + 1.6 * day_curve + 0.8 * busy + drift \
            + 0.08 * _normal(seed, device, tick, 1)
        humidity = np.clip(trait("humidity") - 2.2 * (temperature - trait("temperature")) + 6.0 * busy
                           + 0.6 * _normal(seed, device, tick, 3), 5.0, 99.0)
        motion = (_uniform(seed, device, tick, 5) < 0.04 + 0.8 * busy).astype(np.float64)
        co2 = 415.0 + 650.0 * busy + 25.0 * motion + 12.0 * _normal(seed, device, tick, 6)
        cooking = _uniform(seed, device, tick, 8) < 0.002
        co = np.clip(0.4 + 0.15 * _normal(seed, device, tick, 9) + np.where(cooking, 9.0, 0.0), 0.0, None)
        daylight = np.clip(np.sin(np.pi * (local_hour - 6.5) / 13.0), 0.0, None)
        clouds = 0.55 + 0.45 * np.sin(2 * np.pi * (seconds / (2.3 * DAY) + trait("phase")))
        lamps = np.where((daylight < 0.15) & (busy > 0.15), 320.0, 0.0)
        light = np.clip(900.0 * daylight * clouds + lamps + 4.0 * _normal(seed, device, tick, 10), 0.0, None)
        smoke = (_uniform(seed, device, tick, 12) < 2e-5).astype(np.float64)
        cycle = (seconds / DAY / trait("battery_days") + trait("phase")) % 1.0
        battery = 100.0 - 95.0 * cycle

        names = np.asarray([item.name for item in self.devices], dtype=object)
        places = np.asarray([item.location for item in self.devices], dtype=object)
        return pa.table({
            "time": pa.array(times, pa.int64()),
            "device": pa.array(names[device], pa.string()),
            "location": pa.array(places[device], pa.string()),
            "temperature": np.round(temperature, 2), "humidity": np.round(humidity, 1), "co2": np.round(co2, 0),
            "co": np.round(co, 2), "light": np.round(light, 0), "motion": motion, "smoke": smoke,
            "battery": np.round(battery, 1),
        })

    def chunks(self, start_ns: int, end_ns: int, interval_s: int, *, rows_per_chunk: int = 200_000) -> Iterator[Chunk]:
        """The readings of [start, end) in chunks of about `rows_per_chunk` rows (flat memory for long spans)."""
        span = max(1, rows_per_chunk // len(self.devices)) * interval_s * NS
        begin = start_ns
        while begin < end_ns:
            stop = min(end_ns, begin + span)
            table = self.readings(begin, stop, interval_s)
            if table.num_rows:
                yield Chunk(table=table, encoder=ENCODER, input="simulated fleet", rows_read=table.num_rows)
            begin = stop


def _empty() -> pa.Table:
    return pa.table({"time": pa.array([], pa.int64()), "device": pa.array([], pa.string()),
                     "location": pa.array([], pa.string()),
                     **{name: pa.array([], pa.float64()) for name in SENSORS.field_names}})


class Replay:
    """A sensor CSV: one time column plus numeric columns; every numeric column becomes a float64 field."""

    def __init__(self, csv_file: CsvFile, *, device: str | None = None, device_column: str | None = None,
                 location: str | None = None, time_column: str | None = None, timezone: str | None = None,
                 shift_ns: int = 0):
        self.csv = csv_file
        self.label = csv_file.label
        self.names = {normalize_name(raw): raw for raw in csv_file.columns}
        self.time = self._pick_time(time_column)
        self.device_column = self._column(device_column) if device_column else None
        self.device = device or normalize_name(Path(csv_file.path).name.split(".")[0]) or "replay"
        self.location = location
        self.timezone = timezone
        self.shift_ns = shift_ns
        skip = {self.time, self.device_column, *INDEX_COLUMNS}
        self.candidates = [name for name in self.names if name not in skip and name not in SENSORS.tags]
        self.kinds: dict[str, str | None] = dict.fromkeys(self.candidates)

    def _column(self, wanted: str) -> str:
        name = normalize_name(wanted)
        if name not in self.names:
            raise SourceError(f"{self.label}: no column {wanted!r} (the header has: {', '.join(self.csv.columns)})")
        return name

    def _pick_time(self, wanted: str | None) -> str:
        if wanted:
            return self._column(wanted)
        for name in TIME_COLUMNS:
            if name in self.names:
                return name
        raise SourceError(f"{self.label}: no time column found (looked for {', '.join(TIME_COLUMNS)}); "
                          "name it with --time-column")

    def last_time(self) -> int | None:
        """The latest parseable time in the file (nanoseconds), for shifting a replay up to now."""
        latest = None
        for block in self.csv.blocks():
            values, bad = parse_times(block.table.column(self.names[self.time]), timezone=self.timezone)
            if (~bad).any():
                top = int(values[~bad].max())
                latest = top if latest is None else max(latest, top)
        return latest

    def chunks(self) -> Iterator[Chunk]:
        for block in self.csv.blocks():
            table = block.table
            verdicts = Verdicts(table.num_rows)
            column = table.column(self.names[self.time])
            times, bad = parse_times(column, timezone=self.timezone)
            verdicts.add(bad, lambda row, c=column: f"time {c[row].as_py()!r} is not a date and time"
                         if c[row].as_py().strip() else "time is empty")
            fields: dict[str, np.ndarray] = {}
            for name in self.candidates:
                if self.kinds[name] == "text":
                    continue
                raw = table.column(self.names[name])
                values, bad = parse_floats(raw)
                if self.kinds[name] is None:
                    kind = self.kinds[name] = column_kind(values, bad)
                    if kind is None:
                        continue
                    if kind == "text":
                        log.info("%s: column %r holds text; it is not loaded", self.label, self.names[name])
                        continue
                verdicts.add(bad, lambda row, r=raw, n=name: f"{self.names[n]} {r[row].as_py()!r} is not a number")
                fields[name] = values
            good = verdicts.good
            if self.device_column:
                device = pc.utf8_trim_whitespace(table.column(self.names[self.device_column])).take(pa.array(good))
            else:
                device = pa.array([self.device] * len(good), pa.string())
            data = {"time": pa.array(times[good] + self.shift_ns, pa.int64()), "device": device,
                    "location": pa.array([self.location] * len(good), pa.string()),
                    **{name: pa.array(values[good]) for name, values in fields.items()}}
            out = pa.table(data)
            rejects: list[tuple[int | None, str, object]] = list(block.invalid)
            if verdicts.reasons:
                rows = [row for row, _ in verdicts.items()]
                rejects += [(line, reason, table.slice(row, 1).to_pylist()[0]) for line, (row, reason)
                            in zip(block.lines(np.asarray(rows)).tolist(), verdicts.items(), strict=True)]
            rejects.sort(key=lambda item: item[0] or 0)
            yield Chunk(table=out, encoder=LineEncoder(SENSORS.name, SENSORS.tags, list(fields)), input=self.label,
                        rows_read=table.num_rows + len(block.invalid), rejects=rejects,
                        lines=lambda rows, b=block, g=good: b.lines(g[rows]),
                        record=lambda row, t=table, g=good: t.slice(int(g[row]), 1).to_pylist()[0])
