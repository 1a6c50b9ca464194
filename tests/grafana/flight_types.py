"""The Arrow types InfluxDB 3 Core answers each dashboard and alert query with over Flight SQL, as recorded from the
real server (tests/integration: test_dashboards.py and test_alerts.py compare every answer with this record and
fail on a difference). Tier 1 checks that the local engine answers each query with the same types, so its
"Grafana reads this" checks speak for the real server.

`FLIGHT_TYPES_UPDATE=1` with the whole-stack tests rewrites the record from the answers instead of comparing (after a
server or dashboard change; review the diff). Recorded on Core v3.6.0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

__all__ = ["RECORD", "check", "recorded", "type_names"]

RECORD = Path(__file__).with_name("flight_types.json")


def type_names(table: pa.Table) -> dict[str, str]:
    return {field.name: str(field.type) for field in table.schema}


def recorded() -> dict[str, dict[str, str]]:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {}


def check(label: str, table: pa.Table) -> list[str]:
    """Problems of a real answer against the record (none, and the record updated, with FLIGHT_TYPES_UPDATE)."""
    found = type_names(table)
    if os.environ.get("FLIGHT_TYPES_UPDATE"):
        record = recorded()
        record[label] = found
        RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n")
        return []
    expected = recorded().get(label)
    if expected is None:
        return [f"{label}: not in {RECORD.name} (run the whole-stack tests with FLIGHT_TYPES_UPDATE=1)"]
    return [] if expected == found else [f"{label}: Flight SQL answered {found}, {RECORD.name} says {expected}"]
