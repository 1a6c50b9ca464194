"""Progress for long loads: a tqdm bar with the rate on a terminal, a log line every few seconds otherwise
(the container's logs), so a user always sees that a big file is moving and how fast."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

__all__ = ["Progress"]

log = logging.getLogger("ingest.progress")


class Progress:
    def __init__(self, description: str, *, unit: str = "rows", total: int | None = None, bar: bool | None = None,
                 every: float = 10.0, on_update: Callable[[], None] | None = None):
        self.description, self.unit, self.every = description, unit, every
        self.count = 0
        self.started = self._last = time.monotonic()
        self._on_update = on_update
        use_bar = sys.stderr.isatty() if bar is None else bar
        self._bar = tqdm(total=total, desc=description, unit=unit, unit_scale=True, dynamic_ncols=True,
                         leave=False, file=sys.stderr) if use_bar else None

    def update(self, amount: int) -> None:
        self.count += amount
        if self._bar is not None:
            self._bar.update(amount)
        now = time.monotonic()
        if self._on_update is not None:
            self._on_update()
        if self._bar is None and now - self._last >= self.every:
            self._last = now
            rate = self.count / max(now - self.started, 1e-9)
            log.info("%s: %s %s so far (%s %s/s)", self.description, f"{self.count:,}", self.unit,
                     f"{rate:,.0f}", self.unit)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
