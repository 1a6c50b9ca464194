"""The whole stack for the tests in tests/integration, from one of two providers.

- `docker`: the Compose stack itself (`docker compose up` of docker-compose.yml), when a Docker engine answers.
- `native`: the same services as processes on this machine, from server binaries the user names
  (`INFLUXDB3_BIN`, `INFLUXD_BIN`, optionally `INFLUX_BIN` and `GRAFANA_BIN` + `GRAFANA_HOME`) or finds on PATH,
  started with the settings docker-compose.yml gives them (stacks/settings.py reads them from the file).

`STACK_PROVIDER=docker|native` picks one; otherwise Docker is used when its engine answers, else the native
binaries when they are there, else every whole-stack test is skipped with both reasons.
Every test talks to the stack through `Stack`: the servers over HTTP, the ingest and backup services through
their own commands, so the same test runs unchanged on either provider.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import requests
from grafana_client import GrafanaApi

from tests.integration.stacks import flightsql

__all__ = ["Stack", "wait_for"]


@dataclass
class Stack(ABC):
    """A running stack: URLs and credentials, plus the operations the tests need from its services."""

    env: dict[str, str]
    kind = "abstract"

    # ---- where things are ------------------------------------------------------------------------------
    @property
    def influxdb2_url(self) -> str:
        return f"http://127.0.0.1:{self.env['INFLUXDB2_PORT']}"

    @property
    def influxdb3_url(self) -> str:
        return f"http://127.0.0.1:{self.env['INFLUXDB3_PORT']}"

    @property
    def grafana_url(self) -> str:
        return f"http://127.0.0.1:{self.env['GRAFANA_PORT']}"

    @property
    def influxdb3_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env['INFLUXDB3_ADMIN_TOKEN']}"}

    @property
    def influxdb2_headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.env['INFLUXDB2_ADMIN_TOKEN']}"}

    @property
    def operator_env(self) -> dict[str, str]:
        """What `make migrate` gives the ingest command: the operator token instead of the service's own write-only
        one (migrate reads InfluxDB 2)."""
        return {"INFLUXDB2_TOKEN": self.env["INFLUXDB2_ADMIN_TOKEN"], "INFLUXDB2_TOKEN_FILE": ""}

    @property
    def grafana_auth(self) -> tuple[str, str]:
        return self.env["GRAFANA_ADMIN_USER"], self.env["GRAFANA_ADMIN_PASSWORD"]

    def grafana_api(self, credential: tuple[str, str] | str | None = "admin") -> GrafanaApi:
        """Grafana's HTTP API through grafana-client: as the stack's admin by default, `None` anonymously, or with
        another (user, password) or a service account token."""
        chosen = self.grafana_auth if credential == "admin" else credential
        return GrafanaApi.from_url(self.grafana_url, credential=chosen, timeout=180)

    @property
    @abstractmethod
    def has_grafana(self) -> bool:
        """False when the native provider runs without a Grafana binary."""

    @property
    @abstractmethod
    def server_uid(self) -> int:
        """The uid the InfluxDB 3 server runs as (1500 in the official image)."""

    # ---- HTTP helpers ----------------------------------------------------------------------------------
    def sql(self, database: str, query: str) -> list[dict[str, Any]]:
        """Rows of an SQL query on InfluxDB 3 (raises on an HTTP error)."""
        response = requests.post(f"{self.influxdb3_url}/api/v3/query_sql", headers=self.influxdb3_headers,
                                 json={"db": database, "q": query, "format": "json"}, timeout=120)
        if not response.ok:
            raise requests.HTTPError(f"{response.status_code}: {response.text[:500]}", response=response)
        return response.json()

    def flight(self, database: str, query: str) -> pa.Table:
        """An SQL query's answer over Flight SQL, as Grafana's InfluxDB SQL backend receives it: the Arrow types the
        server sends, which the JSON of `sql` hides (stacks/flightsql.py)."""
        return flightsql.query(int(self.env["INFLUXDB3_PORT"]), self.env["INFLUXDB3_ADMIN_TOKEN"], database, query)

    def engine(self, path: str, method: str = "GET", **params: str) -> requests.Response:
        """A request trigger's endpoint, /api/v3/engine/<path>."""
        return requests.request(method, f"{self.influxdb3_url}/api/v3/engine/{path}", headers=self.influxdb3_headers,
                                params=params, timeout=300)

    def flux(self, query: str, token: str | None = None) -> str:
        """Annotated CSV of a Flux query on InfluxDB 2 (with the operator token, or `token`)."""
        auth = {"Authorization": f"Token {token}"} if token else {}
        response = requests.post(f"{self.influxdb2_url}/api/v2/query", params={"org": self.env["INFLUXDB2_ORG"]},
                                 json={"query": query, "type": "flux"},
                                 headers={**self.influxdb2_headers, **auth, "Accept": "application/csv"}, timeout=120)
        if not response.ok:
            raise requests.HTTPError(f"{response.status_code}: {response.text[:500]}", response=response)
        return response.text

    def flux_table(self, query: str, token: str | None = None) -> list[dict[str, str]]:
        """The rows of a Flux answer (annotated CSV: one header per table, blank lines between tables)."""
        found = []
        for block in self.flux(query, token).split("\r\n\r\n"):
            lines = [line for line in block.splitlines() if line and not line.startswith("#")]
            if len(lines) > 1:
                found += list(csv.DictReader(io.StringIO("\n".join(lines))))
        return found

    def flux_count(self, query: str) -> int:
        """The `_value` of the first row of a Flux answer (a `|> group() |> count()` query's one row), 0 when the
        answer has no rows (nothing matched)."""
        rows = self.flux_table(query)
        return int(rows[0]["_value"]) if rows else 0

    # ---- the services ----------------------------------------------------------------------------------
    @abstractmethod
    def ingest(self, *args: str, env: dict[str, str] | None = None, timeout: float = 900) \
            -> subprocess.CompletedProcess:
        """`python -m ingest <args>` as a one-off command beside the running service (its settings, its state)."""

    @abstractmethod
    def ingest_file(self, path: Path) -> str:
        """Where the ingest command sees a file of this machine."""

    @abstractmethod
    def influxdb3_file(self, path: Path) -> str:
        """Where the InfluxDB 3 server (its plugins) sees a file of this machine."""

    @abstractmethod
    def ingest_health(self) -> subprocess.CompletedProcess:
        """The running ingest service's health check."""

    @abstractmethod
    def backup(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        """`backup <args>` in the running backup service (its settings, its sets)."""

    @abstractmethod
    def restore(self, set_name: str, *args: str) -> str:
        """What `make restore SET=<name>` does (compose/stack.py restore), with `backup restore`'s extra flags;
        returns the name of the set restored."""

    @abstractmethod
    def wipe(self) -> None:
        """Lose every store (the data volumes), keep the backup sets, and start a new empty stack."""

    @abstractmethod
    def stop(self, *services: str) -> None: ...

    @abstractmethod
    def start(self, *services: str) -> None:
        """Start stopped services again and wait until they are healthy."""

    @abstractmethod
    def rerun_init(self) -> str:
        """Run the influxdb3-init one-shot again; its log."""

    @abstractmethod
    def rerun_influxdb2_init(self) -> str:
        """Run the influxdb2-init one-shot again (as the next `make up` does); the output of that run."""

    @abstractmethod
    def service_token(self, service: str) -> str:
        """The InfluxDB 2 token influxdb2-init gave `service` (grafana, ingest), as that service reads it."""

    @abstractmethod
    def service_token_file(self, service: str) -> tuple[int, int]:
        """(mode, owner uid) of `service`'s InfluxDB 2 token file."""

    @abstractmethod
    def lose_service_token(self, service: str) -> None:
        """Delete `service`'s InfluxDB 2 token file (a lost volume)."""

    @abstractmethod
    def logs(self, service: str) -> str: ...

    @abstractmethod
    def token_file(self) -> tuple[int, int]:
        """(mode, owner uid) of InfluxDB 3's admin token file."""

    @abstractmethod
    def close(self) -> None:
        """Tear the stack down (unless KEEP_STACK is set)."""


def wait_for(what: str, check: Callable[[], Any], timeout: float = 180, interval: float = 2.0) -> Any:
    """Poll `check` until it returns something truthy; raise naming `what` (and the last HTTP error)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except requests.RequestException as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


def keep() -> bool:
    return bool(os.environ.get("KEEP_STACK"))


def run(cmd: Sequence[str], *, timeout: float, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)
