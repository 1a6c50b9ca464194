"""Data generated in the providers' real formats, for the ingest tests (here and under Docker)."""

from __future__ import annotations

MOVEBANK_HEADER = ["event-id", "visible", "timestamp", "location-long", "location-lat", "bar:barometric-pressure",
                   "external-temperature", "gps:dop", "gps:satellite-count", "gps-time-to-fix", "ground-speed",
                   "heading", "height-above-msl", "import-marked-outlier", "location-error-numerical",
                   "manually-marked-outlier", "vertical-error-numerical", "sensor-type",
                   "individual-taxon-canonical-name", "tag-local-identifier", "individual-local-identifier",
                   "study-name"]
STUDY = "O_ASSEN - Eurasian oystercatchers (Haematopus ostralegus, Haematopodidae) breeding in Assen (the Netherlands)"


def movebank_row(index: int, *, individual: str = "5515851", **overrides: str) -> dict[str, str]:
    """One fix as the Movebank website exports it (values as text)."""
    minute = index * 7
    row = {
        "event-id": str(20432407608 + index), "visible": "true",
        "timestamp": f"2018-05-{9 + minute // 1440:02d} {minute // 60 % 24:02d}:{minute % 60:02d}:05.000",
        "location-long": f"{6.5815293 + index * 1e-4:.7f}", "location-lat": f"{53.0082323 - index * 1e-4:.7f}",
        "bar:barometric-pressure": "", "external-temperature": f"{30 + index % 7}.5", "gps:dop": "3.2",
        "gps:satellite-count": str(5 + index % 4), "gps-time-to-fix": "7.9",
        "ground-speed": "" if index % 11 == 0 else f"{0.45 + index / 100:.3f}", "heading": f"{(index * 37) % 360}.25",
        "height-above-msl": "5.0", "import-marked-outlier": "false", "location-error-numerical": "5.3",
        "manually-marked-outlier": "false", "vertical-error-numerical": "8.6", "sensor-type": "gps",
        "individual-taxon-canonical-name": "Haematopus ostralegus", "tag-local-identifier": "5642",
        "individual-local-identifier": individual, "study-name": STUDY,
    }
    row.update(overrides)
    return row


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def movebank_csv(rows: list[dict[str, str] | str], *, header: list[str] | None = None) -> bytes:
    """CRLF lines, text columns quoted, the rest bare, exactly like the Movebank export. A str row is verbatim."""
    names = header or MOVEBANK_HEADER
    quoted = {"sensor-type", "individual-taxon-canonical-name", "tag-local-identifier",
              "individual-local-identifier", "study-name"}
    lines = [",".join(names)]
    for row in rows:
        if isinstance(row, str):
            lines.append(row)
            continue
        lines.append(",".join(_quote(row.get(name, "")) if name in quoted else row.get(name, "") for name in names))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")
