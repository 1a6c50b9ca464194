"""Loading a plugin the way InfluxDB 3.10 does.

- A single `.py` file is executed in a fresh namespace: no `__file__`, no package, nothing added to
  sys.path, so it cannot import sibling modules.
- A directory with `__init__.py` (a multi-file plugin) is imported as a top-level package named after the
  directory: the engine inserts the directory's parent at sys.path[0], imports, then pops sys.path[0], and
  the module stays in sys.modules (two plugin folders with the same name would share one module).
The engine pops index 0 blindly, so a plugin that itself inserted at index 0 during import loses its own
entry; this loader refuses that instead of reproducing it silently.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from tests.engine.linebuilder import LineBuilder

__all__ = ["PluginLoadError", "install_line_builder", "load_plugin", "resolve_plugin"]


class PluginLoadError(Exception):
    pass


def install_line_builder() -> None:
    """What the engine does before every call: LineBuilder in builtins, for single- and multi-file plugins."""
    builtins.LineBuilder = LineBuilder  # type: ignore[attr-defined]


def resolve_plugin(plugin_dir: Path, name: str) -> Path:
    """The plugin path for a trigger's `plugin_filename`, confined to the plugin directory like the engine."""
    relative = Path(name.rstrip("/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise PluginLoadError(f"plugin path {name!r} leaves the plugin directory")
    path = (plugin_dir / relative).resolve()
    if not path.is_relative_to(plugin_dir.resolve()):
        raise PluginLoadError(f"plugin path {name!r} leaves the plugin directory")
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise PluginLoadError(f"Multi-file plugin directory must contain __init__.py: {path}")
        return path
    if not path.is_file():
        raise PluginLoadError(f"Plugin not found: {path}")
    return path


def _import_package(root: Path) -> ModuleType:
    parent, name = str(root.parent), root.name
    sys.path.insert(0, parent)
    try:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            importlib.invalidate_caches()
            module = importlib.import_module(name)
    except Exception as exc:
        raise PluginLoadError(f"Failed to import plugin module '{name}': {exc}") from exc
    finally:
        if sys.path[0] != parent:
            raise PluginLoadError(f"plugin {name!r} changed sys.path[0] while importing; the engine pops "
                                  "index 0 after the import and would remove the wrong entry (append instead)")
        sys.path.pop(0)
    origin = getattr(module, "__file__", None)
    if origin is None or Path(origin).resolve() != (root / "__init__.py").resolve():
        raise PluginLoadError(f"module name {name!r} is already taken by {origin}: the engine would run that "
                              "instead of this plugin; rename the plugin folder")
    return module


def load_plugin(path: Path) -> Any:
    """The plugin's namespace (module or dict wrapper) with its entry-point functions."""
    install_line_builder()
    if path.is_dir():
        return _import_package(path)
    namespace: dict[str, Any] = {}
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    exec(code, namespace)
    return SimpleNamespace(**{key: value for key, value in namespace.items() if not key.startswith("__")})
