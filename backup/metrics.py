"""The measurement every backup run writes, declared as plain data (no imports beyond the standard library).

The stack-health dashboard is derived from this declaration, and the tests check every point written against
it. One point per store per run, plus one with `store=all` for the run as a whole, written to the
`monitoring` bucket (InfluxDB 2, org INFLUXDB2_ORG) and the `monitoring` database (InfluxDB 3).
"""

from __future__ import annotations

MEASUREMENT = "backup_run"

# Tag key → the values it takes.
TAGS: dict[str, tuple[str, ...]] = {
    "store": ("all", "influxdb2", "influxdb3", "grafana"),
    "trigger": ("schedule", "manual"),
}

# Field key → (line-protocol type, unit, meaning).
FIELDS: dict[str, tuple[str, str, str]] = {
    "success": ("bool", "", "the store (or, for store=all, every store) was backed up and the set verified"),
    "duration_seconds": ("float", "s", "wall-clock time of the store's backup (or of the whole run)"),
    "bytes": ("int", "bytes", "bytes the store added to the set, as stored (compressed, encrypted)"),
    "files": ("int", "", "files the store added to the set"),
    "set": ("string", "", "name of the backup set (empty when no set was kept)"),
    "error": ("string", "", "why it failed, one line (empty on success)"),
}

# Where the points go: InfluxDB 2 bucket and InfluxDB 3 database of the same name (the stack's layout).
TARGET = "monitoring"

# How often a run happens is the schedule's business; the dashboard alerts on age of the last success.
STORE_ALL = "all"
