"""The ingest service's one configuration object, built from the environment and validated at start.

Secrets (database tokens, the Movebank password, the OpenWeatherMap key) come from `NAME` or from the file
named by `NAME_FILE`. Every problem is reported at once, naming the variable. `.env.example` documents each
variable; the defaults work out of the box against the stack's published ports.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from common.config import ConfigError, Env
from common.names import database_name_problem
from common.retention import from_env as raw_retention_from_env
from ingest.schema import HISTORY, MONITORING, TELEMETRY
from ingest.sources.movebank import API_URL
from ingest.sources.weather import ARCHIVE_URL, FORECAST_URL, OPENWEATHERMAP_URL, Location, parse_locations

__all__ = ["ConfigError", "IngestConfig", "parse_size"]

PACKAGE = Path(__file__).resolve().parent
JOBS = ("birds", "weather", "sensors", "audit")
# InfluxDB 3 Core refuses a request body (decompressed) over --max-http-request-size, 10 MiB by default
# (influxdb3/src/commands/serve.rs, influxdb3_server/src/http.rs read_body; v3.10.1).
MAX_BATCH_BYTES = 10 * 1024 * 1024
_SIZE = re.compile(r"(\d+)\s*([kmg]i?b?|b)?", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "ki": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "mi": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "gi": 1024**3}


def parse_size(text: str) -> int:
    """`4194304`, `4MiB`, `512k`, `1GB` -> bytes; ValueError for anything else."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size such as 4MiB, 512KiB or 1GiB")
    return int(match.group(1)) * _UNITS[(match.group(2) or "").lower()]


@dataclass(frozen=True)
class InfluxDB2Target:
    url: str
    token: str = field(repr=False)
    org: str
    # False in the stack: influxdb2-init creates the buckets, and the ingest's token may only write to them.
    create_buckets: bool = True


@dataclass(frozen=True)
class InfluxDB3Target:
    url: str
    token: str = field(repr=False)


@dataclass(frozen=True)
class IngestConfig:
    influxdb2: InfluxDB2Target | None
    influxdb3: InfluxDB3Target | None
    bucket: str
    monitoring_bucket: str
    # History loaded from the past (the bird study): no raw retention reaches it (common/retention.py).
    history_bucket: str
    # `retention: raw` in the buckets file, when the ingest creates the buckets itself (RAW_RETENTION)
    raw_retention: timedelta | None
    state_dir: Path
    buckets_file: Path
    batch_bytes: int
    batch_rows: int
    gzip_level: int
    writes_in_flight: int
    windows_per_snapshot: int
    http_timeout: float
    retry_attempts: int
    retry_max_wait: float
    spool_max_bytes: int
    replay_interval: float
    metrics_interval: float
    audit_interval: float
    run_jobs: tuple[str, ...]
    movebank_sources: tuple[str, ...]
    movebank_study_id: int | None
    movebank_username: str | None
    movebank_password: str | None = field(repr=False)
    movebank_accept_license: bool
    movebank_api_url: str
    weather_locations: tuple[Location, ...]
    weather_interval: float
    openweathermap_api_key: str | None = field(repr=False)
    open_meteo_url: str
    open_meteo_archive_url: str
    openweathermap_url: str
    sensors_devices: int
    sensors_interval: int
    sensors_seed: int
    sensors_locations: tuple[tuple[str, float], ...]
    sensors_catchup: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, need_influxdb2: bool = True,
                 need_influxdb3: bool = True, require: Collection[str] = ()) -> IngestConfig:
        """Read and check everything; `need_*` False skips a database's token (e.g. with --lp-out); a database
        in `require` ("influxdb2", "influxdb3") is used whatever INGEST_INFLUXDB2/3 say (`migrate` reads one and
        writes the other)."""
        env = Env(environ)
        use2 = "influxdb2" in require or (env.bool("INGEST_INFLUXDB2", True) and need_influxdb2)
        use3 = "influxdb3" in require or (env.bool("INGEST_INFLUXDB3", True) and need_influxdb3)
        influxdb2 = influxdb3 = None
        url2 = env.url("INFLUXDB2_URL", "http://localhost:8086")
        org = env.str("INFLUXDB2_ORG", "stack")
        url3 = env.url("INFLUXDB3_URL", "http://localhost:8181")
        if use2:
            token = env.secret("INFLUXDB2_TOKEN")
            create = env.bool("INGEST_INFLUXDB2_CREATE_BUCKETS", True)
            influxdb2 = InfluxDB2Target(url2 or "", token or "", org or "", create is not False)
        if use3:
            token = env.secret("INFLUXDB3_TOKEN")
            influxdb3 = InfluxDB3Target(url3 or "", token or "")

        bucket = env.str("INGEST_BUCKET", TELEMETRY)
        monitoring = env.str("INGEST_MONITORING_BUCKET", MONITORING)
        history = env.str("INGEST_HISTORY_BUCKET", HISTORY)
        for name, value in (("INGEST_BUCKET", bucket), ("INGEST_MONITORING_BUCKET", monitoring),
                            ("INGEST_HISTORY_BUCKET", history)):
            problem = database_name_problem(value) if value else None
            if problem:
                env.problems.append(f"{name}: {value!r} {problem}")

        sizes = {}
        for name, default in (("INGEST_BATCH_BYTES", "4MiB"), ("INGEST_SPOOL_MAX_BYTES", "1GiB")):
            raw = env.str(name, default) or default
            try:
                sizes[name] = parse_size(raw)
            except ValueError as exc:
                env.problems.append(f"{name}: {exc}")
                sizes[name] = 0
        if sizes["INGEST_BATCH_BYTES"] > MAX_BATCH_BYTES:
            env.problems.append(f"INGEST_BATCH_BYTES: {env.str('INGEST_BATCH_BYTES', '')} is more than InfluxDB 3 "
                                f"accepts in one request (10MiB, its --max-http-request-size); use at most 10MiB")

        jobs = tuple(env.list("INGEST_RUN_JOBS", list(JOBS)) or ())
        unknown = [job for job in jobs if job not in JOBS]
        if unknown:
            env.problems.append(f"INGEST_RUN_JOBS: unknown {', '.join(unknown)} (choose from {', '.join(JOBS)})")

        locations: tuple[Location, ...] = ()
        try:
            locations = tuple(parse_locations(env.str("WEATHER_LOCATIONS", "Assen=52.99,6.56;Amsterdam=52.37,4.90")
                                              or ""))
        except ValueError as exc:
            env.problems.append(f"WEATHER_LOCATIONS: {exc}")
        sensor_places: tuple[tuple[str, float], ...] = ()
        try:
            sensor_places = _sensor_locations(env.str("SENSORS_LOCATIONS", "office=1;lab=1;greenhouse=1") or "")
        except ValueError as exc:
            env.problems.append(f"SENSORS_LOCATIONS: {exc}")
        study = env.int("MOVEBANK_STUDY_ID", None, min=1)

        def seconds(name: str, default: str) -> float:
            value = env.duration(name, default)
            return value.total_seconds() if isinstance(value, timedelta) else 0.0

        config = cls(
            influxdb2=influxdb2, influxdb3=influxdb3, bucket=bucket or TELEMETRY,
            monitoring_bucket=monitoring or MONITORING, history_bucket=history or HISTORY,
            raw_retention=raw_retention_from_env(env),
            state_dir=env.path("INGEST_STATE_DIR", "var/ingest") or Path("var/ingest"),
            buckets_file=env.path("INGEST_BUCKETS_FILE", str(PACKAGE / "buckets.yaml")) or PACKAGE / "buckets.yaml",
            batch_bytes=sizes["INGEST_BATCH_BYTES"], batch_rows=env.int("INGEST_BATCH_ROWS", 50_000, min=1) or 1,
            gzip_level=env.int("INGEST_GZIP_LEVEL", 1, min=0, max=9) or 0,
            writes_in_flight=env.int("INGEST_WRITES_IN_FLIGHT", 8, min=1, max=64) or 1,
            windows_per_snapshot=env.int("INGEST_WINDOWS_PER_SNAPSHOT", 2000, min=0) or 0,
            http_timeout=seconds("INGEST_HTTP_TIMEOUT", "30s"),
            retry_attempts=env.int("INGEST_RETRY_ATTEMPTS", 5, min=1, max=100) or 1,
            retry_max_wait=seconds("INGEST_RETRY_MAX_WAIT", "2m"),
            spool_max_bytes=sizes["INGEST_SPOOL_MAX_BYTES"],
            replay_interval=seconds("INGEST_REPLAY_INTERVAL", "30s"),
            metrics_interval=seconds("INGEST_METRICS_INTERVAL", "1m"),
            audit_interval=seconds("INGEST_AUDIT_INTERVAL", "1h") or 3600.0,
            run_jobs=jobs,
            movebank_sources=tuple(env.list("MOVEBANK_SOURCES", []) or ()),
            movebank_study_id=study,
            movebank_username=env.str("MOVEBANK_USERNAME", None),
            movebank_password=env.secret("MOVEBANK_PASSWORD", None),
            movebank_accept_license=bool(env.bool("MOVEBANK_ACCEPT_LICENSE", False)),
            movebank_api_url=env.url("MOVEBANK_API_URL", API_URL) or API_URL,
            weather_locations=locations,
            weather_interval=seconds("WEATHER_INTERVAL", "30m"),
            openweathermap_api_key=env.secret("OPENWEATHERMAP_API_KEY", None),
            open_meteo_url=env.url("OPEN_METEO_URL", FORECAST_URL) or FORECAST_URL,
            open_meteo_archive_url=env.url("OPEN_METEO_ARCHIVE_URL", ARCHIVE_URL) or ARCHIVE_URL,
            openweathermap_url=env.url("OPENWEATHERMAP_URL", OPENWEATHERMAP_URL) or OPENWEATHERMAP_URL,
            sensors_devices=env.int("SENSORS_DEVICES", 6, min=1, max=10_000) or 1,
            sensors_interval=int(seconds("SENSORS_INTERVAL", "10s")) or 1,
            sensors_seed=env.int("SENSORS_SEED", 42) or 0,
            sensors_locations=sensor_places,
            sensors_catchup=seconds("SENSORS_CATCHUP", "1h"),
        )
        if config.movebank_password and not config.movebank_username:
            env.problems.append("MOVEBANK_PASSWORD: set MOVEBANK_USERNAME too")
        if seconds("SENSORS_INTERVAL", "10s") % 1:
            env.problems.append("SENSORS_INTERVAL: use whole seconds")
        env.finish()
        return config


def _sensor_locations(text: str) -> tuple[tuple[str, float], ...]:
    """`office=1;lab=-5` -> ((office, 1.0), (lab, -5.0)): a room name and its UTC offset in hours."""
    found = []
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        match = re.fullmatch(r"([^=]+?)\s*=\s*([+-]?\d+(?:\.\d+)?)", entry)
        if not match or not -14 <= float(match.group(2)) <= 14:
            raise ValueError(f"{entry!r} is not NAME=UTC_OFFSET_HOURS (e.g. office=1)")
        found.append((match.group(1).strip(), float(match.group(2))))
    if not found:
        raise ValueError("no location given")
    return tuple(found)
