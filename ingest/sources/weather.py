"""Weather -> `weather`: current conditions from Open-Meteo (no key) or OpenWeatherMap (with a key, metric
units), and backfills of a date range from Open-Meteo's archive.

Every provider is mapped to the same fields in the same units: temperature °C, humidity %, pressure hPa at
mean sea level, wind speed m/s, wind direction °, precipitation mm (last hour), cloud cover %. Points carry the
provider's observation time, so polling twice within one observation period overwrites instead of
duplicating. Tags: location (the configured name) and provider.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ingest.download import Http
from ingest.lineprotocol import LineEncoder
from ingest.schema import WEATHER
from ingest.sources import Chunk, SourceError

__all__ = [
    "ARCHIVE_URL", "FORECAST_URL", "OPENWEATHERMAP_URL", "Location", "OpenMeteo", "OpenWeatherMap",
    "open_meteo_current", "open_meteo_hourly", "openweathermap_current", "parse_locations",
]

log = logging.getLogger("ingest.weather")

FORECAST_URL = "https://api.open-meteo.com/v1/forecast"
ARCHIVE_URL = "https://archive-api.open-meteo.com/v1/archive"
OPENWEATHERMAP_URL = "https://api.openweathermap.org/data/2.5/weather"

# Our field -> Open-Meteo variable (the same names in `current` and `hourly`).
OPEN_METEO_VARIABLES = {
    "temperature": "temperature_2m", "humidity": "relative_humidity_2m", "pressure": "pressure_msl",
    "wind_speed": "wind_speed_10m", "wind_direction": "wind_direction_10m", "precipitation": "precipitation",
    "cloud_cover": "cloud_cover",
}
FIELDS = WEATHER.field_names
ENCODER = LineEncoder(WEATHER.name, WEATHER.tags, FIELDS)
_ARCHIVE_DAYS = 92  # one request per quarter keeps responses and memory small


@dataclass(frozen=True)
class Location:
    name: str
    latitude: float
    longitude: float


def parse_locations(text: str) -> list[Location]:
    """`Assen=52.99,6.56;Amsterdam=52.37,4.90` -> locations; ValueError names the bad entry."""
    found: list[Location] = []
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        match = re.fullmatch(r"(.+?)\s*=\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)", entry)
        if not match:
            raise ValueError(f"{entry!r} is not NAME=LATITUDE,LONGITUDE (e.g. Assen=52.99,6.56)")
        name, lat, lon = match.group(1).strip(), float(match.group(2)), float(match.group(3))
        if not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise ValueError(f"{entry!r}: latitude must be within ±90 and longitude within ±180")
        if any(item.name == name for item in found):
            raise ValueError(f"location {name!r} is listed twice")
        found.append(Location(name, lat, lon))
    if not found:
        raise ValueError("no location given")
    return found


def _frame(rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> pa.Table:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=["time", *WEATHER.tags,
                                                                                           *FIELDS])
    return pa.table({
        "time": pa.array(frame["time"].to_numpy(dtype=np.int64), pa.int64()),
        **{tag: pa.array(frame[tag].astype(object).tolist(), pa.string()) for tag in WEATHER.tags},
        **{name: pa.array(pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
           for name in FIELDS},
    })


def _local_times(values: Sequence[Any], offset_seconds: int, what: str) -> np.ndarray:
    """Open-Meteo times (ISO local times, or unix seconds) -> UTC nanoseconds."""
    if len(values) and isinstance(values[0], (int, float)):
        return np.asarray(values, dtype=np.int64) * 1_000_000_000
    try:
        local = pd.to_datetime(pd.Series(list(values), dtype=object), format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise SourceError(f"{what}: times do not parse: {exc}") from None
    if getattr(local.dt, "tz", None) is not None:
        return local.dt.tz_convert("UTC").dt.as_unit("ns").astype("int64").to_numpy()
    return local.dt.as_unit("ns").astype("int64").to_numpy() - int(offset_seconds) * 1_000_000_000


def _require(doc: Any, key: str, what: str) -> Any:
    if not isinstance(doc, Mapping) or key not in doc:
        raise SourceError(f"{what}: the response has no {key!r} (not the expected shape)")
    return doc[key]


def open_meteo_current(doc: Mapping[str, Any], location: Location) -> pa.Table:
    """One row from an Open-Meteo `/v1/forecast?current=...` response."""
    what = f"Open-Meteo current weather for {location.name}"
    current = _require(doc, "current", what)
    stamp = _local_times([_require(current, "time", what)], int(doc.get("utc_offset_seconds") or 0), what)[0]
    row = {"time": stamp, "location": location.name, "provider": "open-meteo"}
    row.update({name: current.get(variable) for name, variable in OPEN_METEO_VARIABLES.items()})
    return _frame([row])


def open_meteo_hourly(doc: Mapping[str, Any], location: Location) -> pa.Table:
    """Every hour of an Open-Meteo `hourly` block (archive or forecast response)."""
    what = f"Open-Meteo hourly weather for {location.name}"
    hourly = _require(doc, "hourly", what)
    times = _require(hourly, "time", what)
    stamps = _local_times(times, int(doc.get("utc_offset_seconds") or 0), what)
    columns: dict[str, Any] = {"time": stamps, "location": [location.name] * len(times),
                               "provider": ["open-meteo"] * len(times)}
    for name, variable in OPEN_METEO_VARIABLES.items():
        values = hourly.get(variable)
        if values is None:
            columns[name] = [None] * len(times)
        elif len(values) != len(times):
            raise SourceError(f"{what}: {variable} has {len(values)} values for {len(times)} times")
        else:
            columns[name] = values
    return _frame(pd.DataFrame(columns))


def openweathermap_current(doc: Mapping[str, Any], location: Location) -> pa.Table:
    """One row from an OpenWeatherMap 2.5 `/weather?units=metric` response (precipitation: rain + snow of the
    last hour; OpenWeatherMap leaves them out when nothing fell, which is written as 0)."""
    what = f"OpenWeatherMap current weather for {location.name}"
    main = _require(doc, "main", what)
    stamp = int(_require(doc, "dt", what)) * 1_000_000_000
    wind, clouds = doc.get("wind") or {}, doc.get("clouds") or {}
    fallen = [float((doc.get(kind) or {}).get("1h", 0.0)) for kind in ("rain", "snow")]
    row = {"time": stamp, "location": location.name, "provider": "openweathermap",
           "temperature": main.get("temp"), "humidity": main.get("humidity"),
           "pressure": main.get("sea_level", main.get("pressure")), "wind_speed": wind.get("speed"),
           "wind_direction": wind.get("deg"), "precipitation": sum(fallen), "cloud_cover": clouds.get("all")}
    return _frame([row])


def chunk(table: pa.Table, label: str) -> Chunk:
    return Chunk(table=table, encoder=ENCODER, input=label, rows_read=table.num_rows,
                 record=lambda row: table.slice(row, 1).to_pylist()[0])


class OpenMeteo:
    name = "open-meteo"

    def __init__(self, http: Http, *, forecast_url: str = FORECAST_URL, archive_url: str = ARCHIVE_URL):
        self.http, self.forecast_url, self.archive_url = http, forecast_url, archive_url

    def _params(self, location: Location) -> dict[str, Any]:
        return {"latitude": location.latitude, "longitude": location.longitude, "wind_speed_unit": "ms",
                "timezone": "GMT", "timeformat": "unixtime"}

    def current(self, location: Location) -> Chunk:
        params = {**self._params(location), "current": ",".join(OPEN_METEO_VARIABLES.values())}
        doc = self.http.get_json(self.forecast_url, f"Open-Meteo current weather for {location.name}", params=params)
        return chunk(open_meteo_current(doc, location), f"open-meteo:{location.name}")

    def archive(self, location: Location, start: date, end: date) -> Iterator[Chunk]:
        """Hourly history from `start` to `end` (inclusive), a quarter per request."""
        if end < start:
            raise SourceError(f"backfill for {location.name}: the end {end} is before the start {start}")
        first = start
        while first <= end:
            last = min(end, first + timedelta(days=_ARCHIVE_DAYS - 1))
            params = {**self._params(location), "start_date": first.isoformat(), "end_date": last.isoformat(),
                      "hourly": ",".join(OPEN_METEO_VARIABLES.values())}
            what = f"Open-Meteo archive for {location.name} {first}..{last}"
            doc = self.http.get_json(self.archive_url, what, params=params)
            yield chunk(open_meteo_hourly(doc, location), f"open-meteo-archive:{location.name}:{first}")
            first = last + timedelta(days=1)


class OpenWeatherMap:
    name = "openweathermap"

    def __init__(self, http: Http, api_key: str, *, url: str = OPENWEATHERMAP_URL):
        self.http, self.api_key, self.url = http, api_key, url

    def current(self, location: Location) -> Chunk:
        params = {"lat": location.latitude, "lon": location.longitude, "units": "metric", "appid": self.api_key}
        what = f"OpenWeatherMap current weather for {location.name}"
        response = self.http.get(self.url, what, params=params)
        if response.status_code == 401:
            raise SourceError(f"{what}: the API key was refused (401); check OPENWEATHERMAP_API_KEY")
        try:
            doc = response.json()
        except ValueError:
            raise SourceError(f"{what}: answered {response.status_code} with something that is not JSON") from None
        if not response.ok:
            raise SourceError(f"{what}: answered {response.status_code}: {doc.get('message', doc)}")
        return chunk(openweathermap_current(doc, location), f"openweathermap:{location.name}")
