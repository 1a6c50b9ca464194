"""The queries `python -m ingest migrate` sends to InfluxDB 2, answered as the server answers them: a subset of Flux
(`from |> range |> filter |> drop/keep |> pivot`) with its annotated CSV, and a subset of InfluxQL (SHOW
MEASUREMENTS / TAG KEYS / FIELD KEYS, SELECT count() ... GROUP BY time() fill(none)) with its JSON.

Sources: influxdata/influxdb v2.7.12 (the storage read path and the HTTP handlers; checked against v2.9.1),
github.com/influxdata/flux v0.196.1 (the version v2.7.12's go.mod pins; v0.200.0 of v2.9.1 has the same csv and
pivot code), Go's encoding/csv. Each behaviour names the file it follows. Anything else is answered 501 "not
modelled by the stand-in", never with a made-up result. tests/integration/test_standins.py compares these
answers with a real influxd byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

__all__ = ["FIELD_TYPE_NAMES", "FluxError", "NotModelled", "Storage", "encode_csv", "run_flux", "run_influxql"]

# Go's zero time (January 1, year 1, UTC) in Unix nanoseconds: time.Truncate counts from it.
GO_ZERO_NS = -62_135_596_800 * 10**9
_KIND_TYPES = {"float": "double", "int": "long", "uint": "unsignedLong", "string": "string", "bool": "boolean"}
# influxql.DataType names: SHOW FIELD KEYS answers them, a field type conflict names them
FIELD_TYPE_NAMES = {"float": "float", "int": "integer", "uint": "unsigned", "string": "string", "bool": "boolean"}
# unicode.IsSpace (Go): what makes encoding/csv quote a field that starts with it.
_GO_SPACE = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


class NotModelled(Exception):
    """A query the stand-in does not answer (501)."""


class FluxError(Exception):
    """A Flux error the server answers before any byte of the result: `status`, `code` and message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def shard_duration(retention_seconds: int) -> int:
    """v1/services/meta/data.go `shardGroupDuration` (ns): 7d for infinite or >= 180d retention, 1d from 2d, 1h."""
    day = 86_400 * 10**9
    if retention_seconds == 0 or retention_seconds >= 180 * 86_400:
        return 7 * day
    if retention_seconds >= 2 * 86_400:
        return day
    return 3_600 * 10**9


def shard_start(time_ns: int, duration: int) -> int:
    """v1/services/meta/data.go CreateShardGroup: `timestamp.Truncate(duration)`, counted from Go's zero time."""
    return time_ns - (time_ns - GO_ZERO_NS) % duration


@dataclass
class Storage:
    """What one bucket stores, as the read path sees it: each series' field values, and each shard group's field
    types (tsdb/shard.go MeasurementFields are per shard; a write of another type to another shard group lands).
    `preset` types a field in every shard (as a test that says "this field already exists as int")."""

    duration: int
    values: dict[tuple[str, tuple[tuple[str, str], ...], str], dict[int, tuple[str, Any]]] = field(default_factory=dict)
    kinds: dict[tuple[int, str, str], str] = field(default_factory=dict)  # (shard start, measurement, field) -> kind
    preset: dict[tuple[str, str], str] = field(default_factory=dict)

    def kind(self, time_ns: int, measurement: str, name: str) -> str | None:
        return self.kinds.get((shard_start(time_ns, self.duration), measurement, name)) or \
            self.preset.get((measurement, name))

    def store(self, measurement: str, tags: dict[str, str], name: str, time_ns: int, kind: str, value: Any) -> None:
        """A value lands (tsm1: the last write of a series, field and time wins)."""
        self.kinds.setdefault((shard_start(time_ns, self.duration), measurement, name), kind)
        self.values.setdefault((measurement, tuple(sorted(tags.items())), name), {})[time_ns] = (kind, value)

    def groups(self, measurement: str, name: str, start: int, stop: int, points: Iterable[int]) -> list[int]:
        """The shard groups of [start, stop) in which the measurement has the field, oldest first: a shard hands
        out a cursor for a field its measurement has, whether or not the series has values there (tsm1
        engine.go cursorIterator.Next looks the field up per measurement)."""
        found = {group for group, m, key in self.kinds if m == measurement and key == name
                 and group < stop and group + self.duration > start}
        if (measurement, name) in self.preset:
            found |= {shard_start(t, self.duration) for t in points if start <= t < stop}
        return sorted(found)

    def shard_kinds(self, measurement: str) -> dict[str, set[str]]:
        """Every type each field of a measurement has in some shard."""
        found: dict[str, set[str]] = {}
        for (_, name, key), kind in self.kinds.items():
            if name == measurement:
                found.setdefault(key, set()).add(kind)
        for (name, key), kind in self.preset.items():
            if name == measurement:
                found.setdefault(key, set()).add(kind)
        return found


# ---- Flux: tables ------------------------------------------------------------------------------------------------
@dataclass
class Table:
    columns: list[tuple[str, str]]  # (label, csv datatype)
    key: list[str]  # group key labels, in key order
    rows: list[dict[str, Any]]

    def key_values(self) -> list[tuple[str, str, Any]]:
        first = self.rows[0] if self.rows else {}
        types = dict(self.columns)
        return [(label, types[label], first.get(label)) for label in self.key]


def _series_bytes(measurement: str, tags: tuple[tuple[str, str], ...]) -> bytes:
    """models.MakeKey: the series key the index sorts by (measurement, then tags sorted, escaped)."""
    def escape(text: str, chars: str) -> str:
        for char in chars:
            text = text.replace(char, "\\" + char)
        return text

    key = escape(measurement, ", ") + "".join(f",{escape(k, ',= ')}={escape(v, ',= ')}" for k, v in tags)
    return key.encode()


def _read(storage: Storage, start: int, stop: int, keep: Callable[[str, dict[str, str], str], bool]) -> list[Table]:
    """storage/flux/reader.go filterIterator over v1/services/storage/series_cursor.go: measurements sorted, their
    series by key, each series' fields sorted; one table per series and field with values in [start, stop),
    empty ones left out. Columns (reader.go determineTableColsForSeries): _start, _stop, _time, _value, then
    _field, _measurement and the tags sorted by key; group key (defaultGroupKeyForSeries): _start, _stop and the
    same. The type is the field's in the first shard of the range that has it, and values stop at the first shard
    where it has another (storage/reads/array_cursor.gen.go `nextArrayCursor`: "expected float cursor", unread)."""
    tables: list[Table] = []
    order = sorted(storage.values, key=lambda item: (item[0].encode(), _series_bytes(item[0], item[1]),
                                                     item[2].encode()))
    for measurement, tags, name in order:
        labels = dict(tags)
        if not keep(measurement, labels, name):
            continue
        points = storage.values[(measurement, tags, name)]
        kind, rows = None, []
        for group in storage.groups(measurement, name, start, stop, points):
            here = storage.kinds.get((group, measurement, name)) or storage.preset.get((measurement, name))
            kind = kind or here
            if here != kind:
                break
            rows += [(t, value) for t, (_, value) in sorted(points.items())
                     if start <= t < stop and shard_start(t, storage.duration) == group]
        if not rows:
            continue
        keys = sorted(["_field", "_measurement", *labels], key=str.encode)
        values = {"_field": name, "_measurement": measurement, **labels}
        columns = [("_start", "dateTime"), ("_stop", "dateTime"), ("_time", "dateTime"),
                   ("_value", _KIND_TYPES[kind or "float"]), *((label, "string") for label in keys)]
        table = Table(columns, ["_start", "_stop", *keys],
                      [{"_start": start, "_stop": stop, "_time": t, "_value": value, **values} for t, value in rows])
        tables.append(table)
    return tables


def _group_less(a: list[tuple[str, str, Any]], b: list[tuple[str, str, Any]]) -> bool:
    """flux internal/execute/groupkey/groupkey.go groupKeyLess: columns compared in label order; where labels
    differ, the key without the smaller label is less; then values (strings by bytes); then the shorter key."""
    left, right = sorted(a, key=lambda item: item[0].encode()), sorted(b, key=lambda item: item[0].encode())
    for (la, ta, va), (lb, tb, vb) in zip(left, right, strict=False):
        if la != lb:
            return la.encode() > lb.encode()
        if ta != tb:
            return ta < tb
        if va is None or vb is None:
            if va is None and vb is not None:
                return True
            if vb is None and va is not None:
                return False
            continue
        x, y = (va.encode(), vb.encode()) if isinstance(va, str) else (va, vb)
        if x != y:
            return x < y
    return len(left) < len(right)


def _pivot(tables: list[Table], row_key: str, column_key: str, value_column: str) -> list[Table]:
    """flux stdlib/universe/pivot.go pivotTransformation.Process: per output group (the input's key minus the
    column key) the kept columns are, in the first input table's order, its group key columns and the row key;
    a new column per column-key value in order of first appearance ("value %q appears in a column key column,
    but a column named %q already exists" when it meets a kept column); rows in order of first appearance of
    their row key. Output tables in group key order (the dataset's groupkey.Lookup keeps keys sorted)."""
    groups: dict[tuple, Table] = {}
    for table in tables:
        kept = [(label, kind) for label, kind in table.columns
                if label not in (column_key, value_column) and (label in table.key or label == row_key)]
        key = [label for label, _ in kept if label in table.key]
        value_type = dict(table.columns)[value_column]
        for row in table.rows:
            group_id = tuple((label, row.get(label)) for label in key)
            out = groups.get(group_id)
            if out is None:
                out = groups[group_id] = Table(list(kept), key, [])
                out.index = {}  # type: ignore[attr-defined]
            name = str(row[column_key])
            labels = [label for label, _ in out.columns]
            if name not in labels:
                out.columns.append((name, value_type))
            elif name in [label for label, _ in kept]:
                raise _PivotClash(name)
            index = out.index  # type: ignore[attr-defined]
            if row[row_key] not in index:
                index[row[row_key]] = len(out.rows)
                out.rows.append({label: row.get(label) for label, _ in kept})
            out.rows[index[row[row_key]]][name] = row[value_column]
    ordered: list[Table] = []
    for table in groups.values():  # insertion sort by groupKeyLess (a handful of groups)
        position = len(ordered)
        while position and _group_less(table.key_values(), ordered[position - 1].key_values()):
            position -= 1
        ordered.insert(position, table)
    return ordered


class _PivotClash(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


# ---- Flux: the query text ---------------------------------------------------------------------------------------
_STRING = r'"(?:[^"\\]|\\.)*"'
_TIME = r"-?\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z"


def _unquote(literal: str) -> str:
    """flux docs/SPEC.md string literals: \\n \\r \\t \\\\ \\" \\${."""
    body, out, index = literal[1:-1], [], 0
    escapes = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$"}
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body) and body[index + 1] in escapes:
            out.append(escapes[body[index + 1]])
            index += 2
            continue
        if char == "$" and body.startswith("${", index):
            raise NotModelled("string interpolation")
        out.append(char)
        index += 1
    return "".join(out)


def _time(literal: str) -> int:
    match = re.fullmatch(r"(-?\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z", literal)
    if not match:
        raise NotModelled(f"time {literal!r}")
    moment = datetime.fromisoformat(match.group(1) + "+00:00")
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 10**9 + int((match.group(2) or "").ljust(9, "0"))


class _Predicate:
    """`r.<column> ==|!= "<string>"` joined by `and`/`or`, with parentheses: what migrate's filters use."""

    def __init__(self, text: str):
        self.tokens = re.findall(rf'{_STRING}|r\["(?:[^"\\]|\\.)*"\]|r\.\w+|==|!=|\(|\)|\band\b|\bor\b|\S+', text)
        self.pos = 0
        self.labels: set[str] = set()  # the columns it reads
        self.tree = self._or()
        if self.pos != len(self.tokens):
            raise NotModelled(f"filter {text!r}")

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _or(self) -> Callable[[dict], bool]:
        left = self._and()
        while self._peek() == "or":
            self.pos += 1
            right, first = self._and(), left
            left = lambda row, a=first, b=right: a(row) or b(row)  # noqa: E731
        return left

    def _and(self) -> Callable[[dict], bool]:
        left = self._atom()
        while self._peek() == "and":
            self.pos += 1
            right, first = self._atom(), left
            left = lambda row, a=first, b=right: a(row) and b(row)  # noqa: E731
        return left

    def _atom(self) -> Callable[[dict], bool]:
        if self._peek() == "(":
            self.pos += 1
            inner = self._or()
            if self._peek() != ")":
                raise NotModelled("unbalanced parentheses")
            self.pos += 1
            return inner
        if self.pos + 3 > len(self.tokens):
            raise NotModelled("filter expression")
        column, op, literal = self.tokens[self.pos:self.pos + 3]
        self.pos += 3
        if column.startswith('r["'):
            label = _unquote(column[2:-1])
        elif column.startswith("r."):
            label = column[2:]
        else:
            raise NotModelled(f"filter on {column!r}")
        if op not in ("==", "!=") or not re.fullmatch(_STRING, literal):
            raise NotModelled(f"filter {column} {op} {literal}")
        value = _unquote(literal)
        self.labels.add(label)
        if op == "==":
            return lambda row: row.get(label) == value
        return lambda row: row.get(label) != value


def run_flux(query: str, buckets: dict[str, Storage]) -> list[Table]:
    """Evaluate one of the query shapes migrate sends; NotModelled for anything else, FluxError as the server
    fails them (before any output)."""
    stages = [stage.strip() for stage in re.split(r"\|>", query)]
    source = re.fullmatch(rf"from\(bucket:\s*({_STRING})\)", stages[0])
    if not source or len(stages) < 2:
        raise NotModelled(f"query {query[:80]!r}")
    bucket = _unquote(source.group(1))
    window = re.fullmatch(rf"range\(start:\s*({_TIME}),\s*stop:\s*({_TIME})\)", stages[1])
    if not window:
        raise NotModelled(f"range {stages[1]!r}")
    if bucket not in buckets:
        # query/stdlib/influxdata/influxdb/source.go via the bucket lookup: the execute state fails first.
        raise FluxError(404, "not found", f'failed to initialize execute state: could not find bucket "{bucket}"')
    start, stop = _time(window.group(1)), _time(window.group(2))
    # filters right after range are pushed down into the storage read (query/stdlib/influxdata/influxdb/rules.go
    # PushDownFilterRule): series, field and value conditions.
    predicates = []
    rest = stages[2:]
    while rest and rest[0].startswith("filter("):
        match = re.fullmatch(r"filter\(fn:\s*\(r\)\s*=>\s*(.*)\)", rest[0], re.DOTALL)
        if not match:
            raise NotModelled(f"filter {rest[0]!r}")
        predicates.append(_Predicate(match.group(1)))
        rest = rest[1:]
    series = [item.tree for item in predicates if "_value" not in item.labels]
    values = [item.tree for item in predicates if "_value" in item.labels]
    tables = _read(buckets[bucket], start, stop,
                   lambda m, tags, name: all(p({"_measurement": m, "_field": name, **tags}) for p in series))
    for table in tables:
        table.rows = [row for row in table.rows if all(predicate(row) for predicate in values)]
    tables = [table for table in tables if table.rows]
    offset = query.index(stages[2]) if len(stages) > 2 else 0
    for stage in rest:
        offset = query.index(stage, offset)
        tables = _transform(stage, tables, query, offset)
    return tables


def _columns_argument(stage: str, name: str) -> list[str]:
    match = re.fullmatch(rf"{name}\(columns:\s*\[((?:\s*{_STRING}\s*,?)*)\]\)", stage)
    if not match:
        raise NotModelled(f"{name} {stage!r}")
    return [_unquote(item) for item in re.findall(_STRING, match.group(1))]


def _transform(stage: str, tables: list[Table], query: str, offset: int) -> list[Table]:
    if stage.startswith("drop("):
        # stdlib/universe/schema_functions.go drop: the columns go, from the group key too.
        gone = set(_columns_argument(stage, "drop"))
        for table in tables:
            table.columns = [item for item in table.columns if item[0] not in gone]
            table.key = [label for label in table.key if label not in gone]
            table.rows = [{k: v for k, v in row.items() if k not in gone} for row in table.rows]
        return tables
    if stage.startswith("pivot("):
        match = re.fullmatch(rf'pivot\(rowKey:\s*\[({_STRING})\],\s*columnKey:\s*\[({_STRING})\],\s*'
                             rf'valueColumn:\s*({_STRING})\)', stage)
        if not match:
            raise NotModelled(f"pivot {stage!r}")
        try:
            return _pivot(tables, *(_unquote(item) for item in match.groups()))
        except _PivotClash as clash:
            # The runtime error names the call's place in the query (flux's source locations, 1-based, end
            # exclusive): "runtime error @line:col-line:col: pivot: ...".
            line = query.count("\n", 0, offset) + 1
            column = offset - (query.rfind("\n", 0, offset) + 1) + 1
            end = column + len(stage)
            name = clash.name
            raise FluxError(400, "invalid", f"runtime error @{line}:{column}-{line}:{end}: pivot: value \"{name}\" "
                                            f"appears in a column key column, but a column named \"{name}\" already "
                                            f"exists; consider renaming \"{name}\" to something else before "
                                            "pivoting") from None
    raise NotModelled(f"stage {stage[:60]!r}")


# ---- Flux: annotated CSV ----------------------------------------------------------------------------------------
def _go_float(value: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that read back, never an exponent."""
    text = format(Decimal(repr(float(value))).normalize(), "f")
    return text


def _go_time(value: int) -> str:
    """time.RFC3339Nano in UTC: fractional digits with trailing zeros cut, none for a whole second."""
    seconds, nanos = divmod(int(value), 10**9)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text + (("." + f"{nanos:09d}".rstrip("0")) if nanos else "") + "Z"


def _cell(value: Any, datatype: str) -> str:
    """csv/result.go encodeValueFrom: null -> "", and each type's Go spelling."""
    if value is None:
        return ""
    if datatype == "dateTime":
        return _go_time(value)
    if datatype == "double":
        return _go_float(value)
    if datatype == "boolean":
        return "true" if value else "false"
    return str(value)


def _csv_field(text: str) -> str:
    """encoding/csv Writer.Write with UseCRLF (csv/result.go csvWriter): quoted when it holds a comma, a quote, CR
    or LF, starts with a Unicode space, or is exactly `\\.`; inside quotes `"` doubles, LF becomes CRLF and a CR
    is dropped."""
    if text == "":
        return ""
    if not (text == "\\." or any(char in text for char in ',"\r\n') or text[0] in _GO_SPACE):
        return text
    return '"' + text.replace('"', '""').replace("\r", "").replace("\n", "\r\n") + '"'


def _csv_row(cells: Iterable[str]) -> str:
    return ",".join(_csv_field(cell) for cell in cells) + "\r\n"


def encode_csv(tables: Sequence[Table], annotations: Sequence[str], *, header: bool = True,
               result: str = "_result") -> bytes:
    """csv/result.go ResultEncoder.Encode (+ DelimitedMultiResultEncoder's "\\r\\n" after the result): a block of
    annotations and header whenever the columns or the group key columns change, an empty line before each
    block but the first; data rows with an empty result cell when the default annotation carries it."""
    out: list[str] = []
    last: tuple | None = None
    for table_id, table in enumerate(tables):
        shape = (tuple(table.columns), tuple((label, dict(table.columns)[label]) for label in table.key))
        if shape != last:
            if last is not None:
                out.append("\r\n")
            types = {"dateTime": "dateTime:RFC3339"}
            for annotation in annotations:
                if annotation == "datatype":
                    out.append(_csv_row(["#datatype", "string", "long",
                                         *(types.get(kind, kind) for _, kind in table.columns)]))
                elif annotation == "group":
                    out.append(_csv_row(["#group", "false", "false",
                                         *("true" if label in table.key else "false" for label, _ in table.columns)]))
                elif annotation == "default":
                    out.append(_csv_row(["#default", result, "", *("" for _ in table.columns)]))
            if header:
                out.append(_csv_row(["", "result", "table", *(label for label, _ in table.columns)]))
            last = shape
        name = "" if "default" in annotations else result
        for row in table.rows:
            out.append(_csv_row(["", name, str(table_id), *(_cell(row.get(label), kind)
                                                             for label, kind in table.columns)]))
    out.append("\r\n")
    return "".join(out).encode()


# ---- InfluxQL ---------------------------------------------------------------------------------------------------
_IDENT = _STRING  # a double-quoted identifier is written as a Flux string is


def _ident(text: str) -> str:
    """influxql scanner: a double-quoted identifier with \\" \\\\ \\n escapes."""
    body = text[1:-1]
    return re.sub(r'\\(.)', lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), body)


def _statements(text: str) -> list[str]:
    parts, current, quoted, index = [], [], None, 0
    while index < len(text):
        char = text[index]
        if quoted:
            current.append(char)
            if char == "\\" and index + 1 < len(text):
                current.append(text[index + 1])
                index += 1
            elif char == quoted:
                quoted = None
        elif char in "\"'":
            quoted = char
            current.append(char)
        elif char == ";":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def run_influxql(text: str, storage: Storage | None) -> dict[str, Any]:
    """The `/query` answer for the statements migrate sends (epoch=ns). A database without a bucket behind it
    answers empty results (no error), as a real v2.9.1 does."""
    results = []
    for number, statement in enumerate(_statements(text)):
        series = _statement(statement, storage) if storage is not None else []
        results.append({"statement_id": number, **({"series": series} if series else {})})
    return {"results": results}


def _statement(statement: str, storage: Storage) -> list[dict[str, Any]]:
    measurements = sorted({m for m, _, _ in storage.values}, key=str.encode)
    if re.fullmatch(r"SHOW MEASUREMENTS", statement, re.IGNORECASE):
        return [{"name": "measurements", "columns": ["name"], "values": [[m] for m in measurements]}] \
            if measurements else []
    show = re.fullmatch(rf"SHOW (TAG|FIELD) KEYS FROM ({_IDENT})", statement, re.IGNORECASE)
    if show:
        name = _ident(show.group(2))
        if show.group(1).upper() == "TAG":
            keys = sorted({k for m, tags, _ in storage.values if m == name for k, _ in tags}, key=str.encode)
            return [{"name": name, "columns": ["tagKey"], "values": [[k] for k in keys]}] if keys else []
        # tsdb/shard.go fieldKeysIterator per shard, deduplicated per (key, type), sorted (statement_rewriter.go).
        kinds = storage.shard_kinds(name)
        values = sorted(([key, FIELD_TYPE_NAMES[kind]] for key, found in kinds.items() for kind in found),
                        key=lambda item: (item[0].encode(), item[1]))
        return [{"name": name, "columns": ["fieldKey", "fieldType"], "values": values}] if values else []
    count = re.fullmatch(rf"SELECT (.+) FROM ({_IDENT}) WHERE time >= (-?\d+) AND time < (-?\d+) "
                         r"GROUP BY time\((\d+)ns\) fill\(none\)", statement, re.IGNORECASE)
    if count:
        return _counts(storage, count)
    raise NotModelled(f"InfluxQL {statement[:80]!r}")


def _counts(storage: Storage, match: re.Match[str]) -> list[dict[str, Any]]:
    """`count(f::field) AS a` per time bucket (multiples of the interval from the epoch, the bucket's start as
    its time), over every series and shard (InfluxQL reads each shard with its own type); fill(none) leaves out
    buckets without any value, a field without values in a kept bucket is null."""
    columns = re.findall(rf"count\(({_IDENT})::field\) AS ({_IDENT})", match.group(1))
    if ", ".join(f"count({a}::field) AS {b}" for a, b in columns) != match.group(1):
        raise NotModelled(f"InfluxQL fields {match.group(1)[:80]!r}")
    name = _ident(match.group(2))
    start, stop, every = int(match.group(3)), int(match.group(4)), int(match.group(5))
    buckets: dict[int, dict[str, int]] = {}
    for field_ident, alias in columns:
        wanted = _ident(field_ident)
        for (measurement, _, key), points in storage.values.items():
            if measurement != name or key != wanted:
                continue
            for t in points:
                if start <= t < stop:
                    slot = buckets.setdefault(t // every * every, {})
                    slot[_ident(alias)] = slot.get(_ident(alias), 0) + 1
    if not buckets:
        return []
    aliases = [_ident(alias) for _, alias in columns]
    values = [[slot, *(buckets[slot].get(alias) for alias in aliases)] for slot in sorted(buckets)]
    return [{"name": name, "columns": ["time", *aliases], "values": values}]


def influxql_json(body: dict[str, Any]) -> bytes:
    """services/httpd's json.Encoder: compact, HTML characters escaped (\\u003c ...), a newline at the end."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n").encode()
