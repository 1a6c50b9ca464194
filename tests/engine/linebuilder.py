"""The `LineBuilder` the engine injects into plugins' builtins, with the engine's validation rules.

Behaviour matched to InfluxDB 3's `influxdb3_py_api` (3.10): the measurement may not contain a space; tag and
field keys may not be empty or contain a space, comma or equals sign (they are rejected, not escaped, except
field keys, which are also escaped); a negative uint64 raises ValueError; `build()` without a field raises.
Like the engine, it does NOT check values: `float64_field(k, nan)` builds `k=nan`, an empty tag value builds
`t=`, and the server then refuses the whole write. The local engine's write path is where that is caught,
exactly as on the server.
"""

from __future__ import annotations

__all__ = ["InfluxDBError", "InvalidKeyError", "InvalidLineError", "InvalidMeasurementError", "LineBuilder"]


class InfluxDBError(Exception):
    """Base class of the builder's errors (same names as the engine's)."""


class InvalidMeasurementError(InfluxDBError):
    pass


class InvalidKeyError(InfluxDBError):
    pass


class InvalidLineError(InfluxDBError):
    pass


def _escape(text: str, characters: str) -> str:
    for char in characters:
        text = text.replace(char, "\\" + char)
    return text


class LineBuilder:
    def __init__(self, measurement: str):
        if " " in measurement:
            raise InvalidMeasurementError("Measurement name cannot contain spaces")
        self.measurement = measurement
        self.tags: dict[str, str] = {}
        self.fields: dict[str, str] = {}
        self._time_ns: int | None = None

    @staticmethod
    def _check_key(key: str, kind: str) -> None:
        if not key:
            raise InvalidKeyError(f"{kind} key cannot be empty")
        for char, name in ((" ", "spaces"), (",", "commas"), ("=", "equals signs")):
            if char in key:
                raise InvalidKeyError(f"{kind} key '{key}' cannot contain {name}")

    def tag(self, key: str, value: str) -> LineBuilder:
        self._check_key(key, "tag")
        self.tags[key] = str(value)
        return self

    def int64_field(self, key: str, value: int) -> LineBuilder:
        self._check_key(key, "field")
        self.fields[key] = f"{value}i"
        return self

    def uint64_field(self, key: str, value: int) -> LineBuilder:
        self._check_key(key, "field")
        if value < 0:
            raise ValueError(f"uint64 field '{key}' cannot be negative")
        self.fields[key] = f"{value}u"
        return self

    def float64_field(self, key: str, value: float) -> LineBuilder:
        self._check_key(key, "field")
        # Whole numbers get a ".0" so the server types the column float64, not int64.
        self.fields[key] = f"{int(value)}.0" if value % 1 == 0 else str(value)
        return self

    def string_field(self, key: str, value: str) -> LineBuilder:
        self._check_key(key, "field")
        self.fields[key] = '"' + _escape(value, '\\"') + '"'
        return self

    def bool_field(self, key: str, value: bool) -> LineBuilder:
        self._check_key(key, "field")
        self.fields[key] = "t" if value else "f"
        return self

    def time_ns(self, timestamp_ns: int) -> LineBuilder:
        self._time_ns = timestamp_ns
        return self

    def build(self) -> str:
        line = _escape(self.measurement, ", ")
        if self.tags:
            line += "," + ",".join(f"{key}={_escape(value, chr(92) + ',= ')}" for key, value in self.tags.items())
        if not self.fields:
            raise InvalidLineError(f"At least one field is required: {line}")
        line += " " + ",".join(f"{_escape(key, chr(92) + ',= ')}={value}" for key, value in self.fields.items())
        if self._time_ns is not None:
            line += f" {self._time_ns}"
        return line
