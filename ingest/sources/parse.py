"""Text columns to typed columns, vectorized, with a per-row verdict so bad values can be quarantined.

Empty cells are missing values, not errors; a cell that is not empty and does not parse is an error the
caller reports with its line. "nan"/"inf" parse (and are then never written, as the encoder drops them).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Verdicts", "column_kind", "normalize_name", "parse_bools", "parse_floats", "parse_times"]

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}


def normalize_name(name: str) -> str:
    """`location-lat` / `location_lat` / `gps:satellite-count` / `HumidityRatio` / `CO2` -> `location_lat`,
    `gps_satellite_count`, `humidity_ratio`, `co2`: one spelling for CSV exports, API columns and keys."""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[^0-9a-z]+", "_", split.lower()).strip("_")


def _text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return pc.utf8_trim_whitespace(pc.cast(column, pa.string()))


def _nonempty(text: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.greater(pc.binary_length(text), 0), False).to_numpy(zero_copy_only=False),
                      dtype=bool)


def parse_floats(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN where missing or bad, mask of cells that are not empty and not a number)."""
    text = _text(column)
    present = _nonempty(text)
    blanked = pc.if_else(pa.array(present), text, pa.scalar(None, pa.string()))
    try:
        values = pc.cast(blanked, pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.float64), np.zeros(len(text), dtype=bool)
    except pa.ArrowInvalid:
        parsed = pd.to_numeric(pd.Series(blanked.to_pylist(), dtype=object), errors="coerce")
        values = parsed.to_numpy(dtype=np.float64, na_value=np.nan)
        lowered = np.char.lower(np.asarray(text.to_pylist(), dtype=object).astype(str))
        literal_nan = np.isin(lowered, ["nan", "+nan", "-nan"])
        return values, present & np.isnan(values) & ~literal_nan


def parse_times(column: pa.Array | pa.ChunkedArray, *, timezone: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(int64 nanoseconds since the epoch, mask of cells that are missing or not a date and time).

    ISO 8601 with a space or `T`, with or without fractional seconds and offset. Times without an offset are
    UTC, or local to `timezone` when one is given.
    """
    text = _text(column)
    series = pd.Series(text.to_pandas(), dtype="object")
    if timezone:
        parsed = pd.to_datetime(series, format="ISO8601", errors="coerce")
        if getattr(parsed.dt, "tz", None) is None:
            parsed = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    else:
        parsed = pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    values = parsed.dt.as_unit("ns").to_numpy(dtype="datetime64[ns]").astype(np.int64)
    values[bad] = 0
    return values, bad


def parse_bools(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """(Arrow booleans with null where empty, mask of cells that are neither true nor false)."""
    text = pc.utf8_lower(_text(column))
    is_true = pc.is_in(text, value_set=pa.array(sorted(_TRUE)))
    is_false = pc.is_in(text, value_set=pa.array(sorted(_FALSE)))
    present = _nonempty(text)
    known = np.asarray(pc.or_(is_true, is_false).to_numpy(zero_copy_only=False), dtype=bool)
    values = pc.if_else(pa.array(present & known), is_true, pa.scalar(None, pa.bool_()))
    return values, present & ~known


def column_kind(values: np.ndarray, bad: np.ndarray) -> str | None:
    """Decide from a column's first values whether it holds numbers: "number" when most non-empty cells parse
    (the others are then bad rows), "text" otherwise (the column is not loaded), None while it is empty."""
    present = int((~np.isnan(values)).sum() + bad.sum())
    if present == 0:
        return None
    return "number" if bad.sum() * 2 < present else "text"


class Verdicts:
    """Collects why rows are bad, first reason wins; `good` is what is left to load."""

    def __init__(self, rows: int):
        self.bad = np.zeros(rows, dtype=bool)
        self.reasons: dict[int, str] = {}

    def add(self, mask: np.ndarray, reason: str | Callable[[int], str]) -> None:
        fresh = mask & ~self.bad
        if fresh.any():
            for row in np.flatnonzero(fresh).tolist():
                self.reasons[row] = reason(row) if callable(reason) else reason
            self.bad |= mask

    @property
    def good(self) -> np.ndarray:
        return np.flatnonzero(~self.bad)

    def items(self) -> list[tuple[int, str]]:
        return sorted(self.reasons.items())
