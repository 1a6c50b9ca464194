"""InfluxDB 2 as a source: a bucket's measurements and their schema and counts (InfluxQL), and their points one
time window at a time (Flux, annotated CSV streamed) as Arrow tables in the shape the encoder takes.

Why each query is what it is (InfluxDB v2.7.12 and v2.9.1):
- Field types are kept per shard (tsdb/shard.go MeasurementFields; a write of another type into another shard
  group is accepted). `SHOW FIELD KEYS` lists a field once per type it has in any shard (tsdb/shard.go
  `fieldKeysIterator`, deduplicated per key and type and sorted), so a field that changed type is seen here, up
  front. Flux would not say it: a series' cursor takes the type of the first shard and silently stops at the
  first shard of another type (storage/reads/array_cursor.gen.go `nextArrayCursor` sets an error nobody reads).
- InfluxQL runs on every bucket without setup: each bucket is a virtual DBRP mapping, database = its name
  (dbrp/service.go `bucketToMapping`), through the v1 `/query` endpoint with the token.
- Counts per window (`count(f) ... GROUP BY time(W) fill(none)`) are merged over series by the server and come
  back as one row per window, however many series there are; buckets start at multiples of W from the epoch.
- Points come from `from |> range |> filter |> drop(_start, _stop) |> pivot(rowKey: ["_time"], columnKey:
  ["_field"])`: one row per series and time, one typed column per field (flux stdlib/universe/pivot.go). A tag
  and a field of the same name make pivot fail ("... a column named %q already exists"), so they are checked
  up front; the annotated CSV writes an empty string like a null, so empty strings are asked for separately
  (`r._value == ""` is pushed down to storage) and put back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import requests

from ingest.download import Http
from ingest.fluxcsv import Block, FluxCsvError, FluxQueryError, read_blocks
from ingest.sinks import FatalSinkError
from ingest.sources import SourceError

__all__ = [
    "FIELD_TYPES", "MAX_TIME", "MIN_TIME", "InfluxDB2Source", "MeasurementSchema", "flux_string", "flux_time",
    "influxql_ident", "pivot_flux", "point_keys",
]

log = logging.getLogger("ingest.influxdb2")

# models/time.go: the first and last nanosecond InfluxDB 2 stores (MinNanoTime, MaxNanoTime).
MIN_TIME = -(2**63) + 2
MAX_TIME = 2**63 - 2
# SHOW FIELD KEYS type names (influxql.DataType String) -> Arrow.
FIELD_TYPES: dict[str, pa.DataType] = {
    "float": pa.float64(), "integer": pa.int64(), "unsigned": pa.uint64(), "string": pa.string(),
    "boolean": pa.bool_(),
}
_ANNOTATIONS = ["datatype", "group", "default"]
_KEY_SEPARATOR = "\x1f"
_NO_TAG = "\x00"


def flux_string(text: str) -> str:
    """A Flux string literal (flux docs/SPEC.md "String literals": \\\\ \\" \\${ \\n \\r \\t)."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${").replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def flux_time(time_ns: int) -> str:
    """A Flux datetime literal with all nine fractional digits (RFC3339, UTC)."""
    seconds, nanos = divmod(int(time_ns), 10**9)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def influxql_ident(name: str) -> str:
    """An InfluxQL quoted identifier (influxql v1.2.0 parser.go `QuoteIdent`, qiReplacer)."""
    return '"' + name.replace("\n", "\\n").replace("\\", "\\\\").replace('"', '\\"') + '"'


def _predicate(measurement: str, skip: Sequence[str] = (), only: Sequence[str] = ()) -> str:
    parts = [f"r._measurement == {flux_string(measurement)}"]
    parts += [f"r._field != {flux_string(name)}" for name in skip]
    if only:
        parts.append("(" + " or ".join(f"r._field == {flux_string(name)}" for name in only) + ")")
    return " and ".join(parts)


def pivot_flux(bucket: str, measurement: str, start: int, stop: int, skip: Sequence[str] = ()) -> str:
    """One window of a measurement, a row per series and time, a column per field."""
    return (f"from(bucket: {flux_string(bucket)})\n"
            f"  |> range(start: {flux_time(start)}, stop: {flux_time(stop)})\n"
            f"  |> filter(fn: (r) => {_predicate(measurement, skip)})\n"
            '  |> drop(columns: ["_start", "_stop"])\n'
            '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")')


def empty_strings_flux(bucket: str, measurement: str, start: int, stop: int, fields: Sequence[str]) -> str:
    """The points of one window whose string field is an empty string (which the CSV cannot tell from null)."""
    return (f"from(bucket: {flux_string(bucket)})\n"
            f"  |> range(start: {flux_time(start)}, stop: {flux_time(stop)})\n"
            f"  |> filter(fn: (r) => {_predicate(measurement, only=fields)})\n"
            '  |> filter(fn: (r) => r._value == "")\n'
            '  |> drop(columns: ["_start", "_stop", "_value", "_measurement"])')


@dataclass
class MeasurementSchema:
    """A measurement as InfluxDB 2 describes it: tag keys, and each field with every type it has in a shard."""

    name: str
    tags: list[str] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)  # field -> SHOW FIELD KEYS types
    skip: set[str] = field(default_factory=set)  # fields left out (--skip-field)

    @property
    def moved(self) -> list[str]:
        """The fields that move, sorted."""
        return sorted(name for name in self.fields if name not in self.skip)

    def arrow_type(self, name: str) -> pa.DataType:
        return FIELD_TYPES[self.fields[name][0]]

    @property
    def strings(self) -> list[str]:
        return [name for name in self.moved if self.fields[name] == ["string"]]

    def arrow_schema(self) -> pa.Schema:
        """The shape of every table this source yields for the measurement: time (int64 ns), tags, fields."""
        return pa.schema([pa.field("time", pa.int64()), *(pa.field(tag, pa.string()) for tag in self.tags),
                          *(pa.field(name, self.arrow_type(name)) for name in self.moved)])


class InfluxDB2Source:
    """Reads one bucket of an InfluxDB 2 server with its HTTP API (the token's org)."""

    def __init__(self, url: str, token: str, org: str, bucket: str, *, http: Http, piece_bytes: int = 8 << 20):
        self.url, self.org, self.bucket = url.rstrip("/"), org, bucket
        self.http = http
        self.http.session.headers["Authorization"] = f"Token {token}"
        self.piece_bytes = piece_bytes
        self._hints = {401: "the token was refused; check INFLUXDB2_TOKEN",
                       403: "the token may not read this bucket; use the operator token or one with read access"}

    # ---- errors -----------------------------------------------------------------------------------------
    def _check(self, response: requests.Response, what: str) -> None:
        if response.ok:
            return
        try:
            body: Any = response.json()
            message = body.get("message") or body.get("error") or response.text if isinstance(body, dict) else body
        except ValueError:
            message = response.text
        text = f"InfluxDB 2 {what} answered {response.status_code}: {str(message).strip()[:500]}"
        if response.status_code in self._hints:
            raise FatalSinkError(f"{text} — {self._hints[response.status_code]}")
        if response.status_code == 404:
            raise FatalSinkError(text)
        raise SourceError(text)

    # ---- the bucket ---------------------------------------------------------------------------------------
    def check_bucket(self) -> None:
        """Stop with a clear message when the bucket (or the org) does not exist: both are 404 by name
        (tenant/service_bucket.go, tenant/service_org.go)."""
        response = self.http.request("GET", f"{self.url}/api/v2/buckets", "InfluxDB 2 bucket lookup",
                                     params={"org": self.org, "name": self.bucket})
        if response.status_code == 404:
            raise FatalSinkError(f"InfluxDB 2 has no bucket {self.bucket!r} in organization {self.org!r} "
                                 f"({_message(response)}); see the buckets with `influx bucket list`")
        self._check(response, "bucket lookup")

    # ---- InfluxQL -----------------------------------------------------------------------------------------
    def influxql(self, statements: Sequence[str]) -> list[dict[str, Any]]:
        """The results of InfluxQL statements run in one request (one result per statement)."""
        database, _, policy = self.bucket.partition("/")
        params = {"db": database, "q": ";\n".join(statements), "epoch": "ns"}
        if policy:
            params["rp"] = policy
        response = self.http.request("POST", f"{self.url}/query", "InfluxDB 2 InfluxQL query", data=params)
        self._check(response, "InfluxQL query")
        try:
            results = response.json().get("results") or []
        except ValueError:
            raise SourceError(f"InfluxDB 2 answered an InfluxQL query with something that is not JSON: "
                              f"{response.text[:200]!r}") from None
        for result in results:
            if result.get("error"):
                raise SourceError(f"InfluxDB 2 refused an InfluxQL query on bucket {self.bucket!r}: {result['error']}")
        return results

    def measurements(self) -> list[str]:
        [result] = self.influxql(["SHOW MEASUREMENTS"])
        return [str(row[0]) for series in result.get("series") or [] for row in series.get("values") or []]

    def schemas(self, measurements: Sequence[str]) -> dict[str, MeasurementSchema]:
        """Tag keys and field types of each measurement (over all of the bucket's shards)."""
        found: dict[str, MeasurementSchema] = {name: MeasurementSchema(name) for name in measurements}
        statements = [f"SHOW {kind} KEYS FROM {influxql_ident(name)}" for name in measurements
                      for kind in ("TAG", "FIELD")]
        for offset in range(0, len(statements), 200):
            results = self.influxql(statements[offset:offset + 200])
            for index, result in enumerate(results):
                schema = found[measurements[(offset + index) // 2]]
                for series in result.get("series") or []:
                    for row in series.get("values") or []:
                        if (offset + index) % 2 == 0:
                            schema.tags.append(str(row[0]))
                        else:
                            schema.fields.setdefault(str(row[0]), []).append(str(row[1]))
        for schema in found.values():
            schema.tags.sort()
        return found

    def counts(self, schema: MeasurementSchema, start: int, stop: int, every: int) -> dict[int, dict[str, int]]:
        """Values per field in each window of `every` ns that has any: {window start: {field: count}}."""
        fields = schema.moved
        if not fields:
            return {}
        columns = ", ".join(f"count({influxql_ident(name)}::field) AS {influxql_ident(name)}" for name in fields)
        statement = (f"SELECT {columns} FROM {influxql_ident(schema.name)} WHERE time >= {start} AND time < {stop} "
                     f"GROUP BY time({every}ns) fill(none)")
        [result] = self.influxql([statement])
        found: dict[int, dict[str, int]] = {}
        for series in result.get("series") or []:
            names = series["columns"]
            for row in series.get("values") or []:
                window = int(row[0]) // every * every
                counts = {name: int(value or 0) for name, value in zip(names[1:], row[1:], strict=True)}
                if any(counts.values()):
                    found[window] = counts
        return found

    # ---- Flux ---------------------------------------------------------------------------------------------
    def flux(self, query: str) -> Iterator[Block]:
        """The blocks of a Flux query's annotated CSV answer, streamed."""
        body = {"query": query, "type": "flux", "dialect": {"annotations": _ANNOTATIONS, "header": True}}
        response = self.http.request("POST", f"{self.url}/api/v2/query", "InfluxDB 2 Flux query",
                                     params={"org": self.org}, json=body, stream=True,
                                     # the server would gzip the answer on its own CPU, which its reads need
                                     headers={"Accept": "application/csv", "Accept-Encoding": "identity"})
        try:
            self._check(response, "Flux query")
            yield from read_blocks(response.iter_content(chunk_size=1 << 20), piece_bytes=self.piece_bytes)
        except FluxQueryError as exc:
            raise SourceError(f"InfluxDB 2 query on bucket {self.bucket!r} failed: {exc}") from None
        except FluxCsvError as exc:
            raise SourceError(f"InfluxDB 2 answered a Flux query with unexpected CSV: {exc}") from None
        except requests.RequestException as exc:
            raise SourceError(f"InfluxDB 2 at {self.url}: the answer to a query broke off ({exc})") from None
        finally:
            response.close()

    def window(self, schema: MeasurementSchema, start: int, stop: int) -> Iterator[pa.Table]:
        """The points of [start, stop) as tables of `schema.arrow_schema()`, a piece of the answer at a time."""
        empties = self._empty_strings(schema, start, stop) if schema.strings else {}
        for block in self.flux(pivot_flux(self.bucket, schema.name, start, stop, sorted(schema.skip))):
            table = conform(block, schema, start)
            if empties and table.num_rows:
                table = _put_back_empty_strings(table, schema, empties)
            yield table

    def _empty_strings(self, schema: MeasurementSchema, start: int, stop: int) -> dict[str, pa.Array]:
        """Keys (time and tags) of the points whose string field is "", per field."""
        found: dict[str, list[pa.Array]] = {}
        for block in self.flux(empty_strings_flux(self.bucket, schema.name, start, stop, schema.strings)):
            table = block.table
            times = table.column("_time").cast(pa.int64())
            keys = point_keys(times, [table.column(tag) if tag in table.column_names else None for tag in schema.tags])
            fields = table.column("_field")
            for name in pc.unique(fields).to_pylist():
                found.setdefault(name, []).append(pc.filter(keys, pc.equal(fields, name)))
        return {name: pa.concat_arrays([chunk.combine_chunks() if isinstance(chunk, pa.ChunkedArray) else chunk
                                         for chunk in chunks]) for name, chunks in found.items()}


def conform(block: Block, schema: MeasurementSchema, start: int) -> pa.Table:
    """A block's rows in the measurement's shape: `time` as int64 ns, every tag and moved field (null where the
    series has none), `_measurement` left out. A column the plan did not see is an error naming it."""
    table = block.table
    wanted = schema.arrow_schema()
    known = {"_time", "_measurement", *wanted.names}
    unknown = [name for name in table.column_names if name not in known]
    if unknown:
        raise SourceError(f"measurement {schema.name!r}: the window from {flux_time(start)} has columns the plan did "
                          f"not see ({', '.join(unknown)}): written since the migration started? Run it again")
    arrays = []
    for item in wanted:
        source = "_time" if item.name == "time" else item.name
        if source not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, item.type))
            continue
        column = table.column(source)
        if source == "_time":
            column = column.cast(pa.int64())
        elif column.type != item.type:
            raise SourceError(f"measurement {schema.name!r}: field {item.name!r} is {column.type} in the window from "
                              f"{flux_time(start)} but {item.type} in the plan: its type changed between shards "
                              "since the migration started; run it again")
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=wanted)


def point_keys(times: pa.Array | pa.ChunkedArray, tags: Sequence[pa.Array | pa.ChunkedArray | None]) -> pa.Array:
    """One string per row that identifies its point: time and every tag value (absent tags marked)."""
    parts: list[Any] = [pc.cast(times, pa.string())]
    for values in tags:
        parts.append(_NO_TAG if values is None else pc.fill_null(values, _NO_TAG))
    joined = pc.binary_join_element_wise(*parts, _KEY_SEPARATOR)
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _put_back_empty_strings(table: pa.Table, schema: MeasurementSchema, empties: dict[str, pa.Array]) -> pa.Table:
    keys = point_keys(table.column("time"), [table.column(tag) for tag in schema.tags])
    for name, wanted in empties.items():
        if name not in table.column_names:
            continue
        column = table.column(name)
        hit = pc.and_(pc.is_in(keys, value_set=wanted), pc.is_null(column))
        if pc.any(hit).as_py():
            table = table.set_column(table.column_names.index(name), name, pc.if_else(hit, "", column))
    return table


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    return str(body.get("message") or body) if isinstance(body, dict) else json.dumps(body)[:300]
