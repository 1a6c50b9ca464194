"""What a WAL batch holds: which columns are numeric fields, which are numbers stored as text, which rows
are usable. Rows come from the engine as dicts of column -> value with `time` in int nanoseconds; a field
that was not written in a row is simply absent."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchColumns", "classify", "row_key"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _looks_numeric(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


@dataclass
class BatchColumns:
    numeric: list[str] = field(default_factory=list)
    numbers_as_text: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    rows: list[Mapping[str, Any]] = field(default_factory=list)
    bad_time: int = 0


def classify(rows: Iterable[Mapping[str, Any]], tags: Iterable[str]) -> BatchColumns:
    """Sort the batch's non-tag columns into numeric fields, numbers stored as text, and the rest."""
    tag_set = set(tags) | {"time"}
    kinds: dict[str, set[str]] = {}
    result = BatchColumns()
    for row in rows:
        stamp = row.get("time")
        if not isinstance(stamp, int) or isinstance(stamp, bool):
            result.bad_time += 1
            continue
        result.rows.append(row)
        for name, value in row.items():
            if name in tag_set or value is None:
                continue
            if _is_number(value):
                kind = "number"
            elif isinstance(value, str):
                kind = "numeric_text" if _looks_numeric(value) else "text"
            else:
                kind = "other"
            kinds.setdefault(name, set()).add(kind)
    for name in sorted(kinds):
        found = kinds[name]
        if found == {"number"}:
            result.numeric.append(name)
        elif "numeric_text" in found and found <= {"numeric_text", "text"}:
            result.numbers_as_text.append(name)
        else:
            result.other.append(name)
    return result


def row_key(row: Mapping[str, Any], tags: Iterable[str]) -> tuple:
    """The series key plus time: what InfluxDB deduplicates on (a later write of it replaces the earlier)."""
    return (row.get("time"), *(row.get(tag) for tag in tags))
