"""The engine's in-memory cache, as plugins see it through `influxdb3_local.cache`.

Matched to InfluxDB 3's `PyCache`: `put(key, value, ttl=None, use_global=None)`, `get(key, default=None,
use_global=None)`, `delete(key, use_global=None) -> bool`. Values are stored by reference (a plugin may
mutate a cached object in place), `ttl` is seconds (float) from the put, an expired key reads as missing,
each trigger has its own namespace and `use_global=True` reads and writes one namespace shared by all
triggers. Nothing survives `CacheStore.clear()`, which is what a server restart does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CacheStore", "PluginCache"]

_GLOBAL = ("global",)


class CacheStore:
    """Every namespace of one engine; `clock` returns seconds (monotonic) and is replaceable in tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._namespaces: dict[tuple, dict[str, tuple[Any, float | None]]] = {}

    def put(self, namespace: tuple, key: str, value: Any, ttl: float | None) -> None:
        if ttl is not None:
            ttl = float(ttl)
            if not math.isfinite(ttl) or ttl < 0:
                raise ValueError(f"cannot convert float seconds to Duration: {ttl}")
        expires = None if ttl is None else self.clock() + ttl
        self._namespaces.setdefault(namespace, {})[str(key)] = (value, expires)

    def get(self, namespace: tuple, key: str) -> tuple[bool, Any]:
        entries = self._namespaces.get(namespace, {})
        if key not in entries:
            return False, None
        value, expires = entries[key]
        if expires is not None and expires <= self.clock():
            del entries[key]
            return False, None
        return True, value

    def delete(self, namespace: tuple, key: str) -> bool:
        return self._namespaces.get(namespace, {}).pop(key, None) is not None

    def drop_namespace(self, namespace: tuple) -> None:
        """influxdb3_py_api/src/cache.rs `drop_trigger_cache`: what stopping (disabling) a trigger does."""
        self._namespaces.pop(namespace, None)

    def clear(self) -> None:
        self._namespaces.clear()


class PluginCache:
    """What `influxdb3_local.cache` is for one trigger."""

    def __init__(self, store: CacheStore, trigger: tuple[str, str]):
        self._store = store
        self._local = ("trigger", *trigger)

    def _namespace(self, use_global: bool | None) -> tuple:
        return _GLOBAL if use_global else self._local

    def put(self, key: str, value: Any, ttl: float | None = None, use_global: bool | None = None) -> None:
        self._store.put(self._namespace(use_global), key, value, ttl)

    def get(self, key: str, default: Any = None, use_global: bool | None = None) -> Any:
        found, value = self._store.get(self._namespace(use_global), key)
        return value if found else default

    def delete(self, key: str, use_global: bool | None = None) -> bool:
        return self._store.delete(self._namespace(use_global), key)
