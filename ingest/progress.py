"""Progress for long loads: a tqdm bar with the rate on a terminal, a log line every few seconds otherwise
(the container's logs), so a user always sees that a big file is moving and how fast.

With `steps` (e.g. "windows" of a migration, whose total is known when its rows are not), the bar counts those
steps and its ETA follows them, while rows and rows/s are shown beside it."""

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
                 every: float = 10.0, on_update: Callable[[], None] | None = None, steps: str | None = None):
        self.description, self.unit, self.every = description, unit, every
        self.count = 0
        self.steps, self.done, self.total = steps, 0, total
        self.started = self._last = self._shown = time.monotonic()
        self._on_update = on_update
        use_bar = sys.stderr.isatty() if bar is None else bar
        self._bar = tqdm(total=total, desc=description, unit=steps or unit, unit_scale=steps is None,
                         dynamic_ncols=True, leave=False, file=sys.stderr) if use_bar else None

    def update(self, amount: int) -> None:
        self.count += amount
        now = time.monotonic()
        if self._bar is not None:
            if self.steps is None:
                self._bar.update(amount)
            elif now - self._shown >= 0.5:
                self._shown = now
                self._bar.set_postfix_str(f"{self.count:,} {self.unit}, {self._rate(now):,.0f} {self.unit}/s")
        if self._on_update is not None:
            self._on_update()
        if self._bar is None and now - self._last >= self.every:
            self._last = now
            text = f"{self.description}: {self.count:,} {self.unit} so far ({self._rate(now):,.0f} {self.unit}/s)"
            if self.steps is not None:
                text += f", {self.done:,}" + (f" of {self.total:,}" if self.total else "") + f" {self.steps}"
                eta = self.eta(now)
                if eta is not None:
                    text += f", about {_duration(eta)} to go"
            log.info("%s", text)

    def step(self, amount: int = 1) -> None:
        """`amount` more of the steps done."""
        self.done += amount
        if self._bar is not None and self.steps is not None:
            self._bar.update(amount)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the pace of the steps so far (None before the first, or without a total)."""
        if not self.total or not self.done:
            return None
        elapsed = (now if now is not None else time.monotonic()) - self.started
        return elapsed / self.done * max(self.total - self.done, 0)

    def _rate(self, now: float) -> float:
        return self.count / max(now - self.started, 1e-9)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
