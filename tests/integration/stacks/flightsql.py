"""An SQL query over Flight SQL exactly as Grafana's InfluxDB SQL backend sends it (pkg/tsdb/influxdb/fsql/fsql.go,
arrow-go's flightsql.Client): GetFlightInfo with a CommandStatementQuery, then DoGet of its one endpoint's ticket,
with the `database` and `Authorization` gRPC metadata; the answer's schema is the stream's.

pyarrow's Flight client with the command encoded here, rather than Apache Arrow's ADBC Flight SQL driver: that
driver refuses an answer whose stream schema differs from the FlightInfo schema even in nullability only, which
Core 3.6.0 sends for `coalesce(...)` (FlightInfo nullable, stream not null) and which Grafana does not check.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight

__all__ = ["query", "statement_query"]

# google.protobuf.Any wrapping arrow.flight.protocol.sql.CommandStatementQuery (FlightSql.proto: string query = 1).
_COMMAND = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return bytes([number << 3 | 2]) + _varint(len(data)) + data


def statement_query(sql: str) -> bytes:
    return _field(1, _COMMAND) + _field(2, _field(1, sql.encode()))


def query(port: int, token: str, database: str, sql: str, timeout: float = 120) -> pa.Table:
    options = flight.FlightCallOptions(timeout=timeout, headers=[(b"database", database.encode()),
                                                                 (b"authorization", f"Bearer {token}".encode())])
    with flight.FlightClient(f"grpc://127.0.0.1:{port}") as client:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(statement_query(sql)), options)
        if len(info.endpoints) != 1:  # fsql.go refuses any other number
            raise flight.FlightServerError(f"{len(info.endpoints)} endpoints for one query")
        return client.do_get(info.endpoints[0].ticket, options).read_all()
