"""A strict line-protocol parser: the yardstick our encoder and the local engine are held to.

It accepts only what both InfluxDB 2 and InfluxDB 3 accept, and is stricter where they differ or where
they would silently do something a user would not want:
- exactly one space between measurement+tags, fields and timestamp; no leading/trailing whitespace;
- escapes: `\\,` `\\ ` in measurements; `\\,` `\\=` `\\ ` in tag keys, tag values and field keys;
  `\\"` and `\\\\` inside string field values; a backslash before any other character is literal, except
  that two backslashes in a measurement, key or tag value are refused (InfluxDB 2 keeps both, InfluxDB 3
  reads one);
- no raw newline or carriage return inside a line (InfluxDB does not support them in keys or values);
- tag values and every key non-empty; `time` is never a tag or field key;
- a key used twice in one line, or as both tag and field, is an error;
- floats are finite (no NaN/inf), integers fit int64 (`i`) or uint64 (`u`), booleans are
  t/T/true/True/TRUE/f/F/false/False/FALSE, strings are double-quoted;
- timestamps are optional signed int64 integers.
Blank lines and lines starting with `#` are skipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = ["LineProtocolError", "ParsedPoint", "parse_line", "parse_lines"]

_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_FLOAT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}


class LineProtocolError(ValueError):
    def __init__(self, message: str, line: str = "", lineno: int | None = None):
        self.reason, self.line, self.lineno = message, line, lineno
        where = f"line {lineno}: " if lineno is not None else ""
        super().__init__(f"{where}{message}: {line[:200]!r}")


@dataclass
class ParsedPoint:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, object]
    field_types: dict[str, str] = field(default_factory=dict)  # float|int|uint|string|bool
    timestamp: int | None = None


def _read_key(text: str, pos: int, stops: str, escapable: str) -> tuple[str, int]:
    """Read an escaped token from `pos` until an unescaped char in `stops`; return (value, next_pos)."""
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == "\\" and text.startswith("\\\\", pos):
            # InfluxDB 2 keeps both backslashes, InfluxDB 3 reads one: the stored value would differ.
            raise LineProtocolError("a double backslash in a key or tag value is read differently by InfluxDB 2 and 3",
                                    text)
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in escapable:
            out.append(text[pos + 1])
            pos += 2
            continue
        if char in stops:
            break
        out.append(char)
        pos += 1
    return "".join(out), pos


def _parse_field_value(raw: str, line: str) -> tuple[str, object]:
    if not raw:
        raise LineProtocolError("empty field value", line)
    if raw[0] == '"':
        raise LineProtocolError("internal: strings are parsed by the caller", line)
    if raw in _TRUE:
        return "bool", True
    if raw in _FALSE:
        return "bool", False
    if raw[-1] in "iu":
        digits = raw[:-1]
        if not re.fullmatch(r"-?\d+" if raw[-1] == "i" else r"\d+", digits):
            raise LineProtocolError(f"bad {'integer' if raw[-1] == 'i' else 'unsigned'} value {raw!r}", line)
        value = int(digits)
        low, high = _INT64 if raw[-1] == "i" else _UINT64
        if not low <= value <= high:
            raise LineProtocolError(f"value {raw!r} out of range", line)
        return ("int" if raw[-1] == "i" else "uint"), value
    if not _FLOAT.fullmatch(raw):
        raise LineProtocolError(f"bad field value {raw!r}", line)
    number = float(raw)
    if not math.isfinite(number):
        raise LineProtocolError(f"non-finite float {raw!r}", line)
    return "float", number


def parse_line(line: str, lineno: int | None = None) -> ParsedPoint:
    """Parse one line (without its newline) or raise LineProtocolError saying why."""
    try:
        return _parse(line)
    except LineProtocolError as exc:
        raise LineProtocolError(exc.reason, line, lineno) from None


def _parse(line: str) -> ParsedPoint:
    if "\n" in line or "\r" in line:
        raise LineProtocolError("raw newline or carriage return inside a line", line)
    if line != line.strip(" \t"):
        raise LineProtocolError("leading or trailing whitespace", line)
    if line.startswith("#"):
        raise LineProtocolError("comment is not a point", line)
    measurement, pos = _read_key(line, 0, ", ", ", ")
    if not measurement:
        raise LineProtocolError("empty measurement", line)
    tags: dict[str, str] = {}
    while pos < len(line) and line[pos] == ",":
        key, pos = _read_key(line, pos + 1, ",= ", ",= ")
        if pos >= len(line) or line[pos] != "=":
            raise LineProtocolError(f"tag {key!r} has no '='", line)
        value, pos = _read_key(line, pos + 1, ",= ", ",= ")
        if not key:
            raise LineProtocolError("empty tag key", line)
        if not value:
            raise LineProtocolError(f"tag {key!r} has an empty value", line)
        if key == "time":
            raise LineProtocolError("'time' cannot be a tag key", line)
        if key in tags:
            raise LineProtocolError(f"tag {key!r} appears twice", line)
        if pos < len(line) and line[pos] == "=":
            raise LineProtocolError(f"unescaped '=' in tag {key!r}", line)
        tags[key] = value
    if pos >= len(line) or line[pos] != " ":
        raise LineProtocolError("missing space before the field set", line)
    pos += 1
    fields: dict[str, object] = {}
    types: dict[str, str] = {}
    while True:
        key, pos = _read_key(line, pos, ",= ", ",= ")
        if not key:
            raise LineProtocolError("empty field key", line)
        if pos >= len(line) or line[pos] != "=":
            raise LineProtocolError(f"field {key!r} has no '='", line)
        pos += 1
        if pos < len(line) and line[pos] == '"':
            out: list[str] = []
            pos += 1
            while True:
                if pos >= len(line):
                    raise LineProtocolError(f"unterminated string in field {key!r}", line)
                char = line[pos]
                if char == "\\" and pos + 1 < len(line) and line[pos + 1] in '"\\':
                    out.append(line[pos + 1])
                    pos += 2
                elif char == '"':
                    pos += 1
                    break
                else:
                    out.append(char)
                    pos += 1
            kind, value = "string", "".join(out)
        else:
            end = pos
            while end < len(line) and line[end] not in ", ":
                end += 1
            kind, value = _parse_field_value(line[pos:end], line)
            pos = end
        if key == "time":
            raise LineProtocolError("'time' cannot be a field key", line)
        if key in fields:
            raise LineProtocolError(f"field {key!r} appears twice", line)
        if key in tags:
            raise LineProtocolError(f"{key!r} is both a tag and a field", line)
        fields[key], types[key] = value, kind
        if pos >= len(line) or line[pos] == " ":
            break
        if line[pos] != ",":
            raise LineProtocolError(f"unexpected {line[pos]!r} after field {key!r}", line)
        pos += 1
    timestamp = None
    if pos < len(line):
        raw = line[pos + 1:]
        if not re.fullmatch(r"-?\d+", raw):
            raise LineProtocolError(f"bad timestamp {raw!r}", line)
        timestamp = int(raw)
        if not _INT64[0] <= timestamp <= _INT64[1]:
            raise LineProtocolError(f"timestamp {raw!r} out of int64 range", line)
    return ParsedPoint(measurement, tags, fields, types, timestamp)


def parse_lines(text: str) -> list[ParsedPoint]:
    """Parse a whole body; blank lines and `#` comments are skipped. Errors carry 1-based line numbers."""
    points = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line == "" or line.startswith("#"):
            continue
        points.append(parse_line(line, number))
    return points
