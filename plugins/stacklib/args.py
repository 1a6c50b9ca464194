"""Trigger arguments and request parameters, validated up front with every problem reported at once.

The engine hands a plugin `args` as a dict of strings (or None when the trigger has none). Each plugin
declares what it accepts as a tuple of `Param`; `parse` returns the typed values or raises `ArgumentError`
naming each bad argument and why, before the plugin touches the database. Names that reach SQL (tables,
columns) must pass `identifier`, so nothing unchecked is ever pasted into a query.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "REQUIRED", "ArgumentError", "Param", "choice", "database_name", "duration_ns", "fraction", "identifier", "integer",
    "parse", "tag_value", "url_or_path",
]

REQUIRED = object()
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_DATABASE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,510}")
_DURATION_PART = re.compile(r"(\d+)(ns|us|ms|s|m|h|d|w)")
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
            "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}


class ArgumentError(ValueError):
    """Every problem with a plugin's arguments, one per line."""

    def __init__(self, problems: Sequence[str], source: str = "trigger argument"):
        self.problems = list(problems)
        self.source = source
        super().__init__(f"invalid {source}s: " + "; ".join(self.problems))


@dataclass(frozen=True)
class Param:
    """One accepted argument: its name, a parser from text to value, and a default (or REQUIRED)."""

    name: str
    parser: Callable[[str], Any]
    default: Any = REQUIRED

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def parse(raw: Mapping[str, str] | None, params: Sequence[Param], *,
          source: str = "trigger argument", allow_unknown: bool = False) -> dict[str, Any]:
    """Typed values for `params` from `raw` (None means no arguments); raise ArgumentError listing problems.

    Unknown names are errors unless `allow_unknown`: a misspelt argument silently falling back to its
    default is the mistake this catches.
    """
    raw = dict(raw or {})
    problems: list[str] = []
    values: dict[str, Any] = {}
    known = {param.name for param in params}
    if not allow_unknown:
        for name in sorted(set(raw) - known):
            problems.append(f"unknown {source} {name!r} (accepted: {', '.join(sorted(known)) or 'none'})")
    for param in params:
        text = raw.get(param.name)
        if text is None or str(text).strip() == "":
            if param.required:
                problems.append(f"{source} {param.name!r} is required")
            else:
                values[param.name] = param.default
            continue
        try:
            values[param.name] = param.parser(str(text).strip())
        except ValueError as exc:
            problems.append(f"{source} {param.name!r}={str(text)[:80]!r}: {exc}")
    if problems:
        raise ArgumentError(problems, source)
    return values


def identifier(text: str) -> str:
    """A table, tag or field name safe to quote into SQL: letters, digits and _, not starting with a digit."""
    if not _IDENTIFIER.fullmatch(text):
        raise ValueError("must be an identifier (letters, digits and _, not starting with a digit, "
                         "at most 128 characters)")
    return text


def database_name(text: str) -> str:
    """An InfluxDB 3 database name (influxdb3_server/src/http.rs `validate_db_name`, v3.10.1; the plugin directory
    is mounted alone, so common/names.py cannot be imported here)."""
    if not _DATABASE.fullmatch(text):
        raise ValueError("must be an ASCII letter or digit, then letters, digits, _ or -, at most 511 characters")
    return text


def tag_value(text: str) -> str:
    """A tag value line protocol can carry: non-empty, at most 256 characters, no control characters."""
    if not text or len(text) > 256 or any(ord(char) < 32 for char in text):
        raise ValueError("must be 1-256 printable characters")
    return text


def duration_ns(text: str) -> int:
    """`30m`, `1h`, `10d`, `1h30m`, `2w` (InfluxDB style; `m` is minutes) as nanoseconds, > 0."""
    pos, total = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError("must be a duration like 30m, 1h, 10d or 1h30m")
    if total <= 0:
        raise ValueError("must be longer than zero")
    return total


def integer(minimum: int, maximum: int) -> Callable[[str], int]:
    """A parser for whole numbers in [minimum, maximum]."""

    def parse_int(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}")
        return value

    return parse_int


def choice(*options: str) -> Callable[[str], str]:
    """A parser for one of `options`."""

    def parse_choice(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse_choice


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (e.g. a prediction interval width)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not 0.0 < value < 1.0:
        raise ValueError("must be between 0 and 1 (exclusive)")
    return value


def url_or_path(text: str) -> str:
    """An http(s):// or file:// URL, or an absolute local path that exists."""
    parts = urlsplit(text)
    if parts.scheme in ("http", "https"):
        if not parts.netloc:
            raise ValueError("an http(s) URL needs a host")
        return text
    if parts.scheme == "file":
        return text
    if parts.scheme == "" and Path(text).is_absolute():
        if not Path(text).is_file():
            raise ValueError("no such file")
        return text
    raise ValueError("must be an http://, https:// or file:// URL or an absolute path")
