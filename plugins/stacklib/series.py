"""A daily series as a `ds,y` CSV: fetched over http(s), file:// or from a local path, parsed row by row.

Bad rows are quarantined with a reason (line number, what is wrong) and never stop the good ones; a `ds`
that appears twice keeps its last value, which is also what InfluxDB does with two points at one time.
"""

from __future__ import annotations

import csv
import io
import math
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["ParsedSeries", "SeriesError", "fetch_text", "parse_series_csv"]


class SeriesError(ValueError):
    """The series cannot be read at all (unreachable, too large, not a ds,y CSV)."""


@dataclass
class ParsedSeries:
    points: dict[int, float] = field(default_factory=dict)  # time ns (00:00 UTC of ds) -> y
    rejected: list[str] = field(default_factory=list)
    duplicates: int = 0


def fetch_text(location: str, timeout: float, max_bytes: int) -> str:
    """The text at `location` (http/https/file URL or absolute path), at most `max_bytes` bytes."""
    scheme = urlsplit(location).scheme
    try:
        if scheme in ("http", "https", "file"):
            request = urllib.request.Request(location, headers={"User-Agent": "influx-stack-load-series"})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                data = response.read(max_bytes + 1)
        else:
            with Path(location).open("rb") as handle:
                data = handle.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise SeriesError(f"cannot read {location}: HTTP {exc.code} {exc.reason}") from exc
    except OSError as exc:
        raise SeriesError(f"cannot read {location}: {getattr(exc, 'reason', None) or exc}") from exc
    if len(data) > max_bytes:
        raise SeriesError(f"{location} is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeriesError(f"{location} is not UTF-8 text: {exc}") from exc


def _day_ns(text: str) -> int:
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return int(moment.replace(tzinfo=UTC).timestamp()) * 10**9 + moment.microsecond * 1000


def parse_series_csv(text: str) -> ParsedSeries:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise SeriesError("the CSV is empty")
    names = [name.strip().lower() for name in header]
    if "ds" not in names or "y" not in names:
        raise SeriesError(f"the CSV header must have ds and y columns, it has {header[:10]}")
    ds_at, y_at = names.index("ds"), names.index("y")
    result = ParsedSeries()
    for number, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) <= max(ds_at, y_at):
            result.rejected.append(f"line {number}: {len(row)} columns, expected {len(names)}")
            continue
        try:
            stamp = _day_ns(row[ds_at])
        except ValueError:
            result.rejected.append(f"line {number}: ds {row[ds_at][:40]!r} is not a date")
            continue
        try:
            value = float(row[y_at])
        except ValueError:
            result.rejected.append(f"line {number}: y {row[y_at][:40]!r} is not a number")
            continue
        if not math.isfinite(value):
            result.rejected.append(f"line {number}: y {row[y_at][:40]!r} is not a finite number")
            continue
        if stamp in result.points:
            result.duplicates += 1
        result.points[stamp] = value
    return result
