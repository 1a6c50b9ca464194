"""The service's small persistent state under the state folder: cursors and the heartbeat.

Cursors remember where each scheduled job got to (the last simulated sensor tick, which bird files were
loaded) so a restarted container continues instead of starting over. The heartbeat file is touched by the
`run` loop; the container healthcheck (`python -m ingest health`) only checks its age.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["Cursors", "Heartbeat"]


class Cursors:
    """A JSON object in `<state>/cursors.json`, rewritten atomically on every change."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self._data = {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the cursor file {self.path}: {exc}") from exc

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(self._data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


class Heartbeat:
    def __init__(self, path: Path):
        self.path = Path(path)

    def beat(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{time.time():.0f}\n", encoding="utf-8")

    def age(self) -> float | None:
        """Seconds since the last beat, or None when there has been none."""
        try:
            return max(0.0, time.time() - self.path.stat().st_mtime)
        except FileNotFoundError:
            return None
