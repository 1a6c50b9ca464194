"""What the ingest app writes, declared once: measurement (table) names, tags and fields with their types.

Plain data with no third-party imports, so the dashboards generator, the plugins' provisioning check and the
tests can import it anywhere. Types use InfluxDB 3's column type names (`float64`, `int64`, `uint64`, `bool`,
`utf8`), which is also what `POST /api/v3/configure/table` takes.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BIRD_FIXES", "BOOL", "DATABASES", "FLOAT", "HISTORY", "INGEST_RUNS", "INGEST_STEPS", "INT", "MEASUREMENTS",
    "MONITORING", "SENSORS", "STRING", "TELEMETRY", "UINT", "WEATHER", "Field", "Measurement", "measurement",
]

FLOAT, INT, UINT, BOOL, STRING = "float64", "int64", "uint64", "bool", "utf8"
FIELD_TYPES = (FLOAT, INT, UINT, BOOL, STRING)

# InfluxDB 2 bucket and InfluxDB 3 database names (the same names in both; rule in common/names.py).
TELEMETRY = "telemetry"
MONITORING = "monitoring"
HISTORY = "history"  # what outlives the raw retention: rollups and history loaded from the past (bird study)
DATABASES = (TELEMETRY, MONITORING, HISTORY)


@dataclass(frozen=True)
class Field:
    name: str
    type: str = FLOAT
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Measurement:
    """One measurement (InfluxDB 2) / table (InfluxDB 3).

    `extra_fields` is the type of the fields a source may add beyond `fields` (Movebank's extra sensor columns,
    a replayed CSV's numeric columns); None means the field list is closed.
    """

    name: str
    database: str
    tags: tuple[str, ...]
    fields: tuple[Field, ...]
    description: str
    extra_fields: str | None = None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.fields)

    @property
    def field_types(self) -> dict[str, str]:
        return {item.name: item.type for item in self.fields}

    def influxdb3_table(self) -> dict[str, object]:
        """The body of `POST /api/v3/configure/table` that creates this table ahead of the first write."""
        return {"db": self.database, "table": self.name, "tags": list(self.tags),
                "fields": [{"name": item.name, "type": item.type} for item in self.fields]}


BIRD_FIXES = Measurement(
    name="bird_fixes", database=HISTORY,
    tags=("species", "individual", "tag", "sensor_type", "study"),
    fields=(
        Field("lat", FLOAT, "degrees", "WGS84 latitude (Movebank location-lat)"),
        Field("lon", FLOAT, "degrees", "WGS84 longitude (Movebank location-long)"),
        Field("visible", BOOL, "", "Movebank `visible`: false when any outlier flag hides the fix"),
        Field("outlier", BOOL, "", "true when the fix is marked as an outlier (manually or on import)"),
    ),
    description="Animal tracking fixes from Movebank; extra numeric sensor columns (ground_speed, heading, "
                "height_above_msl, external_temperature, ...) are added as float64 fields named after the column.",
    extra_fields=FLOAT,
)

WEATHER = Measurement(
    name="weather", database=TELEMETRY,
    tags=("location", "provider"),
    fields=(
        Field("temperature", FLOAT, "°C", "air temperature at 2 m"),
        Field("humidity", FLOAT, "%", "relative humidity at 2 m"),
        Field("pressure", FLOAT, "hPa", "air pressure reduced to mean sea level"),
        Field("wind_speed", FLOAT, "m/s", "wind speed at 10 m"),
        Field("wind_direction", FLOAT, "°", "wind direction at 10 m (meteorological, from north)"),
        Field("precipitation", FLOAT, "mm", "precipitation (rain + snow water equivalent) in the last hour"),
        Field("cloud_cover", FLOAT, "%", "total cloud cover"),
    ),
    description="Current conditions (Open-Meteo or OpenWeatherMap) and Open-Meteo archive backfills.",
)

SENSORS = Measurement(
    name="sensors", database=TELEMETRY,
    tags=("device", "location"),
    fields=(
        Field("temperature", FLOAT, "°C"),
        Field("humidity", FLOAT, "%"),
        Field("co2", FLOAT, "ppm"),
        Field("co", FLOAT, "ppm"),
        Field("light", FLOAT, "lx"),
        Field("motion", FLOAT, "", "1 when motion was detected in the interval, else 0"),
        Field("smoke", FLOAT, "", "1 when the smoke detector is alarming, else 0"),
        Field("battery", FLOAT, "%"),
    ),
    description="Simulated device fleet, or a replayed sensor CSV (which may add other float64 fields).",
    extra_fields=FLOAT,
)

INGEST_RUNS = Measurement(
    name="ingest", database=MONITORING,
    tags=("source", "sink"),
    fields=(
        Field("rows_read", FLOAT, "rows", "input rows read in this run"),
        Field("rows_rejected", FLOAT, "rows", "rows quarantined to the rejects file (bad input)"),
        Field("rows_written", FLOAT, "rows", "rows the sink acknowledged"),
        Field("rows_spooled", FLOAT, "rows", "rows put in the on-disk spool after their retries failed"),
        Field("rows_replayed", FLOAT, "rows", "spooled rows delivered later"),
        Field("rows_refused", FLOAT, "rows", "rows the database refused (4xx); kept in the rejects folder"),
        Field("batches", FLOAT, "requests", "write requests that succeeded"),
        Field("retries", FLOAT, "requests", "write attempts that were retried"),
        Field("spool_files", FLOAT, "files", "batches waiting in the spool after the run"),
        Field("spool_bytes", FLOAT, "bytes", "size of the spool after the run"),
        Field("write_rate", FLOAT, "rows/s", "rows written per second of the run"),
        Field("duration", FLOAT, "s", "wall time of the run"),
    ),
    description="The ingest service's own run metrics, one point per source and sink per run.",
)

INGEST_STEPS = Measurement(
    name="ingest_steps", database=MONITORING,
    tags=("database",),
    fields=(
        Field("step", INT, "", "the history load's step waiting (ingest/pacing.py), from 1"),
        Field("windows", INT, "windows", "distinct (table, 10-minute window) pairs the step sent"),
        Field("persisted", INT, "windows", "of them, those InfluxDB 3 lists a new Parquet file for"),
    ),
    description="A point a second while a history load waits for InfluxDB 3 to persist its step: its progress, "
                "and the WAL files Core counts to its next snapshot.",
)

MEASUREMENTS = (BIRD_FIXES, WEATHER, SENSORS, INGEST_RUNS, INGEST_STEPS)


def measurement(name: str) -> Measurement:
    """The declared measurement called `name`; KeyError names the known ones."""
    for item in MEASUREMENTS:
        if item.name == name:
            return item
    raise KeyError(f"unknown measurement {name!r}; known: {', '.join(m.name for m in MEASUREMENTS)}")
