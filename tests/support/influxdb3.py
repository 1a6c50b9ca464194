"""A loopback stand-in for InfluxDB 3 Core's HTTP API, answering as the server's source does.

Source read: influxdata/influxdb tag v3.10.1 (/opt/src/influxdb-v3.10.1), mainly influxdb3_server/src/http.rs;
each behaviour names the file it mirrors, and differences of v3.6.0 (which integration tests also run) are
noted where they matter. Where InfluxData's OpenAPI description (../shared/specs/influxdb3-core-openapi.yaml,
which tests/support/openapi.py validates our requests against) says otherwise, the source wins and the comment
says "spec:".

Behind it is the local engine (tests/engine): writes land in real tables with Core's catalog rules and limits,
SQL runs on DataFusion, Parquet files are counted against `--query-file-limit` (call `engine.snapshot()` to
persist what is buffered), and request triggers run the real plugins of a plugin directory.

Use an `InfluxDB3` as a RecordingServer responder (`with serve(InfluxDB3(plugin_dir=...)) as server:`), or the
`influxdb3_server` fixture (`from tests.support.influxdb3 import influxdb3_server`), which starts one on loopback
over the repository's plugins:

    def test_x(influxdb3_server):
        server, core = influxdb3_server          # RecordingServer, InfluxDB3
        requests.post(f"{server.url}/api/v3/configure/database", json={"db": "x"},
                      headers={"Authorization": f"Bearer {core.token}"})

Tests script outages and faults with `core.script(path_prefix, reply, times=1)` (a Reply, or None to drop the
connection), read what plugins did from `core.runs` and what pip was asked from `core.engine.packages.pip_runs`.
Endpoints of the server that are not modelled answer 501 with "not modelled by the stand-in", never a made-up
answer. Also not modelled: CORS preflights (the recorder's handler has no OPTIONS; the server answers 204 before
authentication), the CSV and pretty query formats (501), gzip bodies that fail to inflate
(the recorder inflates before the stand-in sees them), the exact text of line-protocol parse errors (the
repository's strict parser words them, and refuses a few lines the server accepts: see
tests/support/lineprotocol.py) and serde's error positions beyond one-line JSON bodies.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import io
import json
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from tests.engine import PLUGIN_DIR, LocalEngine, PackageEnvironment, PluginRun
from tests.engine.humantime import DurationError, parse_duration_ns
from tests.engine.loader import PluginLoadError, resolve_plugin
from tests.engine.store import (
    INTERNAL_DATABASE,
    CatalogError,
    Database,
    InvalidDatabaseName,
    QueryError,
    WriteError,
    json_body,
    validate_db_name,
    validate_plugin_db_name,
)
from tests.engine.timebounds import scan_filters
from tests.support.recorder import Recorded, RecordingServer, Reply

__all__ = ["InfluxDB3", "Trigger", "influxdb3_server", "serve"]

VERSION = "3.10.1"
DEFAULT_TOKEN = "apiv3_" + "S" * 86
# influxdb3/src/commands/serve.rs: --max-http-request-size default 10 MiB
MAX_REQUEST_BYTES = 10_485_760
# influxdb3_commands/src/helpers.rs DisableAuthzList: resource -> paths
_AUTHZ_PATHS = {"health": ("/health", "/api/v1/health"), "ping": ("/ping",), "metrics": ("/metrics",),
                "ready": ("/ready",), "pprof": ("/debug/pprof/heap",)}
# influxdb3_types/src/http.rs QueryFormat::as_content_type
_FORMATS = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv", "pretty": "text/plain; charset=utf-8",
            "json": "application/json", "json_lines": "application/jsonl", "jsonl": "application/jsonl"}
_FORMAT_NAMES = ("parquet", "csv", "pretty", "json", "json_lines")
_PRECISIONS = {"auto": "auto", "second": "second", "s": "second", "millisecond": "millisecond", "ms": "millisecond",
               "microsecond": "microsecond", "us": "microsecond", "u": "microsecond", "nanosecond": "nanosecond",
               "ns": "nanosecond", "n": "nanosecond"}
_FIELD_TYPES = {"utf8": "string", "int64": "int", "uint64": "uint", "float64": "float", "bool": "bool"}
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Http(Exception):
    """An answer decided while handling a request (raised to unwind)."""

    def __init__(self, status: int, body: bytes | str | dict | None = None, *, error: bool = True):
        super().__init__(status)
        self.status, self.body, self.error = status, body, error


def _text(status: int, message: str) -> _Http:
    """`ResponseBuilder::new().status(..).body(err.to_string())`: plain text, no Content-Type."""
    return _Http(status, message)


def _error_json(status: int, message: str, data: Any = None) -> _Http:
    """http.rs `ErrorMessage` serialized with serde_json (compact; `data` left out when None), no Content-Type."""
    payload: dict[str, Any] = {"error": message}
    if data is not None:
        payload["data"] = data
    return _Http(status, json.dumps(payload, separators=(",", ":"), ensure_ascii=False))


def _catalog_error(exc: CatalogError) -> _Http:
    """http.rs `impl IntoResponse for CatalogError`."""
    if exc.kind in ("NotFound", "DatabaseNotFound", "TableNotFound"):
        return _text(404, str(exc))
    if exc.kind in ("AlreadyExists", "AlreadyDeleted"):
        return _text(409, str(exc))
    if exc.kind in ("InvalidColumnType", "InvalidConfiguration", "ReservedColumn", "DuplicateColumn"):
        return _text(400, str(exc))
    if exc.kind in ("TooManyColumns", "TooManyTables", "TooManyDbs", "TooManyTagColumns", "TooManyFields"):
        return _error_json(422, str(exc))
    return _text(500, str(exc))


# ---- serde, as far as the error texts go -------------------------------------------------------------------------
def _position(raw: str, index: int) -> str:
    line = raw.count("\n", 0, index) + 1
    column = index - (raw.rfind("\n", 0, index) + 1)
    return f"line {line} column {column}"


def _describe(value: Any) -> str:
    """serde's `Unexpected` Display."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f"string {json.dumps(value)}"
    if isinstance(value, list):
        return "sequence"
    return "map"


class _Json:
    """serde_json::from_slice into a request struct: the error texts of missing fields, wrong types and unknown
    enum variants (`serde json error: ...` with a 400, http.rs `Error::SerdeJson`)."""

    def __init__(self, raw: bytes):
        self.raw = raw.decode("utf-8", errors="replace")
        try:
            self.value = json.loads(self.raw) if self.raw.strip() else None
        except json.JSONDecodeError as exc:
            # serde_json's wording for the common syntax errors (Python's otherwise)
            words = {"Expecting value": "expected value", "Extra data": "trailing characters",
                     "Expecting property name enclosed in double quotes": "key must be a string",
                     "Expecting ':' delimiter": "expected `:`", "Expecting ',' delimiter": "expected `,` or `}`"}
            message = words.get(exc.msg, exc.msg)
            raise _text(400, f"serde json error: {message} at {_position(self.raw, exc.pos + 1)}") from None
        if not self.raw.strip():
            raise _text(400, "serde json error: EOF while parsing a value at line 1 column 0")

    def _end(self) -> str:
        return _position(self.raw, len(self.raw.rstrip()))

    def _value_end(self, key: str) -> str:
        match = re.search(r'"' + re.escape(key) + r'"\s*:\s*', self.raw)
        if match is None:
            return self._end()
        try:
            _, end = json.JSONDecoder().raw_decode(self.raw, match.end())
        except json.JSONDecodeError:
            return self._end()
        return _position(self.raw, end)

    def struct(self, value: Any, name: str) -> dict:
        if not isinstance(value, dict):
            raise _text(400, f"serde json error: invalid type: {_describe(value)}, expected struct {name} at "
                             f"{self._end()}")
        return value

    def field(self, obj: dict, key: str, kind: str, *, optional: bool = False, default: Any = None) -> Any:
        if key not in obj or (optional and obj[key] is None):
            if optional:
                return default
            raise _text(400, f"serde json error: missing field `{key}` at {self._end()}")
        value = obj[key]
        expected = {"str": "a string", "bool": "a boolean", "list": "a sequence", "map": "a map"}[kind]
        ok = {"str": isinstance(value, str), "bool": isinstance(value, bool), "list": isinstance(value, list),
              "map": isinstance(value, dict)}[kind]
        if not ok:
            raise _text(400, f"serde json error: invalid type: {_describe(value)}, expected {expected} at "
                             f"{self._value_end(key)}")
        return value

    def strings(self, obj: dict, key: str) -> list[str]:
        values = self.field(obj, key, "list")
        for item in values:
            if not isinstance(item, str):
                raise _text(400, f"serde json error: invalid type: {_describe(item)}, expected a string at "
                                 f"{self._value_end(key)}")
        return values

    def string_map(self, obj: dict, key: str) -> dict[str, str] | None:
        values = self.field(obj, key, "map", optional=True)
        if values is None:
            return None
        for item in values.values():
            if not isinstance(item, str):
                raise _text(400, f"serde json error: invalid type: {_describe(item)}, expected a string at "
                                 f"{self._value_end(key)}")
        return dict(values)

    def variant(self, obj: dict, key: str, names: tuple[str, ...]) -> str:
        value = self.field(obj, key, "str")
        if value not in names:
            expected = ", ".join(f"`{name}`" for name in names)
            raise _text(400, f"serde json error: unknown variant `{value}`, expected one of {expected} at "
                             f"{self._value_end(key)}")
        return value


def _query_struct(request: Recorded) -> dict[str, str]:
    """serde_urlencoded (last value of each key)."""
    return {key: values[-1] for key, values in request.query.items()}


def _url_bool(params: Mapping[str, str], key: str, default: bool | None) -> bool | None:
    if key not in params:
        return default
    if params[key] not in ("true", "false"):
        raise _text(400, "serde error: provided string was not `true` or `false`")
    return params[key] == "true"


def _url_required(params: Mapping[str, str], key: str) -> str:
    if key not in params:
        raise _text(400, f"serde error: missing field `{key}`")
    return params[key]


def _check_db_name(name: str) -> None:
    """http.rs `validate_db_name` as create database, create table and write_lp answer it: 400 JSON."""
    try:
        validate_db_name(name)
    except InvalidDatabaseName as exc:
        raise _error_json(400, str(exc)) from None


def _visible_ascii(value: str) -> bool:
    """http's `HeaderValue::to_str`: visible ASCII and tab only."""
    return all(32 <= ord(char) < 127 or char == "\t" for char in value)


def _is_json_content_type(value: str | None) -> bool:
    """http.rs `json_content_type`: a parseable mime with type application and subtype json or suffix +json."""
    if not value:
        return False
    essence = value.split(";", 1)[0].strip().lower()
    kind, _, subtype = essence.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


# ---- triggers --------------------------------------------------------------------------------------------------------
@dataclass
class Trigger:
    """A processing engine trigger of the catalog (catalog/versions/v3/schema/trigger.rs)."""

    database: str
    name: str
    plugin_filename: str
    kind: str  # table | all_tables | cron | every | request
    value: str
    run_async: bool
    error_behavior: str
    arguments: dict[str, str] | None
    disabled: bool

    def specification_json(self) -> str:
        """serde_json of TriggerSpecificationDefinition (system.processing_engine_triggers)."""
        if self.kind == "table":
            return json.dumps({"single_table_wal_write": {"table_name": self.value}}, separators=(",", ":"))
        if self.kind == "all_tables":
            return '"all_tables_wal_write"'
        if self.kind == "cron":
            return json.dumps({"schedule": {"schedule": self.value}}, separators=(",", ":"))
        if self.kind == "request":
            return json.dumps({"request_path": {"path": self.value}}, separators=(",", ":"))
        nanos = parse_duration_ns(self.value)
        return json.dumps({"every": {"duration": {"secs": nanos // 10**9, "nanos": nanos % 10**9}}},
                          separators=(",", ":"))


_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,\-?LW#]+")


def _parse_specification(text: str) -> tuple[str, str]:
    """catalog/versions/v3/schema/trigger.rs `TriggerSpecificationDefinition::from_string_rep`. Cron schedules are
    checked for shape only (6 or 7 fields), not with the `cron` crate."""
    spec = text.strip()

    def fail(context: str | None = None) -> CatalogError:
        return CatalogError("TriggerSpecificationParseError",
                            f"failed to parse trigger from {spec}" + (f": {context}" if context else ""))

    if spec.startswith("table:"):
        table = spec.removeprefix("table:").strip()
        if not table:
            raise fail("table name is empty")
        return "table", table
    if spec == "all_tables":
        return "all_tables", ""
    if spec.startswith("cron:"):
        schedule = spec.removeprefix("cron:").strip()
        fields = schedule.split()
        if len(fields) not in (6, 7) or not all(_CRON_FIELD.fullmatch(item) for item in fields):
            raise fail()
        return "cron", schedule
    if spec.startswith("every:"):
        duration = spec.removeprefix("every:").strip()
        try:
            nanos = parse_duration_ns(duration)
        except DurationError:
            raise fail("couldn't parse to duration") from None
        if nanos > parse_duration_ns("1 year"):
            raise fail("don't support every schedules of over 1 year")
        return "every", duration
    if spec.startswith("request:"):
        path = spec.removeprefix("request:").strip()
        if not path:
            raise fail()
        return "request", path
    raise fail("expect one of the following forms: 'table:<TABLE_NAME>', 'all_tables', 'cron:<CRON_EXPRESSION>', "
               "'every:<DURATION>', or 'request:<PATH>'")


# ---- the server ------------------------------------------------------------------------------------------------------
class InfluxDB3:
    """One InfluxDB 3 Core server: `influxdb3 serve` with an admin token, a plugin directory and a venv.

    `disable_authz` is `--disable-authz` (our stack: health,ping); `without_auth` is `--without-auth`.
    `installable` is what pip could install ({name: version or versions}); see tests/engine/packages.py."""

    def __init__(self, engine: LocalEngine | None = None, *, token: str = DEFAULT_TOKEN,
                 plugin_dir: Path | None = None, disable_authz: tuple[str, ...] = ("health", "ping"),
                 without_auth: bool = False, installable: Mapping[str, Any] | None = None,
                 max_request_bytes: int = MAX_REQUEST_BYTES, version: str = VERSION, plugin_repo: str | None = None):
        if engine is None:
            engine = LocalEngine(plugin_dir=plugin_dir or PLUGIN_DIR, packages=PackageEnvironment(installable))
        elif engine.packages is None:
            engine.packages = PackageEnvironment(installable)
        self.engine = engine
        self.token = token
        self.without_auth = without_auth
        self.open_paths = {path for resource in disable_authz for path in _AUTHZ_PATHS[resource]}
        self.max_request_bytes = max_request_bytes
        self.version = version
        self.plugin_repo = plugin_repo  # --plugin-repo
        self.downloads: list[str] = []  # every URL a gh: plugin was fetched from
        self.process_id = str(uuid.uuid4())
        self.triggers: dict[tuple[str, str], Trigger] = {}
        self.request_paths: dict[str, tuple[str, str]] = {}  # lib.rs PluginChannels.request_paths
        self.runs: list[PluginRun] = []
        self.scripted: list[tuple[str, Reply | None]] = []
        # One request at a time: the engine is not thread-safe. A plugin that called this server back over HTTP
        # would wait forever (the real server serves it concurrently); our plugins do not.
        self.lock = threading.RLock()

    # ---- scripting -------------------------------------------------------------------------------------------------
    def script(self, path_prefix: str, reply: Reply | None, times: int = 1) -> None:
        """Answer the next `times` requests whose path starts with `path_prefix` with `reply` (None: drop the
        connection, as a server that went away)."""
        with self.lock:
            self.scripted.extend([(path_prefix, reply)] * times)

    @property
    def packages(self) -> PackageEnvironment:
        assert self.engine.packages is not None
        return self.engine.packages

    # ---- dispatch --------------------------------------------------------------------------------------------------
    def __call__(self, request: Recorded) -> Reply:
        with self.lock:
            for index, (prefix, reply) in enumerate(self.scripted):
                if request.path.startswith(prefix):
                    del self.scripted[index]
                    return reply if reply is not None else Reply(close_connection=True)
            try:
                status, body, headers, ok = self._route(request)
            except _Http as answer:
                status, body, headers, ok = answer.status, answer.body, {}, not answer.error
            except _Drop:
                return Reply(close_connection=True)
        return self._reply(status, body, headers, ok)

    def _reply(self, status: int, body: bytes | str | dict | None, headers: dict[str, str], ok: bool) -> Reply:
        payload = body.encode("utf-8") if isinstance(body, str) else body
        headers = dict(headers)
        if ok:
            # http.rs `route_request`: only successful handlers get the CORS header
            headers["access-control-allow-origin"] = "*"
        headers["cluster-uuid"] = self.engine.catalog.uuid
        return Reply(status, payload if payload else None, headers)

    def _route(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs (v3.10.1) `perform_routing`."""
        method, path = request.method, request.path
        if method == "OPTIONS":
            return 204, None, {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "*",
                               "Access-Control-Allow-Headers": "*", "Access-Control-Max-Age": "86400"}, True
        if self.without_auth and path.startswith("/api/v3/configure/token"):
            raise _Http(405, "endpoint disabled, started without auth")
        if path != "/api/v3/configure/token/admin" and path not in self.open_paths:
            self._authenticate(request)
        routes = {
            ("POST", "/api/v3/write_lp"): self._write_lp,
            ("GET", "/api/v3/query_sql"): self._query_sql, ("POST", "/api/v3/query_sql"): self._query_sql,
            ("GET", "/health"): self._health, ("GET", "/api/v1/health"): self._health,
            ("GET", "/ping"): self._ping, ("POST", "/ping"): self._ping,
            ("POST", "/api/v3/configure/processing_engine_trigger/disable"): self._disable_trigger,
            ("POST", "/api/v3/configure/processing_engine_trigger/enable"): self._enable_trigger,
            ("POST", "/api/v3/configure/processing_engine_trigger"): self._create_trigger,
            ("DELETE", "/api/v3/configure/processing_engine_trigger"): self._delete_trigger,
            ("POST", "/api/v3/configure/plugin_environment/install_packages"): self._install_packages,
            ("GET", "/api/v3/configure/database"): self._show_databases,
            ("POST", "/api/v3/configure/database"): self._create_database,
            ("DELETE", "/api/v3/configure/database"): self._delete_database,
            ("PUT", "/api/v3/configure/database"): self._update_database,
            ("POST", "/api/v3/configure/table"): self._create_table,
        }
        if method in ("GET", "POST") and path.startswith("/api/v3/engine/"):
            return self._engine_request(request, path.removeprefix("/api/v3/engine/"))
        handler = routes.get((method, path))
        if handler is not None:
            return handler(request)
        unmodelled = {
            ("POST", "/write"), ("POST", "/api/v2/write"), ("GET", "/api/v3/query_influxql"),
            ("POST", "/api/v3/query_influxql"), ("GET", "/query"), ("POST", "/query"), ("GET", "/metrics"),
            ("DELETE", "/api/v3/configure/table"),
            ("POST", "/api/v3/configure/plugin_environment/install_requirements"),
            ("POST", "/api/v3/plugin_test/wal"), ("POST", "/api/v3/plugin_test/schedule"),
            ("POST", "/api/v3/configure/distinct_cache"), ("DELETE", "/api/v3/configure/distinct_cache"),
            ("POST", "/api/v3/configure/last_cache"), ("DELETE", "/api/v3/configure/last_cache"),
            ("POST", "/api/v3/configure/database/retention_period"),
            ("DELETE", "/api/v3/configure/database/retention_period"),
            ("POST", "/api/v3/plugins/files"), ("PUT", "/api/v3/plugins/files"), ("PUT", "/api/v3/plugins/directory"),
        }
        if (method, path) in unmodelled or path.startswith("/api/v3/configure/token"):
            raise _Http(501, f"{method} {path}: not modelled by the stand-in (tests/support/influxdb3.py)")
        # RoutingError::NotFound
        raise _Http(404, "Not found")

    # ---- auth --------------------------------------------------------------------------------------------------------
    def _authenticate(self, request: Recorded) -> None:
        """http.rs `authenticate_request` and `validate_auth_header`: Bearer, Token or Basic (the token is the
        password); the header is taken off the request. 401/400 bodies are `{"error": "..."}` written by hand."""
        header = request.header("authorization")
        token: str | None = None
        if header is not None:
            if not _visible_ascii(header):
                raise _Http(500, '{"error": "to str error: failed to convert header to a str"}')
            parts = header.split(" ")
            malformed = _Http(400, '{"error": "Authorization header was malformed, the request was not in the form '
                                   "of 'Authorization: <auth-scheme> <token>', supported auth-schemes are Bearer, "
                                   'Token and Basic"}')
            if len(parts) != 2 or parts[0] not in ("Bearer", "Token", "Basic"):
                raise malformed
            token = parts[1]
            if parts[0] == "Basic":
                try:
                    decoded = base64.b64decode(parts[1], validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    raise malformed from None
                user, colon, password = decoded.rpartition(":")
                if not colon or ":" in user:
                    raise malformed
                token = password
        if self.without_auth:
            return
        if token != self.token:
            raise _Http(401, '{"error": "the request was not authenticated"}')

    # ---- bodies ------------------------------------------------------------------------------------------------------
    def _read_body(self, request: Recorded) -> bytes:
        """http.rs `read_body`: Content-Encoding identity or gzip (exactly), the size limit."""
        encoding = request.header("content-encoding")
        raw = request.raw_body
        if len(raw) > self.max_request_bytes:
            raise _text(413, f"max request size ({self.max_request_bytes} bytes) exceeded")
        if encoding in (None, "identity"):
            return raw
        if encoding != "gzip":
            raise _text(400, f"unacceptable content-encoding: {encoding}")
        try:
            body = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise _text(400, f"error decoding gzip stream: {exc}") from None
        if len(body) > self.max_request_bytes:
            raise _text(413, f"max request size ({self.max_request_bytes} bytes) exceeded")
        return body

    def _read_json(self, request: Recorded) -> _Json:
        """http.rs `read_body_json`: Content-Type must be JSON (415), then serde_json."""
        if not _is_json_content_type(request.header("content-type")):
            raise _text(415, "unacceptable content-type, expected: application/json")
        return _Json(self._read_body(request))

    # ---- health ------------------------------------------------------------------------------------------------------
    def _health(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        # http.rs `health`; spec: 401 without a token, unless --disable-authz health
        return 200, "OK", {"Content-Type": "text/plain; charset=utf-8"}, True

    def _ping(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        request_id = str(uuid.uuid4())
        body = json.dumps({"product_name": "InfluxDB 3 Core", "version": self.version, "revision": "0000000",
                           "process_id": self.process_id}, separators=(",", ":"))
        return 200, body, {"Content-Type": "application/json", "Request-Id": request_id, "X-Influxdb-Build": "Core",
                           "X-Influxdb-Version": self.version, "X-Request-Id": request_id}, True

    # ---- databases and tables ----------------------------------------------------------------------------------------
    def _show_databases(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `show_databases` (ShowDatabasesRequest: `format` is required, `show_deleted` optional) and
        query_executor `show_databases`: every database incl. `_internal`, sorted by (deleted, name). spec: no 404."""
        params = _query_struct(request)
        fmt = self._format_param(_url_required(params, "format"))
        show_deleted = bool(_url_bool(params, "show_deleted", False))
        databases = sorted(self.engine.all_databases(include_deleted=show_deleted),
                           key=lambda db: (db.deleted, db.name.encode("utf-8")))
        names = pa.array([db.name for db in databases], pa.utf8())
        columns = {"iox::database": names}
        if show_deleted:
            columns["deleted"] = pa.array([db.deleted for db in databases], pa.bool_())
        batch = pa.RecordBatch.from_pydict(columns)
        return 200, self._serialize([batch], fmt), {"Content-Type": _FORMATS[fmt]}, True

    def _create_database(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `create_database`: JSON {db, retention_period?}; `validate_db_name` (400 JSON), 409 for an
        existing name (prepare runs before the limit check), 422 at Core's 5-database limit; 200, empty body."""
        reader = self._read_json(request)
        obj = reader.struct(reader.value, "CreateDatabaseRequest")
        name = reader.field(obj, "db", "str")
        retention = reader.field(obj, "retention_period", "str", optional=True)
        if retention is not None:
            try:
                parse_duration_ns(retention)
            except DurationError:
                raise _text(400, f"serde json error: invalid value: string {json.dumps(retention)}, expected a "
                                 f"duration at {reader._value_end('retention_period')}") from None
        _check_db_name(name)
        try:
            self.engine.create_database(name, retention_period=retention, exist_ok=False)
        except CatalogError as exc:
            raise _catalog_error(exc) from None
        return 200, None, {}, True

    def _update_database(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `update_database` (v3.6.0): JSON {db, retention_period?} (humantime); with a period the
        catalog's `set_retention_period_for_database`, without one `clear_retention_period_for_database`; both
        NotFound (404) for an unknown database; 200, empty body."""
        reader = self._read_json(request)
        obj = reader.struct(reader.value, "UpdateDatabaseRequest")
        name = reader.field(obj, "db", "str")
        retention = reader.field(obj, "retention_period", "str", optional=True)
        retention_ns = None
        if retention is not None:
            try:
                retention_ns = parse_duration_ns(retention)
            except DurationError:
                raise _text(400, f"serde json error: invalid value: string {json.dumps(retention)}, expected a "
                                 f"duration at {reader._value_end('retention_period')}") from None
        database = self.engine.live_database(name)
        if database is None:
            raise _catalog_error(CatalogError("NotFound", "the requested resource was not found"))
        database.retention_ns = retention_ns
        return 200, None, {}, True

    def _delete_database(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `delete_database` (query string: db, hard_delete_at?): a soft delete that renames the database;
        404 for an unknown name, 500 for `_internal`. spec: `data_only`/`remove_tables` are not read by v3.10.1."""
        params = _query_struct(request)
        name = _url_required(params, "db")
        with_triggers = [key for key in self.triggers if key[0] == name]
        try:
            self.engine.delete_database(name)
        except CatalogError as exc:
            raise _catalog_error(exc) from None
        for key in with_triggers:  # lib.rs: DatabaseSoftDeleted stops the database's triggers
            self._stop(self.triggers.pop(key))
        return 200, None, {}, True

    def _create_table(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `create_table` and catalog.rs `create_table_opts`: the database is created when missing (spec:
        404), 409 for an existing table, 422 at the table or column limit."""
        reader = self._read_json(request)
        obj = reader.struct(reader.value, "CreateTableRequest")
        name = reader.field(obj, "db", "str")
        table = reader.field(obj, "table", "str")
        tags = reader.strings(obj, "tags")
        fields = []
        for item in reader.field(obj, "fields", "list"):
            spec = reader.struct(item, "CreateTableField")
            fields.append((reader.field(spec, "name", "str"),
                           _FIELD_TYPES[reader.variant(spec, "type", tuple(_FIELD_TYPES))]))
        _check_db_name(name)
        try:
            self.engine.database(name).create_table(table, tags, fields)
        except CatalogError as exc:
            raise _catalog_error(exc) from None
        return 200, None, {}, True

    # ---- writes ------------------------------------------------------------------------------------------------------
    def _write_lp(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `write_lp` / `write_lp_inner` and write_buffer/mod.rs `write_lp`: 204; invalid lines 400 (422 when
        one hit a catalog limit) `{"error": "partial write of line protocol occurred", "data": [...]}` with the good
        lines written; without accept_partial one line fails the write: 400 `line protocol parsing error` with ONE
        error object. spec: `precision` is a free string; the source takes serde names only (auto, second/s,
        millisecond/ms, microsecond/us/u, nanosecond/ns/n); 403 does not happen with Core's admin token."""
        if not request.query:
            raise _text(400, "missing query parameter 'db'")
        params = _query_struct(request)
        name = _url_required(params, "db")
        precision = params.get("precision", "auto")
        if precision not in _PRECISIONS:
            raise _text(400, f"serde error: unknown variant `{precision}`, expected one of `auto`, `second`, "
                             "`millisecond`, `microsecond`, `nanosecond`")
        accept_partial = _url_bool(params, "accept_partial", True)
        _url_bool(params, "no_sync", False)
        _check_db_name(name)
        try:
            validate_plugin_db_name(name)
        except InvalidDatabaseName as exc:
            raise _text(400, f"error validating database name: {exc}") from None
        body = self._read_body(request)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _text(400, f"body content is not valid utf8: {exc}") from None
        try:
            result = self.engine.write(name, text, accept_partial=bool(accept_partial),
                                       precision=_PRECISIONS[precision])
        except CatalogError as exc:  # TooManyDbs from the transaction's begin
            raise _catalog_error(exc) from None
        except WriteError as exc:
            if exc.line_error is not None:
                # WriteBufferError::ParseError: one error object, not a list
                raise _error_json(400, "line protocol parsing error", exc.line_error.as_json()) from None
            raise _text(400, str(exc)) from None
        if result.line_errors:
            limit_hit = any(error.error_message.startswith(("Update to schema would exceed number of",
                                                            "Adding a new database would exceed limit of"))
                            for error in result.line_errors)
            raise _error_json(422 if limit_hit else 400, "partial write of line protocol occurred",
                              [error.as_json() for error in result.line_errors])
        return 204, None, {}, True

    # ---- queries -----------------------------------------------------------------------------------------------------
    def _format_param(self, value: str, prefix: str = "serde error") -> str:
        if value not in _FORMATS:
            raise _text(400, f"{prefix}: unknown variant `{value}`, expected one of "
                             + ", ".join(f"`{name}`" for name in _FORMAT_NAMES))
        return "json_lines" if value == "jsonl" else value

    def _accept_format(self, request: Recorded) -> str:
        """influxdb3_types QueryFormat::try_from_headers (checked even when `format` is given)."""
        accept = request.header("accept")
        exact = {"application/vnd.apache.parquet": "parquet", "text/csv": "csv", "text/plain": "pretty",
                 "application/json": "json", "*/*": "json"}
        if accept is None:
            return "json"
        if accept in exact:
            return exact[accept]
        if "text/html" in accept or "*/*" in accept:
            return "json"
        raise _text(400, f"invalid mime type ({accept})")

    def _serialize(self, batches: list[pa.RecordBatch], fmt: str) -> str | bytes:
        if fmt == "json":
            return json_body(batches)
        if fmt == "json_lines":
            return json_body(batches, lines=True)
        if fmt == "parquet":
            # http.rs `record_batch_stream_to_body`, QueryFormat::Parquet: one Arrow writer over the result's
            # schema (tags stay Dictionary(Int32, Utf8), time Timestamp(ns)); a stream without any batch is an
            # empty body.
            if not batches:
                return b""
            sink = io.BytesIO()
            with pq.ParquetWriter(sink, batches[0].schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
            return sink.getvalue()
        raise _Http(501, f"query format {fmt}: not modelled by the stand-in")

    def _query_sql(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `query_sql` / `extract_query_request`: GET reads db, q, format, params (JSON text) from the
        query string, POST a JSON body (no Content-Type check); then the query executor: 404 JSON for an unknown
        database, DataFusion planning errors with `datafusion_error_status_code` as plain text (the file limit
        is an External error: 500)."""
        header_format = self._accept_format(request)
        if request.method == "GET":
            if not request.query:
                raise _text(400, "missing query parameters 'db' and 'q'")
            params = _query_struct(request)
            database, sql = _url_required(params, "db"), _url_required(params, "q")
            fmt = self._format_param(params["format"]) if "format" in params else header_format
            statement_params = None
            if "params" in params:
                try:
                    statement_params = json.loads(params["params"])
                except json.JSONDecodeError as exc:
                    raise _text(400, f"serde json error: {exc.msg.lower()}") from None
        else:
            reader = _Json(self._read_body(request))
            obj = reader.struct(reader.value, "QueryRequest")
            database, sql = reader.field(obj, "db", "str"), reader.field(obj, "q", "str")
            given = reader.field(obj, "format", "str", optional=True)
            fmt = self._format_param(given, "serde json error") if given is not None else header_format
            statement_params = reader.field(obj, "params", "map", optional=True)
        db = self.engine.live_database(database)
        if db is None:
            raise _error_json(404, f"query error: database not found: {database}")
        self._refresh_system_tables(db)
        self._check_system_panics(db, sql)
        try:
            batches = db.execute(sql, statement_params, typed=True)
        except QueryError as exc:
            if exc.stage == "execution":
                raise _Drop() from None  # the 200 head is out when the body stream fails: the connection drops
            raise _text(exc.status, exc.datafusion or str(exc)) from None
        return 200, self._serialize(batches, fmt), {"Content-Type": _FORMATS[fmt]}, True

    def _refresh_system_tables(self, db: Database) -> None:
        """influxdb3_system_tables: processing_engine_triggers and processing_engine_trigger_arguments
        (python_call.rs) and parquet_files (parquet_files.rs) of one database, as the query sees them."""
        database = db.name
        triggers = [trigger for (name, _), trigger in self.triggers.items() if name == database]
        db.set_system_table("processing_engine_triggers", pa.table({
            "trigger_name": pa.array([t.name for t in triggers], pa.utf8()),
            "plugin_filename": pa.array([t.plugin_filename for t in triggers], pa.utf8()),
            "trigger_specification": pa.array([t.specification_json() for t in triggers], pa.utf8()),
            "disabled": pa.array([t.disabled for t in triggers], pa.bool_()),
            "error_behavior": pa.array([t.error_behavior for t in triggers], pa.utf8()),
        }))
        # python_call.rs ProcessingEngineTriggerArgumentsTable: one row per trigger argument.
        arguments = [(t.name, key, value) for t in triggers for key, value in sorted((t.arguments or {}).items())]
        db.set_system_table("processing_engine_trigger_arguments", pa.table({
            "trigger_name": pa.array([row[0] for row in arguments], pa.utf8()),
            "argument_key": pa.array([row[1] for row in arguments], pa.utf8()),
            "argument_value": pa.array([row[2] for row in arguments], pa.utf8()),
        }))
        self.engine.refresh_parquet_files_table(db)
        if database == INTERNAL_DATABASE:
            # influxdb3_system_tables/src/tokens.rs (v3.10.1, the same in v3.6.0), in `_internal` only: the admin
            # token from --admin-token-file (named _admin by influxdb3-prepare); `hash` is the first 9 hex digits of
            # the SHA-512 the catalog keeps (seen the same on a real v3.6.0), permissions always "*:*:*" in Core.
            # influxdb3_system_tables/src/databases.rs (v3.6.0), in `_internal` only.
            databases = self.engine.all_databases(include_deleted=True)
            db.set_system_table("databases", pa.table({
                "database_name": pa.array([item.name for item in databases], pa.string_view()),
                "retention_period_ns": pa.array([item.retention_ns for item in databases], pa.uint64()),
                "deleted": pa.array([item.deleted for item in databases], pa.bool_()),
                "hard_deletion_time": pa.array([None] * len(databases), pa.timestamp("s", tz="UTC"))}))
            db.set_system_table("tokens", pa.table({
                "token_id": pa.array([0], pa.uint64()), "name": pa.array(["_admin"], pa.utf8()),
                "hash": pa.array([hashlib.sha512(self.token.encode()).hexdigest()[:9]], pa.utf8()),
                "created_at": pa.array([0], pa.timestamp("ms")), "description": pa.array([None], pa.utf8()),
                "created_by_token_id": pa.array([None], pa.uint64()),
                "updated_at": pa.array([None], pa.timestamp("ms")),
                "updated_by_token_id": pa.array([None], pa.uint64()), "expiry": pa.array([None], pa.timestamp("ms")),
                "permissions": pa.array(["*:*:*"], pa.utf8())}))

    def _check_system_panics(self, db: Any, sql: str) -> None:
        """parquet_files.rs: with `table_name = '<name>'` pushed down, the scan looks the table up with
        `.expect("table exists")`: a table that does not exist panics the query (the connection drops)."""
        if "parquet_files" not in sql:
            return
        try:
            scans = scan_filters(db.logical_plan(sql))
        except Exception:
            return
        for schema, table, names in scans:
            if schema == "system" and table == "parquet_files" and any(name not in db.tables for name in names):
                raise _Drop()

    # ---- packages ----------------------------------------------------------------------------------------------------
    def _install_packages(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `install_plugin_environment_packages` (query string if there is one, else a JSON body) and
        environment.rs `PipManager::install_packages`: `python -m pip install ...`, exit status never read: 200
        with an empty body whatever pip did (spec: "the packages are installed")."""
        if request.query:
            params = _query_struct(request)
            packages = [_url_required(params, "packages")]
        else:
            reader = self._read_json(request)
            packages = reader.strings(reader.struct(reader.value, "ProcessingEngineInstallPackagesRequest"),
                                      "packages")
        self.packages.pip_install(list(packages))
        return 200, None, {}, True

    # ---- triggers ----------------------------------------------------------------------------------------------------
    def _plugin_error(self, name: str) -> _Http | None:
        """lib.rs `read_plugin_code` (via `validate_plugin_filename`): PluginError::ReadPluginError or PathTraversal,
        answered as `Plugin error: ...` with a 500."""
        if name.startswith("gh:"):
            return self._download_plugin(name)
        try:
            resolve_plugin(self.engine.plugin_dir, name)
        except PluginLoadError as exc:
            text = str(exc)
            prefix = "" if text.startswith("Path traversal") else "reading plugin file: "
            return _text(500, f"Plugin error: {prefix}{text}")
        return None

    def _download_plugin(self, name: str) -> _Http | None:
        """lib.rs `read_plugin_code` for `gh:<path>`: GET <--plugin-repo or the community repository's main
        branch> + path (a "/" between unless the repository ends with one), once per call, no retry; a failed
        connection is `.context("error getting plugin from repository")` (anyhow: only that text shows), a non-2xx
        answer PluginError::FetchingFromRepository "error fetching plugin from repository: {status} {url}" with
        reqwest's StatusCode display ("404 Not Found"); both reach the client as http.rs `Plugin error: ...`, 500."""
        repo = self.plugin_repo or "https://raw.githubusercontent.com/influxdata/influxdb3_plugins/main/"
        path = name.removeprefix("gh:")
        url = f"{repo}{path}" if repo.endswith("/") else f"{repo}/{path}"
        self.downloads.append(url)
        try:
            answer = requests.get(url, timeout=10)
        except requests.RequestException:
            return _text(500, "Plugin error: error getting plugin from repository")
        if not 200 <= answer.status_code < 300:
            try:
                reason = HTTPStatus(answer.status_code).phrase
            except ValueError:
                reason = "<unknown status code>"
            return _text(500, f"Plugin error: error fetching plugin from repository: {answer.status_code} {reason} "
                              f"{url}")
        return None

    def _create_trigger(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `configure_processing_engine_trigger`: the body from the query string if there is one, else JSON
        (all of db, plugin_filename, trigger_name, trigger_settings {run_async, error_behavior},
        trigger_specification and disabled required; spec: settings default); the plugin must exist (500), then
        the catalog: spec parse errors 500, unknown database 404 (spec: "Trigger not found"), existing trigger 409;
        200 with an empty body. A trigger created enabled starts at once (lib.rs TriggerCreated)."""
        if request.query:
            # serde_urlencoded into the same struct: the first missing field in declaration order, and
            # trigger_settings (a struct) cannot come from a query string
            params = _query_struct(request)
            for key in ("db", "plugin_filename", "trigger_name", "trigger_settings"):
                _url_required(params, key)
            raise _text(400, f"serde error: invalid type: string {json.dumps(params['trigger_settings'])}, expected "
                             "struct TriggerSettings")
        reader = self._read_json(request)
        obj = reader.struct(reader.value, "ProcessingEngineTriggerCreateRequest")
        database = reader.field(obj, "db", "str")
        plugin = reader.field(obj, "plugin_filename", "str")
        name = reader.field(obj, "trigger_name", "str")
        settings = reader.struct(reader.field(obj, "trigger_settings", "map"), "TriggerSettings")
        run_async = reader.field(settings, "run_async", "bool")
        behavior = reader.variant(settings, "error_behavior", ("log", "retry", "disable"))
        specification = reader.field(obj, "trigger_specification", "str")
        arguments = reader.string_map(obj, "trigger_arguments")
        disabled = reader.field(obj, "disabled", "bool")
        problem = self._plugin_error(plugin)
        if problem is not None:
            raise problem
        try:
            kind, value = _parse_specification(specification)
        except CatalogError as exc:
            raise _catalog_error(exc) from None
        if database == INTERNAL_DATABASE:
            raise _text(500, "cannot modify internal db")
        if not self.engine.has_database(database):
            raise _text(404, f"Database not found {database}")
        if (database, name) in self.triggers:
            raise _text(409, "attempted to create a resource that already exists")
        trigger = Trigger(database, name, plugin, kind, value, run_async, behavior, arguments, disabled)
        self.triggers[(database, name)] = trigger
        if not disabled:
            self._start(trigger)
        return 200, None, {}, True

    def _start(self, trigger: Trigger) -> None:
        """lib.rs `run_trigger`: a request trigger registers its path (a later one with the same path wins)."""
        if trigger.kind == "request" and self._plugin_error(trigger.plugin_filename) is None:
            self.request_paths[trigger.value] = (trigger.database, trigger.name)

    def _stop(self, trigger: Trigger) -> None:
        """lib.rs `stop_trigger` and `remove_trigger`: the path is unregistered, the trigger's cache dropped."""
        if trigger.kind == "request" and self.request_paths.get(trigger.value) == (trigger.database, trigger.name):
            del self.request_paths[trigger.value]
        self.engine.drop_trigger_cache(trigger.database, trigger.name)

    def _find_trigger(self, database: str, name: str) -> Trigger:
        """ops/trigger.rs: `active_database` then the trigger by name."""
        if database == INTERNAL_DATABASE:
            raise _text(500, "cannot modify internal db")
        if not self.engine.has_database(database):
            raise _text(404, f"Database not found {database}")
        trigger = self.triggers.get((database, name))
        if trigger is None:
            raise _text(404, f"the requested resource was not found: {name}")
        return trigger

    def _enable_trigger(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `enable_processing_engine_trigger`: query string db and trigger_name; an enabled trigger is 200."""
        params = _query_struct(request)
        trigger = self._find_trigger(_url_required(params, "db"), _url_required(params, "trigger_name"))
        if trigger.disabled:
            trigger.disabled = False
            self._start(trigger)
        return 200, None, {}, True

    def _disable_trigger(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        params = _query_struct(request)
        trigger = self._find_trigger(_url_required(params, "db"), _url_required(params, "trigger_name"))
        if not trigger.disabled:
            trigger.disabled = True
            self._stop(trigger)
        return 200, None, {}, True

    def _delete_trigger(self, request: Recorded) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `delete_processing_engine_trigger` (query string if any, else JSON {db, trigger_name, force?}):
        an enabled trigger needs `force`; without it CatalogError::ProcessingEngineTriggerRunning, which
        `IntoResponse for CatalogError` does not list: a 500."""
        if request.query:
            params = _query_struct(request)
            database, name = _url_required(params, "db"), _url_required(params, "trigger_name")
            force = bool(_url_bool(params, "force", False))
        else:
            reader = self._read_json(request)
            obj = reader.struct(reader.value, "ProcessingEngineTriggerDeleteRequest")
            database, name = reader.field(obj, "db", "str"), reader.field(obj, "trigger_name", "str")
            force = bool(reader.field(obj, "force", "bool", optional=True, default=False))
        trigger = self._find_trigger(database, name)
        if not trigger.disabled and not force:
            raise _text(500, f"Cannot delete running plugin {name}. Disable it first or use --force.")
        del self.triggers[(database, name)]
        self._stop(trigger)
        return 200, None, {}, True

    # ---- request triggers --------------------------------------------------------------------------------------------
    def _engine_request(self, request: Recorded, path: str) -> tuple[int, Any, dict[str, str], bool]:
        """http.rs `processing_engine_request_plugin` and plugins.rs `process_request`: query parameters as the url
        crate decodes them (last duplicate wins), headers with lowercase names and no Authorization (a value that
        is not visible ASCII panics the handler: the connection drops), the decoded body; an unknown or disabled
        path is 404 with the body `{error: "not found"}` (not JSON)."""
        params = _query_struct(request)
        headers = {}
        for key, value in request.headers.items():
            if key == "authorization":
                continue
            if not _visible_ascii(value):
                raise _Drop()
            headers[key] = value
        body = self._read_body(request)
        target = self.request_paths.get(path)
        trigger = self.triggers.get(target) if target else None
        if trigger is None or trigger.disabled:
            return 404, '{error: "not found"}', {}, True
        if not self.engine.has_database(trigger.database):
            return 500, json.dumps({"error": "database not found"}, separators=(",", ":")), {}, True
        run = self.engine.run_request(trigger.plugin_filename, trigger.database, params, headers, body,
                                      args=trigger.arguments, trigger=trigger.name)
        self.runs.append(run)
        response = run.response
        assert response is not None
        out: dict[str, str] = {}
        for key, value in response.headers.items():
            if not key or not _HEADER_NAME.fullmatch(key):
                # the response builder fails, the response channel is dropped: lib.rs RequestHandlerDown
                raise _text(500, "Processing engine error: request handler for trigger down")
            valid = all(ord(char) >= 32 or char == "\t" for char in value) and "\x7f" not in value
            out[key.lower()] = value if valid else ""  # HeaderValue::from_str failure -> ""
        return response.status, response.body, out, True


class _Drop(Exception):
    """The server would drop the connection (a panic in the handler, a failed body stream)."""


@contextlib.contextmanager
def serve(core: InfluxDB3) -> Iterator[RecordingServer]:
    """Serve `core` on loopback (a new process for the plugins: their modules are imported afresh)."""
    core.engine.restart()
    with RecordingServer(core) as server:
        yield server
    core.engine.restart()


@pytest.fixture
def influxdb3_server() -> Iterator[tuple[RecordingServer, InfluxDB3]]:
    """An InfluxDB 3 Core stand-in on loopback over the repository's plugins/, with an admin token
    (`core.token`) and `--disable-authz health,ping` like our stack. Import it into a test module or conftest:
    `from tests.support.influxdb3 import influxdb3_server  # noqa: F401`."""
    core = InfluxDB3(LocalEngine(plugin_dir=PLUGIN_DIR))
    with serve(core) as server:
        yield server, core
