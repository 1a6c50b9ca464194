"""Movebank tracking data -> `bird_fixes`: CSV exports (website, plain or gzip, path or URL) and the REST API.

Website exports use hyphenated headers (`location-lat`, `individual-local-identifier`, `gps:satellite-count`),
the REST API underscored ones; both are normalized to `location_lat`, `gps_satellite_count`. Tags: species,
individual, tag, sensor type, study. Fields: lat, lon, the flags `visible` and `outlier` (fixes marked as
outliers or not visible are kept and marked, never dropped), and every extra numeric column (ground speed,
heading, height, temperature, ...) as a float64 field named after the column. Timestamps are UTC.

A row is quarantined (with its line and reason) when its timestamp does not parse, a coordinate is missing,
not a number or out of range, a flag is neither true nor false, or an extra numeric column holds text. A column
whose first values are text (e.g. an `eobs_status` of "A") is not loaded at all, which is logged once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.csvreader import CsvBlock, CsvFile
from ingest.download import Http
from ingest.lineprotocol import LineEncoder
from ingest.schema import BIRD_FIXES
from ingest.sources import Chunk, SourceError
from ingest.sources.parse import Verdicts, column_kind, normalize_name, parse_bools, parse_floats, parse_times

__all__ = ["API_URL", "DEFAULT_URLS", "MovebankApi", "MovebankFile"]

log = logging.getLogger("ingest.birds")

# The public CC0 O_ASSEN study (Eurasian oystercatchers breeding in Assen, NL), as published by INBO's movepub.
DEFAULT_URLS = (
    "https://raw.githubusercontent.com/inbo/movepub/main/inst/extdata/o_assen/O_ASSEN-gps-2018.csv.gz",
    "https://raw.githubusercontent.com/inbo/movepub/main/inst/extdata/o_assen/O_ASSEN-gps-2019.csv.gz",
)
API_URL = "https://www.movebank.org/movebank/service/direct-read"

TAG_SOURCES = {"species": "individual_taxon_canonical_name", "individual": "individual_local_identifier",
               "tag": "tag_local_identifier", "sensor_type": "sensor_type", "study": "study_name"}
REQUIRED = {"timestamp": "timestamp", "location_lat": "location-lat", "location_long": "location-long"}
# Columns that are identifiers or bookkeeping, not measurements.
NOT_MEASUREMENTS = {"event_id", "visible", "timestamp", "location_lat", "location_long", *TAG_SOURCES.values(),
                    "individual_id", "deployment_id", "tag_id", "study_id", "sensor_type_id", "update_ts",
                    "study_local_timestamp", "comments", "time"}
RESERVED = {*BIRD_FIXES.tags, *BIRD_FIXES.field_names}


class MovebankFile:
    """One Movebank CSV (export or API download) as `bird_fixes` chunks."""

    def __init__(self, csv_file: CsvFile, *, sensor_types: Mapping[str, str] | None = None,
                 study_name: str | None = None):
        self.csv = csv_file
        self.label = csv_file.label
        self.sensor_types = dict(sensor_types or {})
        self.study_name = study_name
        self.columns = {normalize_name(raw): raw for raw in csv_file.columns if normalize_name(raw)}
        missing = [spelled for name, spelled in REQUIRED.items() if name not in self.columns]
        if missing:
            raise SourceError(f"{self.label}: not a Movebank table: no {', '.join(missing)} column "
                              f"(the header has: {', '.join(csv_file.columns)[:300]})")
        self.outlier_columns = [name for name in self.columns if name.endswith("_outlier")]
        self.extras: dict[str, str | None] = {
            name: None for name in self.columns
            if name not in NOT_MEASUREMENTS and name not in RESERVED and name not in self.outlier_columns}

    def chunks(self) -> Iterator[Chunk]:
        for block in self.csv.blocks():
            yield self._chunk(block)

    def _column(self, table: pa.Table, name: str) -> pa.Array:
        return table.column(self.columns[name]).combine_chunks()

    def _chunk(self, block: CsvBlock) -> Chunk:
        table = block.table
        verdicts = Verdicts(table.num_rows)

        def raw(name: str):
            return lambda row: table.column(self.columns[name])[row].as_py()

        times, bad_time = parse_times(self._column(table, "timestamp"))
        verdicts.add(bad_time, lambda row: f"timestamp {raw('timestamp')(row)!r} is not a date and time"
                     if raw("timestamp")(row).strip() else "timestamp is empty")
        coordinates = {}
        for name, limit in (("location_lat", 90.0), ("location_long", 180.0)):
            values, bad = parse_floats(self._column(table, name))
            spelled = REQUIRED[name]
            verdicts.add(bad, lambda row, n=name, s=spelled: f"{s} {raw(n)(row)!r} is not a number")
            verdicts.add(np.isnan(values), f"{spelled} is empty (no position)")
            with np.errstate(invalid="ignore"):
                verdicts.add(np.abs(values) > limit,
                             lambda row, v=values, s=spelled, lim=limit: f"{s} {v[row]} is outside ±{lim:g}")
            coordinates[name] = values

        outlier = None
        for name in self.outlier_columns:
            flags, bad = parse_bools(self._column(table, name))
            verdicts.add(bad, lambda row, n=name: f"{self.columns[n]} {raw(n)(row)!r} is not true or false")
            marked = np.asarray(pc.fill_null(flags, False).to_numpy(zero_copy_only=False), dtype=bool)
            outlier = marked if outlier is None else outlier | marked
        visible = None
        if "visible" in self.columns:
            flags, bad = parse_bools(self._column(table, "visible"))
            verdicts.add(bad, lambda row: f"visible {raw('visible')(row)!r} is not true or false")
            visible = flags
            if outlier is not None:
                visible = pc.if_else(pc.is_null(flags), pa.array(~outlier), flags)
        elif outlier is not None:
            visible = pa.array(~outlier)

        extras = {}
        for name, kind in list(self.extras.items()):
            if kind == "text":
                continue
            values, bad = parse_floats(self._column(table, name))
            if kind is None:
                kind = self.extras[name] = column_kind(values, bad)
                if kind is None:
                    continue  # still undecided: no values yet
                if kind == "text":
                    example = raw(name)(int(np.flatnonzero(bad)[0]))
                    log.info("%s: column %r holds text (e.g. %r); it is not loaded", self.label, self.columns[name],
                             example)
                    continue
            verdicts.add(bad, lambda row, n=name: f"{self.columns[n]} {raw(n)(row)!r} is not a number")
            extras[name] = values

        good = verdicts.good
        data: dict[str, pa.Array] = {"time": pa.array(times[good], pa.int64())}
        for tag, source in TAG_SOURCES.items():
            data[tag] = self._tag(table, tag, source, good)
        data["lat"] = pa.array(coordinates["location_lat"][good])
        data["lon"] = pa.array(coordinates["location_long"][good])
        if visible is not None:
            data["visible"] = visible.take(pa.array(good))
        if outlier is not None:
            data["outlier"] = pa.array(outlier[good])
        for name, values in extras.items():
            data[name] = pa.array(values[good])
        out = pa.table(data)
        fields = [name for name in out.column_names if name not in ("time", *BIRD_FIXES.tags)]
        rejects: list[tuple[int | None, str, object]] = [(line, reason, text) for line, reason, text in block.invalid]
        if verdicts.reasons:
            rows = [row for row, _ in verdicts.items()]
            lines = block.lines(np.asarray(rows)).tolist()
            rejects += [(line, reason, _record(table, row)) for line, (row, reason) in
                        zip(lines, verdicts.items(), strict=True)]
        rejects.sort(key=lambda item: item[0] or 0)
        return Chunk(table=out, encoder=LineEncoder(BIRD_FIXES.name, BIRD_FIXES.tags, fields), input=self.label,
                     rows_read=table.num_rows + len(block.invalid), rejects=rejects,
                     lines=lambda rows: block.lines(good[rows]), record=lambda row: _record(table, int(good[row])))

    def _tag(self, table: pa.Table, tag: str, source: str, good: np.ndarray) -> pa.Array:
        if source in self.columns:
            return pc.utf8_trim_whitespace(self._column(table, source)).take(pa.array(good))
        if tag == "sensor_type" and "sensor_type_id" in self.columns:
            ids = pc.utf8_trim_whitespace(self._column(table, "sensor_type_id")).take(pa.array(good))
            return pa.array([self.sensor_types.get(value, value or None) for value in ids.to_pylist()], pa.string())
        if tag == "study" and self.study_name:
            return pa.array([self.study_name] * len(good), pa.string())
        return pa.nulls(len(good), pa.string())


def _record(table: pa.Table, row: int) -> dict[str, object]:
    return table.slice(row, 1).to_pylist()[0]


class MovebankApi:
    """A study's event data through Movebank's REST API (`direct-read`), with the license-terms step.

    Studies whose owners require it answer the first download with their license terms (and the header
    `accept-license: true`). The terms are accepted only when the user said so (`accept_license`), by repeating
    the request with the MD5 of the terms in the same session, as Movebank documents.
    """

    def __init__(self, http: Http, study_id: int, *, username: str | None = None, password: str | None = None,
                 accept_license: bool = False, url: str = API_URL):
        self.http, self.study_id, self.url = http, study_id, url
        self.auth = (username, password) if username else None
        self.accept_license = accept_license
        self.label = f"Movebank study {study_id}"

    def _table(self, what: str, **params: object) -> list[dict[str, str]]:
        response = self.http.get(self.url, f"{self.label}: {what}", params=params, auth=self.auth)
        self._check(response.status_code, response.text)
        return list(csv.DictReader(io.StringIO(response.text)))

    def _check(self, status: int, text: str) -> None:
        if status in (401, 403):
            raise SourceError(f"{self.label}: Movebank refused the credentials ({status}); check MOVEBANK_USERNAME "
                              "and MOVEBANK_PASSWORD")
        if status != 200:
            raise SourceError(f"{self.label}: Movebank answered {status}: {text[:200]!r}")
        if "No data available" in text[:300]:
            raise SourceError(f"{self.label}: Movebank says no data is available to this user (no download "
                              "permission for the study)")

    def fetch(self, folder: Path) -> MovebankFile:
        """Download the study's events (all attributes) and return them as a MovebankFile."""
        studies = self._table("study", entity_type="study", study_id=self.study_id)
        study_name = studies[0].get("name") if studies else None
        sensor_types = {row["id"]: row.get("external_id") or row.get("name", "")
                        for row in self._table("sensor types", entity_type="tag_type") if row.get("id")}
        params: dict[str, object] = {"entity_type": "event", "study_id": self.study_id, "attributes": "all"}
        what = f"{self.label}: events"
        response = self.http.get(self.url, what, params=params, auth=self.auth, stream=True)
        if response.headers.get("accept-license", "").lower() == "true":
            terms = response.content
            if not self.accept_license:
                raise SourceError(
                    f"{self.label} requires accepting its license terms before download: "
                    f"{_plain(terms)[:400]!r}. Read them in full on movebank.org, then set "
                    "MOVEBANK_ACCEPT_LICENSE=true (or pass --accept-license) to accept them through the API.")
            log.info("%s: accepting the study's license terms (md5 of the terms sent back, as Movebank asks)",
                     self.label)
            params["license-md5"] = hashlib.md5(terms).hexdigest()  # Movebank's protocol, not security
            response = self.http.get(self.url, what, params=params, auth=self.auth, stream=True)
            if response.headers.get("accept-license", "").lower() == "true":
                raise SourceError(f"{self.label}: Movebank did not accept the license confirmation")
        if response.status_code != 200:
            self._check(response.status_code, response.text)
        if "html" in response.headers.get("Content-Type", ""):
            text = _plain(response.content)
            self._check(200, text)
            raise SourceError(f"{self.label}: Movebank answered with a web page, not CSV: {text[:200]!r}")
        path = self.http.save(response, f"{self.url}/study-{self.study_id}.csv", folder, what)
        return MovebankFile(CsvFile(path, label=self.label), sensor_types=sensor_types, study_name=study_name)


def _plain(html: bytes) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.decode("utf-8", "replace"))).strip()
