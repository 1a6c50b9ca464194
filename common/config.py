"""Configuration from the environment, with `_FILE` secrets, validated up front.

Every service builds one config object at start-up from an `Env`. Problems are collected, not raised one
by one, so a user who got three variables wrong learns about all three in one run; `Env.finish()` raises a
single `ConfigError` naming each variable and what is wrong with it. Secret values never appear in messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["ConfigError", "Env", "format_duration", "parse_duration"]

_MISSING = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(ValueError):
    """Raised with every configuration problem found, one per line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(self.problems))


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `30m`, `1h30m`, `7d`, `2w` (InfluxDB duration style) into a timedelta.

    Raises ValueError naming the text when it is empty, malformed or zero.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty duration")
    pos, seconds = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(value):
        raise ValueError(f"{text!r} is not a duration like 30s, 15m, 1h, 7d or 2w")
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest InfluxDB-style spelling of a whole-second duration (`1h30m`, `7d`)."""
    remaining = int(delta.total_seconds())
    if remaining <= 0:
        raise ValueError("duration must be longer than zero")
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


class Env:
    """Typed, validated access to environment variables.

    `secret(NAME)` reads `NAME`, or the file named by `NAME_FILE` (Docker/Compose secrets), never both.
    Each getter returns the parsed value, or None after recording a problem; call `finish()` once all
    values are read.
    """

    def __init__(self, environ: Mapping[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def _fail(self, name: str, problem: str) -> None:
        self.problems.append(f"{name}: {problem}")

    def _required(self, name: str, default: object) -> str | None:
        raw = self._raw(name)
        if raw is None and default is _MISSING:
            self._fail(name, "is required but not set")
        return raw

    def str(self, name: str, default: object = _MISSING) -> str | None:
        raw = self._required(name, default)
        return raw if raw is not None else (None if default is _MISSING else default)  # type: ignore[return-value]

    def secret(self, name: str, default: object = _MISSING) -> str | None:
        """A secret from `NAME` or from the file at `NAME_FILE`; the value is never echoed."""
        direct, file_name = self._raw(name), self._raw(f"{name}_FILE")
        if direct is not None and file_name is not None:
            self._fail(name, f"set both {name} and {name}_FILE; set only one")
            return None
        if file_name is not None:
            try:
                value = Path(file_name).read_text(encoding="utf-8").strip()
            except OSError as exc:
                self._fail(f"{name}_FILE", f"cannot read {file_name}: {exc.strerror or exc}")
                return None
            if not value:
                self._fail(f"{name}_FILE", f"{file_name} is empty")
                return None
            return value
        if direct is not None:
            return direct
        if default is _MISSING:
            self._fail(name, f"is required but not set (set {name} or {name}_FILE)")
            return None
        return default  # type: ignore[return-value]

    def int(self, name: str, default: object = _MISSING, *, min: int | None = None,
            max: int | None = None) -> int | None:
        raw = self._required(name, default)
        if raw is None:
            return None if default is _MISSING else default  # type: ignore[return-value]
        try:
            value = int(raw)
        except ValueError:
            self._fail(name, f"{raw!r} is not a whole number")
            return None
        return self._bounded(name, value, min, max)

    def float(self, name: str, default: object = _MISSING, *, min: float | None = None,
              max: float | None = None) -> float | None:
        raw = self._required(name, default)
        if raw is None:
            return None if default is _MISSING else default  # type: ignore[return-value]
        try:
            value = float(raw)
        except ValueError:
            self._fail(name, f"{raw!r} is not a number")
            return None
        return self._bounded(name, value, min, max)

    def _bounded(self, name, value, low, high):
        if low is not None and value < low:
            self._fail(name, f"{value} is below the minimum {low}")
            return None
        if high is not None and value > high:
            self._fail(name, f"{value} is above the maximum {high}")
            return None
        return value

    def bool(self, name: str, default: object = _MISSING) -> bool | None:
        raw = self._required(name, default)
        if raw is None:
            return None if default is _MISSING else default  # type: ignore[return-value]
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self._fail(name, f"{raw!r} is not a boolean (use true or false)")
        return None

    def list(self, name: str, default: object = _MISSING, *, sep: str = ",") -> list[str] | None:
        raw = self._required(name, default)
        if raw is None:
            return None if default is _MISSING else list(default)  # type: ignore[call-overload]
        return [item.strip() for item in raw.split(sep) if item.strip()]

    def choice(self, name: str, choices: Sequence[str], default: object = _MISSING) -> str | None:
        raw = self._required(name, default)
        if raw is None:
            return None if default is _MISSING else default  # type: ignore[return-value]
        if raw not in choices:
            self._fail(name, f"{raw!r} is not one of {', '.join(choices)}")
            return None
        return raw

    def duration(self, name: str, default: object = _MISSING) -> timedelta | None:
        raw = self._required(name, default)
        if raw is None:
            if default is _MISSING or default is None:
                return None
            return default if isinstance(default, timedelta) else parse_duration(str(default))
        try:
            return parse_duration(raw)
        except ValueError as exc:
            self._fail(name, str(exc))
            return None

    def url(self, name: str, default: object = _MISSING) -> str | None:
        raw = self._required(name, default)
        value = raw if raw is not None else (None if default is _MISSING else default)
        if value is None:
            return None
        parts = urlsplit(str(value))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self._fail(name, f"{value!r} is not an http(s) URL such as http://influxdb3:8181")
            return None
        return str(value).rstrip("/")

    def path(self, name: str, default: object = _MISSING) -> Path | None:
        raw = self._required(name, default)
        value = raw if raw is not None else (None if default is _MISSING else default)
        return None if value is None else Path(str(value))

    def finish(self) -> None:
        """Raise one ConfigError listing every problem recorded so far."""
        if self.problems:
            raise ConfigError(self.problems)
