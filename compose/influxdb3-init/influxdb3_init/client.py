"""The few InfluxDB 3 Core admin endpoints provisioning needs, with the server's real semantics.

Facts from the server (influxdb3_server/src/http.rs), not only from the API description: an existing
database, table or trigger answers 409; enabling an enabled trigger answers 200; a sixth database answers
422; JSON bodies need `Content-Type: application/json`; and the trigger and package endpoints read their
parameters from the query string when there is one, so those requests never carry one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import requests

from common.retry import RetryableError, RetryPolicy, call_with_retry, parse_retry_after
from influxdb3_init.spec import CORE_DATABASE_LIMIT

__all__ = ["InfluxDB3Admin", "Outcome", "ProvisionError"]

log = logging.getLogger("influxdb3-init")


class ProvisionError(RuntimeError):
    """Provisioning cannot go on; the message says what failed and what to do."""


class Outcome(StrEnum):
    CREATED = "created"
    EXISTS = "exists"
    DONE = "done"
    SKIPPED = "skipped"


_AUTH_HINT = ("InfluxDB 3 rejected the admin token (HTTP {status}). The server keeps the token it was first "
              "started with: INFLUXDB3_ADMIN_TOKEN in .env must be that token. If .env was regenerated after the "
              "first start, restore the old .env, or wipe the InfluxDB 3 volumes with `make clean`.")


class InfluxDB3Admin:
    def __init__(self, url: str, token: str, *, timeout: float = 30.0, install_timeout: float = 1800.0,
                 attempts: int = 6, session: requests.Session | None = None,
                 sleep: Callable[[float], None] | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.install_timeout = install_timeout
        self.policy = RetryPolicy(attempts=attempts, base=1.0, cap=20.0)
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        self._sleep = sleep

    # ------------------------------------------------------------------------------------------ plumbing
    def _request(self, method: str, path: str, what: str, *, json_body: Any = None,
                 params: dict[str, str] | None = None, timeout: float | None = None,
                 ok: tuple[int, ...] = (200, 201, 204), exists: tuple[int, ...] = (),
                 retry: bool = True) -> tuple[Outcome, Any]:
        def attempt() -> tuple[Outcome, Any]:
            try:
                response = self.session.request(method, self.url + path, json=json_body, params=params,
                                                timeout=timeout or self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise RetryableError(f"{what}: cannot reach {self.url} ({type(exc).__name__})") from exc
            status = response.status_code
            if status in ok:
                return Outcome.CREATED, _body(response)
            if status in exists:
                return Outcome.EXISTS, None
            detail = response.text.strip()[:500]
            if status in (401, 403):
                raise ProvisionError(_AUTH_HINT.format(status=status))
            if status == 422:
                raise ProvisionError(f"{what}: the server refused it (HTTP 422: {detail}). {_limit_hint(detail)}")
            if retry and self.policy.is_retryable_status(status):
                raise RetryableError(f"{what}: HTTP {status}: {detail}", status=status,
                                     retry_after=parse_retry_after(response.headers.get("Retry-After")))
            raise ProvisionError(f"{what}: HTTP {status}: {detail or 'no detail from the server'}")

        def on_retry(attempt_no: int, exc: RetryableError, delay: float) -> None:
            log.warning("%s; retrying in %.1f s (attempt %d of %d)", exc, delay, attempt_no + 1,
                        self.policy.attempts)

        try:
            kwargs = {"sleep": self._sleep} if self._sleep else {}
            policy = self.policy if retry else RetryPolicy(attempts=1)
            return call_with_retry(attempt, policy, on_retry=on_retry, **kwargs)
        except RetryableError as exc:
            raise ProvisionError(f"{exc} (gave up after {self.policy.attempts} attempts)") from exc

    # --------------------------------------------------------------------------------------- endpoints
    def wait_healthy(self) -> None:
        self._request("GET", "/health", "health check")

    def list_databases(self) -> list[str]:
        _, body = self._request("GET", "/api/v3/configure/database", "list databases", params={"format": "json"})
        rows = body if isinstance(body, list) else []
        return [str(row.get("iox::database")) for row in rows if isinstance(row, dict)]

    def create_database(self, name: str, retention: str | None = None) -> Outcome:
        body: dict[str, str] = {"db": name}
        if retention:
            body["retention_period"] = retention
        return self._request("POST", "/api/v3/configure/database", f"create database {name}",
                             json_body=body, exists=(409,))[0]

    def retentions(self) -> dict[str, int | None]:
        """Each database's retention in ns (None: kept forever): `_internal`'s system.databases (databases.rs,
        v3.6.0), which only the admin token reads."""
        rows = self.query("_internal", "SELECT database_name, retention_period_ns FROM system.databases "
                                       "WHERE NOT deleted", "read the retention periods")
        return {str(row["database_name"]): None if row.get("retention_period_ns") is None
                else int(row["retention_period_ns"]) for row in rows}

    def set_retention(self, db: str, retention: str | None) -> Outcome:
        """PUT /api/v3/configure/database (http.rs `update_database`): without a period it clears the retention."""
        body: dict[str, str] = {"db": db}
        if retention:
            body["retention_period"] = retention
        return self._request("PUT", "/api/v3/configure/database", f"set the retention of {db}", json_body=body)[0]

    def holds_rows_before(self, db: str, table: str, cutoff_ns: int) -> bool:
        """Whether the table has a row before the cutoff, in its files or its write buffer. A scan Core refuses
        (over --query-file-limit files before the cutoff) counts as yes."""
        try:
            return bool(self.query(db, f'SELECT time FROM "{table}" WHERE time < to_timestamp_nanos({cutoff_ns}) '
                                       "LIMIT 1", f"look for rows of {db}.{table} before the cutoff"))
        except ProvisionError as exc:
            if "file limit" in str(exc):
                return True
            raise

    def create_table(self, db: str, table: str, tags: list[str], fields: list[dict[str, str]]) -> Outcome:
        body = {"db": db, "table": table, "tags": tags, "fields": fields}
        return self._request("POST", "/api/v3/configure/table", f"create table {db}.{table}",
                             json_body=body, exists=(409,))[0]

    def install_packages(self, packages: list[str]) -> Outcome:
        return self._request("POST", "/api/v3/configure/plugin_environment/install_packages",
                             "install plugin packages", json_body={"packages": packages},
                             timeout=self.install_timeout)[0]

    def create_trigger(self, body: dict[str, Any], *, retry: bool = True) -> Outcome:
        return self._request("POST", "/api/v3/configure/processing_engine_trigger",
                             f"create trigger {body['trigger_name']}", json_body=body, exists=(409,),
                             retry=retry)[0]

    def enable_trigger(self, db: str, name: str) -> Outcome:
        return self._request("POST", "/api/v3/configure/processing_engine_trigger/enable", f"enable trigger {name}",
                             params={"db": db, "trigger_name": name})[0]

    def disable_trigger(self, db: str, name: str) -> Outcome:
        return self._request("POST", "/api/v3/configure/processing_engine_trigger/disable",
                             f"disable trigger {name}", params={"db": db, "trigger_name": name})[0]

    def delete_trigger(self, db: str, name: str) -> Outcome:
        return self._request("DELETE", "/api/v3/configure/processing_engine_trigger", f"delete trigger {name}",
                             params={"db": db, "trigger_name": name, "force": "true"}, exists=(404,))[0]

    def query(self, db: str, sql: str, what: str) -> list[dict[str, Any]]:
        """Rows of an SQL query. POST with a JSON body: the form both the server and its API description accept."""
        _, body = self._request("POST", "/api/v3/query_sql", what, json_body={"db": db, "q": sql, "format": "json"})
        return body if isinstance(body, list) else []

    def count_rows(self, db: str, table: str) -> int:
        """Rows in a table, without reading its Parquet files (the name is an identifier checked by the
        provisioning file's rules).

        `COUNT(*)` would scan every file of the table: Core writes one per 10 minutes of data per snapshot and
        refuses queries over `--query-file-limit` files. `system.parquet_files` lists the files with their row
        counts instead (influxdb3_system_tables/src/parquet_files.rs; it panics for a table that does not exist,
        hence the catalog check first). With no file yet, the rows are all in the write buffer, and counting
        them reads no file."""
        what = f"count rows of {db}.{table}"
        if not self.query(db, f"SELECT table_name FROM information_schema.tables WHERE table_name = '{table}' "
                              "AND table_schema = 'iox'", what):
            return 0
        files = self.query(db, "SELECT count(*) AS files, sum(row_count) AS n FROM system.parquet_files "
                               f"WHERE table_name = '{table}'", what)
        if files and int(files[0].get("files") or 0):
            return int(files[0].get("n") or 0)
        rows = self.query(db, f'SELECT COUNT(*) AS n FROM "{table}"', what)
        return int(rows[0]["n"]) if rows else 0

    def call_endpoint(self, path: str, timeout: float, body: Any = None) -> Any:
        """POST to a request trigger's endpoint once (plugin failures are deterministic: no retry)."""
        return self._request("POST", f"/api/v3/engine/{path}", f"request {path}", json_body=body or {},
                             timeout=timeout, retry=False)[1]

    def tables(self, db: str) -> set[str]:
        """The tables of a database (information_schema lists them without reading any data)."""
        rows = self.query(db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox'",
                          f"list tables of {db}")
        return {str(row["table_name"]) for row in rows}

    def triggers(self, db: str) -> dict[str, dict[str, Any]]:
        """system.processing_engine_triggers of one database by trigger name (3.10 has an error_behavior column,
        3.6 not: every column there is taken), each with its `arguments` from
        system.processing_engine_trigger_arguments (influxdb3_system_tables/src/python_call.rs, 3.6 and 3.10)."""
        rows = self.query(db, "SELECT * FROM system.processing_engine_triggers", f"list triggers of {db}")
        found = {str(row["trigger_name"]): {**row, "arguments": {}} for row in rows}
        for row in self.query(db, "SELECT trigger_name, argument_key, argument_value "
                                  "FROM system.processing_engine_trigger_arguments", f"list trigger arguments of {db}"):
            if str(row["trigger_name"]) in found:
                found[str(row["trigger_name"])]["arguments"][str(row["argument_key"])] = str(row["argument_value"])
        return found


# Core's catalog limits (influxdb3/src/commands/serve.rs CORE_NUM_*_LIMIT, v3.10.1) and the texts of the 422
# that reports them (influxdb3_catalog/src/error.rs TooManyDbs, TooManyTables, TooManyColumns).
_LIMITS = (
    ("databases", f"InfluxDB 3 Core allows {CORE_DATABASE_LIMIT} databases: delete one you no longer need "
                  "(DELETE /api/v3/configure/database?db=...) or list fewer in plugins/provision.yaml."),
    ("number of tables", "InfluxDB 3 Core allows 2,000 tables in all: delete unused tables "
                         "(DELETE /api/v3/configure/table) or write fewer distinct measurements."),
    ("columns per table", "InfluxDB 3 Core allows 500 columns per table (tags, fields and time): "
                          "declare fewer fields for this table."),
)


def _limit_hint(detail: str) -> str:
    """What to do about a 422: which of Core's limits the server's message names."""
    return next((hint for marker, hint in _LIMITS if marker in detail),
                "The server refused the request as unprocessable; its message says why.")


def _body(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text
