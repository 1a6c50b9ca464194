"""The services' settings, read from docker-compose.yml itself (one source for Docker and native processes).

`docker compose config --format json` (the real Compose v2 binary, run offline) resolves the file with the test
stack's .env: every command line, environment variable, mount and published port, interpolated. The Dockerfiles
of the services built here add their `ENV` defaults (compose does not read those). `Service.host_env()` and
`Service.host_args()` then translate what a container would see into what a process on this machine needs:
container paths become the host folders that back the same mounts, and `http://<service>:<port>` becomes the
loopback address that service is published on.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.compose import resolved_config

__all__ = ["Service", "StackSettings", "dockerfile_cmd", "dockerfile_env"]

_SERVICE_URL = re.compile(r"\b(https?)://([a-z0-9-]+):(\d+)")


def dockerfile_env(path: Path) -> dict[str, str]:
    """The `ENV` defaults of a Dockerfile (`ENV A=1 \\` continuation lines included)."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip().upper().startswith("ENV "):
            for item in shlex.split(line.strip()[4:]):
                if "=" in item:
                    key, value = item.split("=", 1)
                    found[key] = value
    return found


def dockerfile_cmd(path: Path) -> list[str]:
    """The exec-form `CMD [...]` of a Dockerfile (the last one), or []."""
    found: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().upper().startswith("CMD ["):
            found = json.loads(line.strip()[4:])
    return found


@dataclass
class Service:
    """One service of the resolved compose file."""

    name: str
    raw: dict[str, Any]
    settings: StackSettings

    @property
    def command(self) -> list[str]:
        """The compose file's command, else the image's CMD (for the services built here)."""
        if self.raw.get("command"):
            return list(self.raw["command"])
        build = self.raw.get("build")
        return dockerfile_cmd(Path(build["context"]) / build["dockerfile"]) if build else []

    @property
    def environment(self) -> dict[str, str]:
        """Dockerfile ENV defaults, then the compose file's `environment` (which wins, as in a container)."""
        values: dict[str, str] = {}
        build = self.raw.get("build")
        if build:
            values.update(dockerfile_env(Path(build["context"]) / build["dockerfile"]))
        values.update({key: "" if value is None else str(value)
                       for key, value in (self.raw.get("environment") or {}).items()})
        return values

    @property
    def mounts(self) -> list[tuple[str, Path, bool]]:
        """(container path, host path, read only) of every volume and bind mount."""
        found = []
        for volume in self.raw.get("volumes") or []:
            source = Path(volume["source"]) if volume["type"] == "bind" else self.settings.volume_dir(volume["source"])
            found.append((volume["target"], source, bool(volume.get("read_only"))))
        return found

    def published(self, container_port: int) -> int:
        for port in self.raw.get("ports") or []:
            if int(port["target"]) == container_port:
                return int(port["published"])
        raise KeyError(f"{self.name} publishes no port {container_port}")

    def host_path(self, container_path: str) -> Path:
        """The host folder behind a path inside this service's container (the longest mount that holds it)."""
        best = None
        for target, source, _ in self.mounts:
            inside = container_path == target or container_path.startswith(target.rstrip("/") + "/")
            if inside and (best is None or len(target) > len(best[0])):
                best = (target, source)
        if best is None:
            raise KeyError(f"{container_path} is on no mount of {self.name}")
        rest = container_path[len(best[0]):].lstrip("/")
        return best[1] / rest if rest else best[1]

    def translate(self, value: str) -> str:
        """A setting as a process on this machine needs it: service URLs to loopback, mounted paths to hosts'."""
        value = _SERVICE_URL.sub(lambda m: self.settings.loopback_url(m.group(1), m.group(2), int(m.group(3))), value)
        if value.startswith("/"):
            try:
                return str(self.host_path(value))
            except KeyError:
                return value
        return value

    def host_env(self, drop: tuple[str, ...] = ()) -> dict[str, str]:
        return {key: self.translate(value) for key, value in self.environment.items() if key not in drop}

    def host_args(self, args: list[str]) -> list[str]:
        """Command-line arguments with `--flag=value` values translated."""
        out = []
        for arg in args:
            if arg.startswith("--") and "=" in arg:
                flag, value = arg.split("=", 1)
                out.append(f"{flag}={self.translate(value)}")
            else:
                out.append(self.translate(arg))
        return out


@dataclass
class StackSettings:
    """The resolved compose file for one test stack, and where its named volumes live on this machine."""

    env_file: Path
    volumes_root: Path
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, env_file: Path, volumes_root: Path) -> StackSettings:
        settings = cls(env_file, volumes_root)
        settings.config = resolved_config(env_file)
        return settings

    def service(self, name: str) -> Service:
        return Service(name, self.config["services"][name], self)

    def volume_dir(self, volume: str) -> Path:
        path = self.volumes_root / volume
        path.mkdir(parents=True, exist_ok=True)
        return path

    def loopback_url(self, scheme: str, host: str, port: int) -> str:
        """`http://influxdb3:8181` (a service on the compose network) as the loopback URL it is published on."""
        if host not in self.config["services"]:
            return f"{scheme}://{host}:{port}"
        return f"{scheme}://127.0.0.1:{self.service(host).published(port)}"
