"""Durations as InfluxDB 3 reads them: the Rust `humantime` crate's `parse_duration` (v2.x, used by
`--gen1-lookback-duration`, `retention_period` and `every:` trigger specs).

Units (humantime src/duration.rs): nsec/ns, usec/us, msec/ms, seconds/second/sec/s, minutes/minute/min/m,
hours/hour/hr/h, days/day/d, weeks/week/w, months/month/M (30.44 days), years/year/y (365.25 days);
numbers are unsigned integers, terms may be separated by spaces ("1h 30m") or not ("1h30m").
"""

from __future__ import annotations

__all__ = ["DurationError", "parse_duration_ns"]

_SECOND = 1_000_000_000
_UNITS = {
    **dict.fromkeys(("nanos", "nsec", "ns"), 1),
    **dict.fromkeys(("usec", "us", "µs"), 1_000),
    **dict.fromkeys(("millis", "msec", "ms"), 1_000_000),
    **dict.fromkeys(("seconds", "second", "secs", "sec", "s"), _SECOND),
    **dict.fromkeys(("minutes", "minute", "mins", "min", "m"), 60 * _SECOND),
    **dict.fromkeys(("hours", "hour", "hrs", "hr", "h"), 3_600 * _SECOND),
    **dict.fromkeys(("days", "day", "d"), 86_400 * _SECOND),
    **dict.fromkeys(("weeks", "week", "w"), 604_800 * _SECOND),
    # humantime: a month is 30.44 days (2_630_016 s), a year 365.25 days (31_557_600 s).
    **dict.fromkeys(("months", "month", "M"), 2_630_016 * _SECOND),
    **dict.fromkeys(("years", "year", "y"), 31_557_600 * _SECOND),
}


class DurationError(ValueError):
    """humantime::DurationError, with its Display text."""


def parse_duration_ns(text: str) -> int:
    """Nanoseconds of a humantime duration string ("10m", "1month", "400d", "1h 30m")."""
    if not text.strip():
        raise DurationError("value was empty")
    total, pos, size = 0, 0, len(text)
    while pos < size:
        while pos < size and text[pos].isspace():
            pos += 1
        if pos >= size:
            break
        start = pos
        # The number: digits, with whitespace anywhere among them skipped ("1 year" is 1 year, as the server's
        # own parse_duration("1 year") in trigger.rs needs; humantime 2.x Parser::parse).
        while pos < size and (text[pos].isdigit() or text[pos].isspace()):
            pos += 1
        if start == pos:
            raise DurationError(f"expected number at {start}")
        number = int("".join(text[start:pos].split()))
        unit_start = pos
        while pos < size and text[pos].isalpha():
            pos += 1
        unit = text[unit_start:pos]
        if not unit:
            raise DurationError(f"time unit needed, for example {number}sec or {number}ms")
        if unit not in _UNITS:
            raise DurationError(f"unknown time unit {unit!r}, supported units: ns, us, ms, sec, min, hours, days, "
                                "weeks, months, years (and few variations)")
        total += number * _UNITS[unit]
        if pos < size and not (text[pos].isspace() or text[pos].isdigit()):
            raise DurationError(f"invalid character at {pos}")
    if total >= 2**64 * _SECOND:
        raise DurationError("number is too large")
    return total
