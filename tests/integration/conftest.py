"""Whole-stack fixtures (pytest-docker). Without a Docker engine every test here is skipped, with the reason.

The stack under test is a separate Compose project (`influx-stack-it`) with its own generated `.env`, its
own host ports (18086, 18181, 13000) and its own backup directory, so it never touches a user's stack.
Set KEEP_STACK=1 to leave it running after the tests for a look around.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.paths import REPO
from tests.support.stackcli import stack_module

PROJECT = "influx-stack-it"
# Modules that wipe and restore the stack's volumes run after every other whole-stack test.
DESTRUCTIVE_LAST = ("test_backup.py",)
TEST_PORTS = {"INFLUXDB2_PORT": "18086", "INFLUXDB3_PORT": "18181", "GRAFANA_PORT": "13000"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    items.sort(key=lambda item: item.path.parent == here and item.path.name in DESTRUCTIVE_LAST)


def docker_problem() -> str | None:
    """Why the whole stack cannot run here, or None when a Docker engine with Compose v2 answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s"
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines() or ["docker info failed"]
        return "no Docker engine is reachable: " + lines[-1]
    compose = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=20)
    if compose.returncode != 0:
        return "Docker Compose v2 (`docker compose`) is not installed"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    problem = docker_problem()
    if problem:
        pytest.skip(f"whole-stack test needs Docker: {problem}")


@pytest.fixture(scope="session")
def stack_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stack")
    cli = stack_module()
    target = folder / ".env"
    cli.ensure_env(REPO / ".env.example", target)
    text = target.read_text()
    overrides = {**TEST_PORTS, "BACKUP_DIR": str(folder / "backups")}
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={overrides[key]}" if key in overrides and "=" in line else line)
    target.write_text("\n".join(lines) + "\n")
    (folder / "backups").mkdir()
    return target


@pytest.fixture(scope="session")
def stack_env(stack_env_file: Path) -> dict[str, str]:
    return stack_module().read_env(stack_env_file)


# ---- pytest-docker configuration ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(REPO / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return PROJECT


@pytest.fixture(scope="session")
def docker_compose_command(stack_env_file: Path) -> str:
    return f'docker compose --env-file "{stack_env_file}"'


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up --build --detach"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return [] if os.environ.get("KEEP_STACK") else ["down --volumes --remove-orphans"]


@dataclass
class Stack:
    env: dict[str, str]
    compose_cmd: list[str]

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
    def grafana_auth(self) -> tuple[str, str]:
        return self.env["GRAFANA_ADMIN_USER"], self.env["GRAFANA_ADMIN_PASSWORD"]

    def sql(self, database: str, query: str) -> list[dict[str, Any]]:
        """Rows of an SQL query on InfluxDB 3 (raises on an HTTP error)."""
        response = requests.get(f"{self.influxdb3_url}/api/v3/query_sql", headers=self.influxdb3_headers,
                                params={"db": database, "q": query, "format": "json"}, timeout=60)
        response.raise_for_status()
        return response.json()

    def engine(self, path: str, **params: str) -> requests.Response:
        """GET a request trigger's endpoint, /api/v3/engine/<path>."""
        return requests.get(f"{self.influxdb3_url}/api/v3/engine/{path}", headers=self.influxdb3_headers,
                            params=params, timeout=120)

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """Run `docker compose <args>` against the test project."""
        return subprocess.run([*self.compose_cmd, *args], capture_output=True, text=True, timeout=timeout,
                              check=check)

    def wait_healthy(self, timeout: float = 900) -> None:
        stack_module().wait(self.compose_cmd, timeout)


@pytest.fixture(scope="session")
def stack(docker_engine: None, docker_services: object, stack_env: dict[str, str],
          docker_compose_command: str, docker_compose_file: str,
          docker_compose_project_name: str) -> Iterator[Stack]:
    """The whole stack, up and healthy, with provisioning finished."""
    cmd = [*shlex.split(docker_compose_command), "-f", docker_compose_file, "-p", docker_compose_project_name]
    running = Stack(env=stack_env, compose_cmd=cmd)
    running.wait_healthy()
    yield running


def wait_for(what: str, check: Callable[[], Any], timeout: float = 180) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` (and the last HTTP error)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except requests.RequestException as exc:
            last_error = exc
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


@pytest.fixture(scope="module")
def temporary_triggers(stack: Stack) -> Iterator[Callable[..., None]]:
    """Create triggers for one test module; they are deleted (forced) afterwards."""
    created: list[tuple[str, str]] = []

    def create(name: str, database: str, plugin: str, spec: str, arguments: dict[str, str]) -> None:
        response = requests.post(
            f"{stack.influxdb3_url}/api/v3/configure/processing_engine_trigger", headers=stack.influxdb3_headers,
            json={"db": database, "plugin_filename": plugin, "trigger_name": name, "trigger_specification": spec,
                  "trigger_arguments": arguments, "disabled": False,
                  "trigger_settings": {"run_async": False, "error_behavior": "log"}}, timeout=60)
        assert response.status_code in (200, 201, 409), response.text
        created.append((database, name))

    yield create
    for database, name in created:
        requests.delete(f"{stack.influxdb3_url}/api/v3/configure/processing_engine_trigger",
                        headers=stack.influxdb3_headers,
                        params={"db": database, "trigger_name": name, "force": "true"}, timeout=60)
