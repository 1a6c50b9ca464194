"""Grafana unit ids for the units the writers declare (ingest.schema Field.unit, backup.metrics FIELDS).

Every declared unit must have an entry: a new unit in a schema fails the tests until it is mapped here.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import units

__all__ = ["BY_DECLARED", "grafana_unit"]

# Declared unit text -> Grafana unit id (ids from the SDK's units module, so a typo cannot slip through).
BY_DECLARED: dict[str, str] = {
    "": units.Short,
    "degrees": units.Degrees,
    "°": units.Degrees,
    "°C": units.Celsius,
    "%": units.Percent,
    "hPa": units.Hectopascals,
    "m/s": units.MetersPerSecond,
    "mm": units.Millimeter,
    "ppm": units.PartsPerMillion,
    "lx": units.Lux,
    "rows": units.Short,
    "requests": units.Short,
    "files": units.Short,
    "windows": units.Short,
    "bytes": units.BytesIEC,
    "rows/s": units.RowsPerSecond,
    "s": units.Seconds,
}


def grafana_unit(declared: str) -> str:
    """The Grafana unit id for a declared unit; KeyError names the unit that needs an entry above."""
    try:
        return BY_DECLARED[declared]
    except KeyError:
        raise KeyError(f"no Grafana unit for the declared unit {declared!r}: add it to grafana/units.py") from None
