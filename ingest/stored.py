"""Leave out of a reload what InfluxDB 3 already holds, so loading the same data again writes nothing.

InfluxDB 3 Core writes every write into new Parquet files (one per table per 10 minutes of data time per
snapshot) and never compacts them; a query scans every file in its time range and fails past
`--query-file-limit`. Reloading a year of bird fixes would add ~11,700 files each time. So before a chunk of a
file load is sent, the rows of its measurement and time range are read back from InfluxDB 3 (SQL over HTTP,
Parquet answer), encoded with the chunk's own encoder, and every line that is already stored byte for byte is
left out of the InfluxDB 3 write. What differs (a corrected value, a new field, a new row) is written.
InfluxDB 2 still gets every line: its TSM engine rewrites a point in place and compacts, and a bucket that lost
data (a restore of only one database) is filled again.

Live data (sensor ticks) is new by construction and skips this read; file loads, replays and backfills use it.
A failed read never loses a row: the chunk is then written whole, and the reason logged.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc
import requests

from ingest.arrowio import read_parquet
from ingest.lineprotocol import Encoded, LineEncoder
from ingest.sources.influxdb2 import flux_time

__all__ = ["StoredRows", "sql_ident", "sql_time"]

log = logging.getLogger("ingest.stored")


def sql_ident(name: str) -> str:
    """An SQL quoted identifier (a table or column name)."""
    return '"' + name.replace('"', '""') + '"'


def sql_time(time_ns: int) -> str:
    """An SQL timestamp literal with all nine fractional digits (RFC3339, UTC)."""
    return f"'{flux_time(time_ns)}'"


class StoredRows:
    """Reads back what InfluxDB 3 holds for a chunk, and splits the chunk's lines into new and already stored."""

    def __init__(self, url: str, token: str, database: str, *, timeout: float = 60.0,
                 session: requests.Session | None = None):
        self.url, self.database, self.timeout = url.rstrip("/"), database, timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self._existing: set[str] = set()  # tables seen to exist (`files`, asked every second while a step waits)

    def sql(self, query: str, fmt: str) -> requests.Response:
        """POST an SQL query; RuntimeError with the server's status and text when it fails."""
        return _checked(self.session.post(f"{self.url}/api/v3/query_sql", timeout=self.timeout,
                                          json={"db": self.database, "q": query, "format": fmt}))

    def databases(self) -> set[str]:
        """The server's databases but `_internal`; RuntimeError with the server's status and text when it fails."""
        response = _checked(self.session.get(f"{self.url}/api/v3/configure/database", params={"format": "json"},
                                             timeout=self.timeout))
        return {str(row.get("iox::database")) for row in response.json() if row.get("iox::database") != "_internal"}

    def write(self, lines: str) -> None:
        """A small write of nanosecond line protocol (the audit's marks); RuntimeError when it is refused."""
        _checked(self.session.post(f"{self.url}/api/v3/write_lp", timeout=self.timeout, data=lines,
                                   params={"db": self.database, "precision": "nanosecond"}))

    def columns(self, measurement: str) -> dict[str, str]:
        """The table's columns and their Arrow type names (information_schema reads no data); empty when there
        is no such table."""
        literal = measurement.replace("'", "''")
        rows = self.sql("SELECT column_name, data_type FROM information_schema.columns "
                        f"WHERE table_name = '{literal}' AND table_schema = 'iox'", "json").json()
        return {str(row["column_name"]): str(row["data_type"]) for row in rows}

    def files(self, measurement: str, since_ns: int | None = None) -> int:
        """How many Parquet files InfluxDB 3 lists for the table, of data from `since_ns` on if given (0 before
        the table or the database exists: a `system.parquet_files` scan for a table that does not exist panics
        the query in Core 3.6, parquet_files.rs `.expect("table exists")`)."""
        if measurement not in self._existing:
            try:
                if not self.columns(measurement):
                    return 0
            except RuntimeError as exc:
                if str(exc).startswith("404 "):
                    return 0
                raise
            self._existing.add(measurement)
        literal = measurement.replace("'", "''")
        since = "" if since_ns is None else f" AND min_time >= {int(since_ns)}"
        rows = self.sql(f"SELECT count(*) AS n FROM system.parquet_files WHERE table_name = '{literal}'{since}",
                        "json").json()
        return int(rows[0]["n"]) if rows else 0

    def table(self, measurement: str, schema: pa.Schema, time: str, first: int, last: int) -> pa.Table | None:
        """The stored rows with first <= time <= last in `schema`'s shape (its column order and types; tags come
        back dictionary-encoded, time as a timestamp; a column the server does not have yet is all null); None
        when there is no such table or no row."""
        columns = self.columns(measurement)
        if not columns:
            return None
        wanted = [name for name in schema.names if name in columns and name != time]
        select = ", ".join(["time", *(sql_ident(name) for name in wanted)])
        pieces = self._read(f"SELECT {select} FROM {sql_ident(measurement)}", first, last)
        stored = pa.concat_tables(pieces, promote_options="default") if pieces else None
        if stored is None or stored.num_rows == 0:
            return None
        arrays = []
        for field in schema:
            source = "time" if field.name == time else field.name
            if source in stored.column_names:
                column = stored.column(source)
                if pa.types.is_dictionary(column.type):
                    column = column.cast(column.type.value_type)
                if field.name == time and pa.types.is_integer(field.type):
                    column = column.cast(pa.timestamp("ns")).cast(pa.int64())
                arrays.append(column.cast(field.type))
            else:
                arrays.append(pa.nulls(stored.num_rows, type=field.type))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _read(self, select: str, first: int, last: int) -> list[pa.Table]:
        """The rows of `select` with first <= time <= last, in halves of the range while Core refuses it for its
        file limit: a chunk whose rows span months (a bird's year, a replayed file) meets more Parquet files than
        the stack's limit (2,000), and a refused read would write the chunk whole, every row again."""
        try:
            body = self.sql(f"{select} WHERE time >= {sql_time(first)} AND time <= {sql_time(last)}",
                            "parquet").content
        except RuntimeError as exc:
            if "file limit" not in str(exc).lower() or first >= last:
                raise
            middle = first + (last - first) // 2
            return self._read(select, first, middle) + self._read(select, middle + 1, last)
        return [read_parquet(body)] if body else []

    def stored_lines(self, encoder: LineEncoder, table: pa.Table) -> pa.Array | None:
        """The line protocol of the stored rows in the chunk's time range, encoded as the chunk would be; None
        when nothing can be stored yet (no such table)."""
        times = table.column(encoder.time)
        if pa.types.is_timestamp(times.type):
            times = times.cast(pa.timestamp("ns")).cast(pa.int64())
        first, last = pc.min(times).as_py(), pc.max(times).as_py()
        if first is None:
            return None
        stored = self.table(encoder.measurement, table.schema, encoder.time, first, last)
        if stored is None:
            return None
        encoded = encoder.encode(stored)
        return pa.concat_arrays(encoded.chunks) if encoded.chunks else None

    def split(self, encoder: LineEncoder, table: pa.Table, encoded: Encoded) -> tuple[Encoded, Encoded]:
        """(lines InfluxDB 3 does not hold, lines it already holds) of the chunk; all new when the read fails."""
        nothing = Encoded([], encoded.rejected, encoded.measurement)
        if not encoded.chunks:
            return encoded, nothing
        try:
            stored = self.stored_lines(encoder, table)
        except (RuntimeError, requests.RequestException, pa.ArrowException, OSError) as exc:
            log.warning("%s: could not read what InfluxDB 3 already holds (%s); writing the chunk whole",
                        encoder.measurement, exc)
            return encoded, nothing
        if stored is None or len(stored) == 0:
            return encoded, nothing
        fresh, known = [], []
        for chunk in encoded.chunks:
            held = pc.is_in(chunk, value_set=stored)
            fresh.append(pc.filter(chunk, pc.invert(held)))
            known.append(pc.filter(chunk, held))
        return (Encoded([c for c in fresh if len(c)], encoded.rejected, encoded.measurement),
                Encoded([c for c in known if len(c)], encoded.rejected, encoded.measurement))

    def close(self) -> None:
        self.session.close()


def _checked(response: requests.Response) -> requests.Response:
    if not response.ok:
        raise RuntimeError(f"{response.status_code} {response.text.strip()[:300]}")
    return response
