"""InfluxDB 3 Core through the official `influxdb3-python` client, plus its HTTP API for databases.

Writes use the client's synchronous write path with a body this app encoded and gzip'd once:
`POST /api/v3/write_lp?db=&precision=nanosecond`, `Authorization: Bearer ...`, `Content-Encoding: gzip`
(the client's default would be the v2 compatibility endpoint; `use_v2_api=False` selects write_lp).
The client has no database management, so databases are created with `POST /api/v3/configure/database`
(409 means it already exists).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3.exceptions
from influxdb_client_3 import InfluxDBClient3, WriteOptions, write_client_options
from influxdb_client_3.exceptions import InfluxDBError, InfluxDBPartialWriteError
from influxdb_client_3.write_client.client.write_api import WriteType

from common.retry import RETRY_STATUSES, RetryableError, parse_retry_after
from ingest.sinks import FatalSinkError
from ingest.sinks.errors import line_errors_message, network_error, status_error

__all__ = ["InfluxDB3Transport", "single_unit", "with_port"]

log = logging.getLogger("ingest.influxdb3")


def with_port(url: str) -> str:
    """`url` with its port spelled out: influxdb3-python assumes 443 whenever a URL has none."""
    parts = urlsplit(url)
    if parts.port is not None:
        return url.rstrip("/")
    port = 443 if parts.scheme == "https" else 80
    return urlunsplit((parts.scheme, f"{parts.hostname}:{port}", parts.path, "", "")).rstrip("/")


def single_unit(span: timedelta) -> str:
    """`30d`, `36h`, `90m`, `45s`: one unit, the form InfluxDB 3's documentation uses for retention periods."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class InfluxDB3Transport:
    name = "influxdb3"

    def __init__(self, url: str, token: str, *, database: str, timeout: float = 30.0):
        self.url = with_port(url)
        self.timeout = timeout
        options = WriteOptions(write_type=WriteType.synchronous, use_v2_api=False, no_sync=False,
                               accept_partial=True)
        self.client = InfluxDBClient3(host=self.url, token=token, database=database, auth_scheme="Bearer",
                                      write_client_options=write_client_options(write_options=options),
                                      write_timeout=int(timeout * 1000))
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self._hints = {
            401: "the token was refused; check INFLUXDB3_TOKEN",
            403: "the token may not write to this database; use an admin token or one with write access",
            404: "no such database, and the server did not create it",
        }

    def send(self, payload: bytes, database: str) -> None:
        try:
            self.client.write(record=payload, database=database, content_encoding="gzip")
        except InfluxDBPartialWriteError as exc:
            # Each error names its line by number; its original_line is cut to 20 bytes since 3.10
            # (influxdb3_types/src/write.rs TRUNCATE_LIMIT): good for the log, never for the rejects file.
            errors = [(item.line_number, item.error_message, item.original_line) for item in exc.line_errors]
            numbers = [number for number, _, _ in errors]
            raise status_error("InfluxDB 3", _status(exc), line_errors_message(exc.message, errors),
                               retry_after=None, fatal_hints=self._hints,
                               line_numbers=numbers if all(numbers) else None) from None
        except InfluxDBError as exc:
            raise status_error("InfluxDB 3", _status(exc), str(exc.message), retry_after=exc.retry_after,
                               fatal_hints=self._hints) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise network_error("InfluxDB 3", self.url, exc) from None

    def ensure_database(self, name: str, description: str, retention: timedelta | None) -> str:
        """Create the database (descriptions are not stored by InfluxDB 3); "created" or "exists"."""
        body: dict[str, str] = {"db": name}
        if retention:
            body["retention_period"] = single_unit(retention)
        try:
            response = self.session.post(f"{self.url}/api/v3/configure/database", json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetryableError(f"InfluxDB 3 at {self.url} unreachable: {exc}") from None
        if response.status_code == 409:
            return "exists"
        if response.ok:
            return "created"
        message = _response_message(response)
        if response.status_code in RETRY_STATUSES:
            raise RetryableError(f"InfluxDB 3 answered {response.status_code}: {message}",
                                 retry_after=parse_retry_after(response.headers.get("Retry-After")),
                                 status=response.status_code)
        hint = self._hints.get(response.status_code, "")
        raise FatalSinkError(f"cannot create InfluxDB 3 database {name!r}: {response.status_code} {message}"
                             + (f" — {hint}" if hint else ""))

    def close(self) -> None:
        self.session.close()
        self.client.close()


def _status(exc: InfluxDBError) -> int:
    status = getattr(exc, "status", None)
    if status is None and getattr(exc, "response", None) is not None:
        status = getattr(exc.response, "status", None)
    return int(status or 0)


def _response_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)
    return str(body)
