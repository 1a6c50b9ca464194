from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.stackcli import stack_module


def make_env(folder: Path, **overrides: str) -> Path:
    """A freshly generated .env (as `make up` writes it), with some values replaced."""
    target = folder / ".env"
    stack_module().ensure_env(REPO / ".env.example", target)
    if overrides:
        lines = []
        for line in target.read_text().splitlines():
            key = line.split("=", 1)[0]
            lines.append(f"{key}={overrides.pop(key)}" if key in overrides else line)
        lines += [f"{key}={value}" for key, value in overrides.items()]
        target.write_text("\n".join(lines) + "\n")
    return target


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    return make_env(tmp_path)
