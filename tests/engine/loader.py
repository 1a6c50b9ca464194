"""Loading a plugin the way InfluxDB 3.10.1 does (influxdb3_py_api/src/system_py.rs `load_plugin_function`).

- A single `.py` file is executed on every call in a fresh globals dict (`py.run(code, globals)`, file name
  `<string>`): no `__file__`, no `__name__`, no package, nothing added to sys.path, so it cannot import
  sibling modules, and module-level state does not survive from one call to the next. The server re-reads the
  file when it changed (lib.rs `LocalPlugin::read_if_modified`).
- A directory with `__init__.py` (a multi-file plugin) is imported as a top-level package named after the
  directory: the engine inserts the directory's parent at sys.path[0], imports (retrying once after
  `importlib.invalidate_caches()` when the module itself is not found), then pops sys.path[0], and the module
  stays in sys.modules for the life of the process: later calls, a trigger disabled and enabled again, or
  edited files all run the module imported first (two plugin folders with the same name would share one
  module). Only a new process imports it again (LocalEngine.restart).
The engine pops index 0 blindly, so a plugin that itself inserted at index 0 during import loses its own
entry; this loader refuses that instead of reproducing it silently.

Errors carry the engine's texts (ExecutePluginError in influxdb3_py_api/src/error.rs).
"""

from __future__ import annotations

import builtins
import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from tests.engine.linebuilder import LineBuilder

__all__ = ["MISSING_FUNCTION", "PluginFailure", "PluginLoadError", "install_line_builder", "load_function",
           "load_plugin", "resolve_plugin"]

# influxdb3_py_api/src/error.rs (v3.10.1) ExecutePluginError::Missing*Function
MISSING_FUNCTION = {
    "process_writes": "the process_writes function is not present in the plugin. Should be defined as: "
                      "process_writes(influxdb3_local, table_batches, args=None)",
    "process_request": "the process_request function is not present in the plugin. Should be defined as: "
                       "process_request(influxdb3_local, query_parameters, request_headers, request_body, "
                       "args=None) -> Tuple[str, Optional[Dict[str, str]]]",
    "process_scheduled_call": "the process_scheduled_call function is not present in the plugin. Should be "
                              "defined as: process_scheduled_call(influxdb3_local, call_time, args=None)",
}


class PluginLoadError(Exception):
    """The plugin path cannot be used (what the server refuses when a trigger is created)."""


class PluginFailure(Exception):
    """Loading the plugin's function failed; str() is the engine's error text."""


def _py_error(exc: BaseException) -> str:
    """PyErr's Display: `{type qualname}: {str(value)}`."""
    return f"{type(exc).__qualname__}: {exc}"


def install_line_builder() -> None:
    """What the engine does before every call: LineBuilder in builtins, for single- and multi-file plugins."""
    builtins.LineBuilder = LineBuilder  # type: ignore[attr-defined]


def resolve_plugin(plugin_dir: Path, name: str) -> Path:
    """The plugin path for a trigger's `plugin_filename`, confined to the plugin directory like the engine
    (lib.rs `read_plugin_code` and `validate_path_within_plugin_dir`)."""
    relative = Path(name.rstrip("/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise PluginLoadError(f"Path traversal detected: plugin filename '{name}' attempts to access files outside "
                              "the plugin directory")
    path = (plugin_dir / relative).resolve()
    if not path.is_relative_to(plugin_dir.resolve()):
        raise PluginLoadError(f"Path traversal detected: plugin filename '{name}' attempts to access files outside "
                              "the plugin directory")
    unresolved = plugin_dir / relative
    if not path.exists():
        raise PluginLoadError(f"Plugin not found: {unresolved}")
    if path.is_dir():
        if not (path / "__init__.py").is_file():
            raise PluginLoadError(f"Multi-file plugin directory must contain __init__.py: {unresolved}")
        return path
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
        raise PluginFailure(f"Failed to import plugin module '{name}': {_py_error(exc)}\n"
                            "Hint: Check for syntax errors or missing dependencies in Python files.") from exc
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


def load_function(path: Path, entry: str) -> Any:
    """The plugin's `entry` function, loaded as the engine loads it for one call."""
    install_line_builder()
    if path.is_dir():
        module = _import_package(path)
        try:
            return getattr(module, entry)
        except AttributeError:
            raise PluginFailure(MISSING_FUNCTION[entry]) from None
        except Exception as exc:
            raise PluginFailure(f"Failed to load function '{entry}' from plugin module '{path.name}': "
                                f"{_py_error(exc)}") from exc
    namespace: dict[str, Any] = {}
    try:
        code = compile(path.read_text(encoding="utf-8"), "<string>", "exec")
        exec(code, namespace)
    except Exception as exc:
        raise PluginFailure(_py_error(exc)) from exc
    if entry not in namespace:
        raise PluginFailure(MISSING_FUNCTION[entry])
    return namespace[entry]


def load_plugin(path: Path) -> Any:
    """The plugin's namespace (module, or the globals of a single file) with its entry-point functions."""
    install_line_builder()
    if path.is_dir():
        return _import_package(path)
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(encoding="utf-8"), "<string>", "exec"), namespace)
    return SimpleNamespace(**{key: value for key, value in namespace.items() if not key.startswith("__")})
