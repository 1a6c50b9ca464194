"""pytest fixtures of the local engine. Import them into a conftest.py to use them:
`from tests.engine.fixtures import engine, engine_clock  # noqa: F401`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.engine.engine import LocalEngine


class ManualClock:
    """A monotonic clock the test moves forward, for cache TTLs."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def engine_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def engine(engine_clock: ManualClock) -> Iterator[LocalEngine]:
    """A fresh local engine over the repository's plugins/ directory. `restart()` before and after: each test is a
    new server process for the plugins (their modules imported afresh, the cache empty); within a test a
    multi-file plugin is imported once, as on the server."""
    local = LocalEngine(clock=engine_clock)
    local.restart()
    yield local
    local.restart()
