"""The processing engine's Python environment, as plugins see it through `importlib.metadata`.

The server installs packages with `python -m pip install <packages>` in its virtual environment and never
looks at pip's exit status: `PipManager::install_packages` (influxdb3_processing_engine/src/environment.rs,
v3.10.1 and v3.6.0) only fails when the process cannot be started, so the HTTP endpoint answers 200 even
when pip installed nothing. pip resolves every requirement before it installs any, so one requirement it
cannot satisfy means none of the command's packages is installed.

`PackageEnvironment` models that venv: `installable` is what the (pretend) package index offers, `installed`
what pip put in the venv. While a plugin runs on a `LocalEngine` that has one, `importlib.metadata.version()`,
`.distribution()` and `.metadata()` answer from it for every name it knows (installed: that version; only
installable: PackageNotFoundError); other names fall through to the test interpreter's own packages. The
override is a process-wide wrapper that is only active on the thread running the plugin. Imports are not
affected: a plugin imports what the test interpreter has.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

__all__ = ["PackageEnvironment", "active", "canonical_name"]

_local = threading.local()
_lock = threading.Lock()
_installed_hook = False


def canonical_name(name: str) -> str:
    """PEP 503 normalization (what pip and importlib.metadata compare)."""
    return re.sub(r"[-_.]+", "-", name).lower()


class _Distribution(metadata.Distribution):
    def __init__(self, name: str, version: str):
        self._text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"

    def read_text(self, filename: str) -> str | None:
        return self._text if filename in ("METADATA", "PKG-INFO") else None

    def locate_file(self, path: Any) -> Any:
        raise FileNotFoundError(path)


class PackageEnvironment:
    """The venv pip manages: what the index offers (`installable`) and what is installed."""

    def __init__(self, installable: Mapping[str, str | Iterable[str]] | None = None,
                 installed: Mapping[str, str] | None = None):
        self.installable: dict[str, list[str]] = {}
        for name, versions in (installable or {}).items():
            self.installable[canonical_name(name)] = [versions] if isinstance(versions, str) else list(versions)
        self.installed: dict[str, str] = {canonical_name(k): v for k, v in (installed or {}).items()}
        self.pip_runs: list[tuple[list[str], bool]] = []  # (arguments, whether pip would have exited 0)
        self._lock = threading.Lock()

    def knows(self, name: str) -> bool:
        key = canonical_name(name)
        return key in self.installed or key in self.installable

    def version(self, name: str) -> str | None:
        return self.installed.get(canonical_name(name))

    def _pick(self, requirement: str) -> tuple[str, str] | None:
        try:
            parsed = Requirement(requirement)
        except InvalidRequirement:
            return None
        candidates = []
        for text in self.installable.get(canonical_name(parsed.name), []):
            try:
                candidates.append((Version(text), text))
            except InvalidVersion:
                continue
        matching = [text for version, text in sorted(candidates)
                    if parsed.specifier.contains(version, prereleases=True)]
        return (canonical_name(parsed.name), matching[-1]) if matching else None

    def pip_install(self, requirements: list[str]) -> bool:
        """`python -m pip install ...`: all or nothing; returns pip's success (which the server ignores)."""
        with self._lock:
            picks = [self._pick(item) for item in requirements]
            ok = bool(requirements) and all(pick is not None for pick in picks)
            if ok:
                self.installed.update(pick for pick in picks if pick is not None)
            self.pip_runs.append((list(requirements), ok))
            return ok


@contextlib.contextmanager
def active(environment: PackageEnvironment | None) -> Iterator[None]:
    """Make `environment` what importlib.metadata answers from on this thread (None: no override)."""
    if environment is None:
        yield
        return
    _install_hook()
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(environment)
    try:
        yield
    finally:
        stack.pop()


def _current() -> PackageEnvironment | None:
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


def _install_hook() -> None:
    global _installed_hook
    with _lock:
        if _installed_hook:
            return
        original_distribution = metadata.distribution
        original_version = metadata.version
        original_metadata = metadata.metadata

        def distribution(name: str) -> metadata.Distribution:
            environment = _current()
            if environment is None or not environment.knows(name):
                return original_distribution(name)
            version = environment.version(name)
            if version is None:
                raise metadata.PackageNotFoundError(name)
            return _Distribution(name, version)

        def version(name: str) -> str:
            environment = _current()
            if environment is None or not environment.knows(name):
                return original_version(name)
            return distribution(name).version

        def metadata_of(name: str) -> Any:
            environment = _current()
            if environment is None or not environment.knows(name):
                return original_metadata(name)
            return distribution(name).metadata

        metadata.distribution = distribution  # type: ignore[assignment]
        metadata.version = version  # type: ignore[assignment]
        metadata.metadata = metadata_of  # type: ignore[assignment]
        _installed_hook = True
