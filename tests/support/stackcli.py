"""Import compose/stack.py (a stdlib script for the host, not a package) for tests and fixtures."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from tests.support.paths import REPO


def stack_module() -> ModuleType:
    name = "influx_stack_cli"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "compose" / "stack.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
