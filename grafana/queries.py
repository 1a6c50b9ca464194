"""Panel queries for Grafana's core InfluxDB datasource, which grafana-foundation-sdk has no builder for.

The SDK's extension point is a `Dataquery` variant with `to_json`/`from_json`, registered for the datasource
type so that `Dashboard.from_json` decodes our targets back into this class (the tests round-trip every
dashboard through the SDK's models). The JSON is what Grafana's InfluxDB datasource saves and sends:
- SQL mode: `rawSql` and `format` ("time_series" or "table"); the backend expands the macros (`$__timeFilter`,
  `$__dateBin`, ...) and, for time_series, turns a long frame (string columns) into one series per value.
- Flux mode: `query`; the backend replaces `v.timeRangeStart`, `v.timeRangeStop`, `v.windowPeriod`.
"""

from __future__ import annotations

from typing import Any, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants

from grafana.datasources import FLUX_LANGUAGE, PLUGIN_TYPE, SQL_LANGUAGE, Datasource

__all__ = ["TABLE", "TIME_SERIES", "FluxQuery", "InfluxQuery", "SqlQuery", "register"]

TIME_SERIES, TABLE = "time_series", "table"


class InfluxQuery(cogvariants.Dataquery):
    """One target of an InfluxDB panel, SQL or Flux; unknown keys are kept so a round trip loses nothing."""

    def __init__(self, data: dict[str, Any]):
        self.data = dict(data)

    @property
    def ref_id(self) -> str:
        return str(self.data.get("refId", ""))

    @property
    def text(self) -> str:
        """The query text: `rawSql` for SQL, `query` for Flux."""
        return str(self.data.get("rawSql") or self.data.get("query") or "")

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(data)


def _target(ref_id: str, datasource: Datasource) -> dict[str, Any]:
    ref = datasource.ref()
    return {"refId": ref_id, "datasource": {"type": ref.type_val, "uid": ref.uid}}


class SqlQuery(cogbuilder.Builder[InfluxQuery]):
    """A SQL query in code mode, as the InfluxDB datasource's SQL editor saves it."""

    def __init__(self, datasource: Datasource, sql: str, *, ref_id: str = "A", fmt: str = TABLE):
        if datasource.language != SQL_LANGUAGE:
            raise ValueError(f"{datasource.uid} is a {datasource.language} datasource, not SQL")
        if fmt not in (TIME_SERIES, TABLE):
            raise ValueError(f"format must be {TIME_SERIES!r} or {TABLE!r}, not {fmt!r}")
        self._data = {**_target(ref_id, datasource), "editorMode": "code", "format": fmt, "rawQuery": True,
                      "rawSql": sql.strip()}

    def build(self) -> InfluxQuery:
        return InfluxQuery(self._data)


class FluxQuery(cogbuilder.Builder[InfluxQuery]):
    """A Flux query; its tables become Grafana frames as they are (one per group key)."""

    def __init__(self, datasource: Datasource, flux: str, *, ref_id: str = "A"):
        if datasource.language != FLUX_LANGUAGE:
            raise ValueError(f"{datasource.uid} is a {datasource.language} datasource, not Flux")
        self._data = {**_target(ref_id, datasource), "query": flux.strip()}

    def build(self) -> InfluxQuery:
        return InfluxQuery(self._data)


def register() -> None:
    """Teach the SDK's decoder our targets (idempotent); call before `Dashboard.from_json`."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(identifier=PLUGIN_TYPE,
                                                                     from_json_hook=InfluxQuery.from_json))
