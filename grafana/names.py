"""Names the dashboards query, looked up in the writers' own schema declarations.

Looking a name up (rather than typing it) makes `make dashboards` fail at once, naming the schema, when a
writer renames a field; the tests then check every generated query against the same declarations.
"""

from __future__ import annotations

from backup import metrics as backup_metrics
from ingest.schema import Field, Measurement
from plugins.stacklib.tables import TableSpec

__all__ = ["backup_field", "backup_tag", "column", "field", "tag", "title"]


def field(measurement: Measurement, name: str) -> Field:
    """A declared field of an ingest measurement."""
    for item in measurement.fields:
        if item.name == name:
            return item
    raise KeyError(f"ingest.schema: {measurement.name} has no field {name!r} (fields: "
                   f"{', '.join(measurement.field_names)})")


def tag(measurement: Measurement, name: str) -> str:
    if name not in measurement.tags:
        raise KeyError(f"ingest.schema: {measurement.name} has no tag {name!r} (tags: {', '.join(measurement.tags)})")
    return name


def column(spec: TableSpec, name: str) -> str:
    """A declared tag or field of a plugin table."""
    if name != "time" and name not in spec.tags and name not in spec.field_names:
        raise KeyError(f"plugins/stacklib/tables.py: {spec.name} has no column {name!r} "
                       f"(tags: {', '.join(spec.tags)}; fields: {', '.join(spec.field_names)})")
    return name


def backup_field(name: str) -> str:
    if name not in backup_metrics.FIELDS:
        raise KeyError(f"backup/metrics.py: {backup_metrics.MEASUREMENT} has no field {name!r}")
    return name


def backup_tag(name: str) -> str:
    if name not in backup_metrics.TAGS:
        raise KeyError(f"backup/metrics.py: {backup_metrics.MEASUREMENT} has no tag {name!r}")
    return name


def title(name: str) -> str:
    """`wind_speed` -> `Wind speed`; short or numbered words are formulas or codes: `co2` -> `CO2`."""
    words = [word.upper() if len(word) <= 2 or any(ch.isdigit() for ch in word) else word
             for word in name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]
