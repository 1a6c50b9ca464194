"""The stack under Docker: docker-compose.yml itself, as its own Compose project with its own ports and .env, brought
up and torn down by pytest-docker's `docker_services` fixture (tests/integration/conftest.py gives it the command,
file, project and the setup and cleanup commands below)."""

from __future__ import annotations

import functools
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pytest_docker.plugin import Services

from tests.integration.stacks import Stack, keep, run
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

__all__ = ["COMPOSE_FILE", "PROJECT", "DockerStack", "cleanup_commands", "compose_command", "docker_problem",
           "setup_commands"]

PROJECT = "influx-stack-it"
COMPOSE_FILE = REPO / "docker-compose.yml"
# Compose itself waits for the one-shots a service depends on; the health of the rest is polled afterwards
# (wait_until_responsive with compose/stack.py's assessment, which names a service that failed).
SETUP = "up --build --detach --remove-orphans"
CLEANUP = "down --volumes --remove-orphans"
HEALTHY_WITHIN = 900


def compose_command(env_file: Path) -> str:
    """pytest-docker's `docker_compose_command`: Compose v2 with the test stack's own .env (pytest-docker appends
    `-f` and `-p`)."""
    return f"docker compose --env-file {shlex.quote(str(env_file))}"


def setup_commands() -> list[str]:
    """pytest-docker's `docker_setup`: what it runs before the first whole-stack test."""
    return [SETUP]


def cleanup_commands() -> list[str]:
    """pytest-docker's `docker_cleanup`: nothing with KEEP_STACK set (the stack stays up for a look around)."""
    return [] if keep() else [CLEANUP]


def docker_problem() -> str | None:
    """Why the Compose stack cannot run here, or None when a Docker engine with Compose v2 answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        info = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20 s"
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines() or ["docker info failed"]
        return "no Docker engine is reachable: " + lines[-1]
    if run(["docker", "compose", "version"], timeout=20).returncode != 0:
        return "Docker Compose v2 (`docker compose`) is not installed"
    return None


@dataclass
class DockerStack(Stack):
    """The Compose project pytest-docker started (`services`, from its `docker_services` fixture); pytest-docker
    also takes it down after the last test (`docker_cleanup`)."""

    env_file: Path = field(default=Path())
    data_dir: Path = field(default=Path())
    services: Services | None = None
    kind = "docker"

    @property
    def compose_cmd(self) -> list[str]:
        """The command line pytest-docker runs its setup and cleanup with, as a list."""
        return [*shlex.split(compose_command(self.env_file)), "-f", str(COMPOSE_FILE), "-p", PROJECT]

    @property
    def has_grafana(self) -> bool:
        return True

    @property
    def server_uid(self) -> int:
        return 1500

    def compose(self, *args: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        result = run([*self.compose_cmd, *args], timeout=timeout, cwd=REPO)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def up(self) -> None:
        """pytest-docker ran `docker_setup` already: wait until every service is healthy."""
        self.wait_healthy()

    @functools.cached_property
    def one_shots(self) -> dict[str, bool]:
        """Service -> one-shot?, from the project's config (read once: it does not change while the stack runs)."""
        return stack_module().compose_services(self.compose("config", "--format", "json").stdout)

    def waiting(self) -> list[str]:
        """What is not ready yet (compose/stack.py's assessment of `compose ps`); raises naming a failed service."""
        cli = stack_module()
        failures, waiting = cli.assess(cli.parse_ps(self.compose("ps", "--all", "--format", "json").stdout),
                                       self.one_shots)
        if failures:
            raise RuntimeError("the stack did not come up: " + "; ".join(failures))
        return waiting

    def wait_healthy(self, timeout: float = HEALTHY_WITHIN) -> None:
        assert self.services is not None, "DockerStack needs pytest-docker's docker_services"
        try:
            self.services.wait_until_responsive(check=lambda: not self.waiting(), timeout=timeout, pause=3)
        except RuntimeError:  # a failed service or Compose command, named
            raise
        except Exception as exc:  # pytest-docker's timeout is a bare Exception, naming nothing
            raise TimeoutError(f"{exc} ({timeout:.0f} s); still waiting for: {'; '.join(self.waiting())}") from None

    def close(self) -> None:
        """Nothing: pytest-docker runs `docker_cleanup` after the session."""

    # ---- services --------------------------------------------------------------------------------------
    def ingest(self, *args: str, env: dict[str, str] | None = None, timeout: float = 900) \
            -> subprocess.CompletedProcess:
        extra = [item for key, value in (env or {}).items() for item in ("-e", f"{key}={value}")]
        return self.compose("run", "--rm", "--no-deps", "-T", "-v", f"{self.data_dir}:/data:ro", *extra, "ingest",
                            *args, timeout=timeout, check=False)

    def ingest_file(self, path: Path) -> str:
        """Files reach the ingest command through a read-only /data mount its non-root user can read."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o755)
        target = self.data_dir / path.name
        if path.resolve() != target.resolve():
            shutil.copyfile(path, target)
        target.chmod(0o644)
        return f"/data/{path.name}"

    def influxdb3_file(self, path: Path) -> str:
        self.compose("cp", str(path), f"influxdb3:/tmp/{path.name}")
        return f"/tmp/{path.name}"

    def ingest_health(self) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", "ingest", "python", "-m", "ingest", "health", check=False)

    def backup(self, *args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
        return self.compose("exec", "-T", "backup", "backup", *args, timeout=timeout, check=False)

    def restore(self, set_name: str, *args: str) -> str:
        """`make restore` itself (compose/stack.py restore) on this Compose project."""
        options = {"--accept-credential-mismatch": {"accept_credential_mismatch": True},
                   "--no-pre-restore-backup": {"pre_restore_backup": False}}
        chosen = {key: value for arg in args for key, value in options[arg].items()}
        return stack_module().restore(self.compose_cmd, set_name, timeout=900, **chosen)

    def wipe(self) -> None:
        self.compose("down", "--volumes")
        self.compose(*SETUP.split(), timeout=1800)
        self.wait_healthy()

    def stop(self, *services: str) -> None:
        self.compose("stop", *services)

    def start(self, *services: str) -> None:
        self.compose("up", "--detach", *services)
        self.wait_healthy()

    def rerun_init(self) -> str:
        self.compose("up", "--detach")
        self.wait_healthy()
        return self.logs("influxdb3-init")

    def rerun_influxdb2_init(self) -> str:
        result = self.compose("run", "--rm", "--no-deps", "-T", "influxdb2-init", check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    def service_token(self, service: str) -> str:
        return self.compose("exec", "-T", service, "cat", "/run/secrets/influxdb2/token").stdout.strip()

    def service_token_file(self, service: str) -> tuple[int, int]:
        out = self.compose("exec", "-T", service, "stat", "-c", "%a %u", "/run/secrets/influxdb2/token").stdout.split()
        return int(out[0], 8), int(out[1])

    def lose_service_token(self, service: str) -> None:
        self.compose("run", "--rm", "--no-deps", "-T", "--entrypoint", "rm", "influxdb2-init", "-f",
                     f"/secrets/{service}/token")

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, check=False).stdout

    def token_file(self) -> tuple[int, int]:
        out = self.compose("exec", "-T", "influxdb3", "stat", "-c", "%a %u",
                           "/var/lib/influxdb3/secrets/admin-token.json").stdout.split()
        return int(out[0], 8), int(out[1])

    def containers(self) -> list[str]:
        """`name created-at` of every container: a second `up` that recreates nothing leaves it unchanged."""
        return sorted(self.compose("ps", "--all", "--format", "{{.Name}} {{.CreatedAt}}").stdout.splitlines())
