"""Every alert threshold and duration, declared once: the alert rules, the notification policy and the dashboards'
threshold colours are built from these values.

Why they are applied when the files are generated (`make dashboards`) and not by Grafana at start: Grafana's alert
provisioning takes a rule's query model as written (pkg/services/provisioning/alerting/rules_types.go,
QueryV1.mapToModel uses `Model.Raw`, so `$__timeFilter` survives), so a `${VAR}` in a query or threshold would reach
the database verbatim. The defaults below are what the committed files hold; `.env.example` lists each variable
with its default, and `make dashboards` reads `.env` (or the environment) and rewrites the files with the values
set there.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULTS", "DURATION", "NUMBER", "Settings", "duration_text", "from_env_file", "parse_duration",
           "resolve", "specs"]

DURATION, NUMBER = "duration", "number"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"(\d+)([smhdw])")
_ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def parse_duration(text: str) -> int:
    """`90s`, `10m`, `26h`, `2d`, `1h30m` -> seconds (whole units only, like Prometheus' durations Grafana reads)."""
    value = text.strip()
    parts = _DURATION.findall(value)
    if not value or "".join(number + unit for number, unit in parts) != value:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 10m, 26h, 2d)")
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def duration_text(seconds: int) -> str:
    """Seconds as the shortest duration Grafana parses back to the same value: 600 -> `10m`, 93600 -> `26h`."""
    if seconds <= 0:
        return "0s"
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def _number(text: str) -> float:
    """A threshold; whole numbers stay ints, so the generated JSON reads `1500`, not `1500.0`."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _setting(env: str, default: str, kind: str, meaning: str) -> dataclasses.Field:
    value: float = parse_duration(default) if kind == DURATION else _number(default)
    return dataclasses.field(default=value, metadata={"env": env, "text": default, "kind": kind, "meaning": meaning})


@dataclass(frozen=True)
class Settings:
    """Durations in seconds, thresholds in the unit of what they compare (ppm, °C, %)."""

    evaluation_interval: float = _setting(
        "ALERT_EVALUATION_INTERVAL", "1m", DURATION, "how often Grafana evaluates every rule")
    pending_period: float = _setting(
        "ALERT_PENDING_PERIOD", "5m", DURATION, "how long a condition must hold before its alert fires")
    ingest_silent_after: float = _setting(
        "ALERT_INGEST_SILENT_AFTER", "10m", DURATION,
        "ingest has reported nothing, or written no rows to a database, for this long (more than the longest "
        "interval of INGEST_RUN_JOBS' jobs)")
    backup_max_age: float = _setting(
        "ALERT_BACKUP_MAX_AGE", "26h", DURATION,
        "the newest verified backup is older than this (BACKUP_SCHEDULE's period plus a margin)")
    device_silent_after: float = _setting(
        "ALERT_DEVICE_SILENT_AFTER", "15m", DURATION, "a sensor device has sent no reading for this long")
    sensor_window: float = _setting(
        "ALERT_SENSOR_WINDOW", "10m", DURATION, "sensor ranges compare each device's mean over this window")
    forecast_max_age: float = _setting(
        "ALERT_FORECAST_MAX_AGE", "2d", DURATION, "no forecast run for this long")
    co2_max: float = _setting("ALERT_CO2_MAX", "1500", NUMBER, "CO2 above this (ppm): ventilate")
    temperature_min: float = _setting("ALERT_TEMPERATURE_MIN", "10", NUMBER, "temperature below this (°C)")
    temperature_max: float = _setting("ALERT_TEMPERATURE_MAX", "30", NUMBER, "temperature above this (°C)")
    humidity_min: float = _setting("ALERT_HUMIDITY_MIN", "20", NUMBER, "relative humidity below this (%)")
    humidity_max: float = _setting("ALERT_HUMIDITY_MAX", "70", NUMBER, "relative humidity above this (%)")
    battery_min: float = _setting("ALERT_BATTERY_MIN", "20", NUMBER, "battery below this (%)")
    forecast_mape_max: float = _setting(
        "ALERT_FORECAST_MAPE_MAX", "20", NUMBER, "the latest forecast run's MAPE on its held-out days above this (%)")
    critical_repeat: float = _setting(
        "ALERT_CRITICAL_REPEAT", "1h", DURATION, "a critical alert still firing is sent again after this")
    warning_repeat: float = _setting(
        "ALERT_WARNING_REPEAT", "12h", DURATION, "a warning still firing is sent again after this")

    def text(self, name: str) -> str:
        """A setting as it would be written in .env: a duration (`10m`) or a number (`1500`)."""
        value = getattr(self, name)
        if _spec(name).metadata["kind"] == DURATION:
            return duration_text(int(value))
        return f"{value:g}"

    def overrides(self) -> dict[str, str]:
        """The variables whose value differs from the default, as `ALERT_X -> text`."""
        return {item.metadata["env"]: self.text(item.name) for item in specs()
                if getattr(self, item.name) != item.default}


def specs() -> tuple[dataclasses.Field, ...]:
    """Every setting: `.name`, `.default` and `.metadata` (env, text, kind, meaning)."""
    return dataclasses.fields(Settings)


def _spec(name: str) -> dataclasses.Field:
    return next(item for item in specs() if item.name == name)


DEFAULTS = Settings()


def resolve(environ: Mapping[str, str]) -> Settings:
    """Settings from `environ` (ALERT_* variables); unset or empty ones keep their default. ValueError names every
    value that does not parse or breaks a range (a minimum above its maximum)."""
    values: dict[str, float] = {}
    problems = []
    for item in specs():
        env = item.metadata["env"]
        text = (environ.get(env) or "").strip()
        if not text:
            continue
        try:
            values[item.name] = parse_duration(text) if item.metadata["kind"] == DURATION else _number(text)
        except ValueError:
            kind = "a duration such as 10m or 26h" if item.metadata["kind"] == DURATION else "a number"
            problems.append(f"{env}={text!r} is not {kind}")
    settings = dataclasses.replace(DEFAULTS, **values)
    for low, high in (("temperature_min", "temperature_max"), ("humidity_min", "humidity_max")):
        if getattr(settings, low) >= getattr(settings, high):
            problems.append(f"{_spec(low).metadata['env']} must be below {_spec(high).metadata['env']}")
    if settings.evaluation_interval < 10 or settings.evaluation_interval % 10:
        problems.append("ALERT_EVALUATION_INTERVAL must be a multiple of 10s (Grafana's base interval)")
    if problems:
        raise ValueError("; ".join(problems))
    return settings


def from_env_file(path: Path | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ALERT_* assignments of an .env file (if any), overridden by the same variables in `environ` (the shell
    wins, as with docker compose)."""
    found: dict[str, str] = {}
    if path is not None and path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _ASSIGN.match(line.strip())
            if match and match.group(1).startswith("ALERT_"):
                found[match.group(1)] = match.group(2).strip().strip("'\"")
    found.update({key: value for key, value in (environ or {}).items() if key.startswith("ALERT_")})
    return found
