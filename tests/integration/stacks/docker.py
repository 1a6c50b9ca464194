"""The stack under Docker: docker-compose.yml itself, as its own Compose project with its own ports and .env."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.stacks import Stack, keep, run
from tests.support.paths import REPO
from tests.support.stackcli import stack_module

__all__ = ["DockerStack", "docker_problem"]

PROJECT = "influx-stack-it"


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
    env_file: Path = field(default=Path())
    data_dir: Path = field(default=Path())
    kind = "docker"

    @property
    def compose_cmd(self) -> list[str]:
        return ["docker", "compose", "--env-file", str(self.env_file), "-f", str(REPO / "docker-compose.yml"),
                "-p", PROJECT]

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
        self.compose("up", "--build", "--detach", timeout=1800)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 900) -> None:
        stack_module().wait(self.compose_cmd, timeout)

    def close(self) -> None:
        if not keep():
            self.compose("down", "--volumes", "--remove-orphans", check=False)

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
        self.up()

    def stop(self, *services: str) -> None:
        self.compose("stop", *services)

    def start(self, *services: str) -> None:
        self.compose("up", "--detach", *services)
        self.wait_healthy()

    def rerun_init(self) -> str:
        self.compose("up", "--detach")
        self.wait_healthy()
        return self.logs("influxdb3-init")

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, check=False).stdout

    def token_file(self) -> tuple[int, int]:
        out = self.compose("exec", "-T", "influxdb3", "stat", "-c", "%a %u",
                           "/var/lib/influxdb3/secrets/admin-token.json").stdout.split()
        return int(out[0], 8), int(out[1])

    def containers(self) -> list[str]:
        """`name created-at` of every container: a second `up` that recreates nothing leaves it unchanged."""
        return sorted(self.compose("ps", "--all", "--format", "{{.Name}} {{.CreatedAt}}").stdout.splitlines())
