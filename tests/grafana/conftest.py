"""Fixtures of the dashboard tests: one local engine filled with every table the dashboards read."""

from __future__ import annotations

import pytest

from tests.grafana.data import StackData, build


@pytest.fixture(scope="session")
def stack_data() -> StackData:
    """Telemetry in the declared shapes plus the plugins' own output (two Prophet runs): built once, read only."""
    return build()
