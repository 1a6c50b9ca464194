"""Alert rules as Grafana evaluates them, run on the local engine from the generated provisioning file.

For one rule (as grafana/provisioning/alerting/rules.yaml holds it) at one instant:
1. the query's range is the evaluation time minus `relativeTimeRange` (pkg/services/ngalert/models/alert_query.go);
   its SQL is macro-expanded as Grafana's FlightSQL backend does (tests/grafana/expand.py) and run on DataFusion
   over the engine's tables (tests/grafana/sqlrun.py), Arrow as Grafana receives it;
2. a table-format answer becomes numbers as pkg/expr/converter.go makes them: zero rows is no data; otherwise the
   frame must be a "number table" (isNumberTable: exactly one numeric column, every other column a string, no
   time), one number per row labelled by its string columns (extractNumberSet, which requires each label value
   to be a string, so a null fails the evaluation);
3. reduce(last) passes numbers through (ReduceCommand.Execute), the threshold compares each (pkg/expr/
   threshold.go predicates, NaN never passes);
4. no data and errors become the rule's noDataState / execErrState.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import pyarrow as pa
import yaml

from grafana import datasources
from grafana.alerting import build
from grafana.alerting.settings import DEFAULTS, Settings
from tests.engine import LocalEngine
from tests.grafana.expand import TimeRange, expand_sql
from tests.grafana.sqlrun import run

__all__ = ["Evaluation", "evaluate", "numbers", "rule", "rules", "sql_of"]

# Grafana's default intervalMs for alert queries (alert_query.go defaultIntervalMS).
INTERVAL_MS = 1000

PREDICATES: dict[str, Callable[[float, list[float]], bool]] = {
    "gt": lambda v, p: v > p[0], "lt": lambda v, p: v < p[0], "eq": lambda v, p: v == p[0],
    "ne": lambda v, p: v != p[0], "gte": lambda v, p: v >= p[0], "lte": lambda v, p: v <= p[0],
    "within_range": lambda v, p: p[0] < v < p[1], "outside_range": lambda v, p: v < p[0] or v > p[1],
    "within_range_included": lambda v, p: p[0] <= v <= p[1],
    "outside_range_included": lambda v, p: v <= p[0] or v >= p[1],
}


@dataclass
class Evaluation:
    """Normal, Alerting, NoData or Error; the instances that fire (their labels) and every number seen."""

    state: str
    firing: list[dict[str, str]] = field(default_factory=list)
    values: list[tuple[dict[str, str], float]] = field(default_factory=list)
    error: str = ""

    def firing_for(self, label: str) -> list[str]:
        return sorted(item.get(label, "") for item in self.firing)


@cache
def _rules_text(overrides: tuple[tuple[str, float], ...]) -> str:
    settings = Settings(**dict(overrides)) if overrides else DEFAULTS
    return build.generated(settings)[build.RULES_FILE]


def rules(settings: Settings = DEFAULTS) -> dict[str, dict[str, Any]]:
    """uid -> rule of the generated rules file (file format), for these settings."""
    changed = tuple(sorted((key, value) for key, value in vars(settings).items() if getattr(DEFAULTS, key) != value))
    content = yaml.safe_load(_rules_text(changed))
    return {item["uid"]: item for group in content["groups"] for item in group["rules"]}


def rule(uid: str, settings: Settings = DEFAULTS) -> dict[str, Any]:
    return rules(settings)[uid]


def _query(item: dict[str, Any], ref: str) -> dict[str, Any]:
    return next(query for query in item["data"] if query["refId"] == ref)


def _datasource(uid: str) -> datasources.Datasource:
    return next(source for source in datasources.ALL if source.uid == uid)


def is_sql(item: dict[str, Any]) -> bool:
    """Whether the rule queries InfluxDB 3 with SQL (the others are Flux on InfluxDB 2)."""
    return _datasource(_query(item, "A")["datasourceUid"]).language == datasources.SQL_LANGUAGE


def time_range(item: dict[str, Any], at: datetime) -> TimeRange:
    span = _query(item, "A")["relativeTimeRange"]
    return TimeRange(at - timedelta(seconds=span["from"]), at - timedelta(seconds=span["to"]))


def seen_from(moment: datetime) -> datetime:
    """The first evaluation instant whose range holds a point stamped at `moment`. Grafana writes a SQL rule's range
    in whole seconds ($__timeFilter: `time <= '<to, RFC 3339>'`, sqlutil's macros), so a point stamped later in the
    evaluation's own second is outside it until the next second."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


def sql_of(item: dict[str, Any], at: datetime) -> tuple[str, str]:
    """(database, SQL as InfluxDB 3 receives it) of a SQL rule evaluated at `at`."""
    query = _query(item, "A")
    source = _datasource(query["datasourceUid"])
    assert source.language == datasources.SQL_LANGUAGE, f"{item['uid']} is not a SQL rule"
    return str(source.database), expand_sql(query["model"]["rawSql"], time_range(item, at), INTERVAL_MS)


def numbers(table: pa.Table) -> list[tuple[dict[str, str], float]]:
    """A table-format answer as Grafana's expression engine reads it (converter.go), or AssertionError saying why
    Grafana would not alert on it."""
    kinds = {column.name: column.type for column in table.schema}
    numeric = [name for name, kind in kinds.items() if pa.types.is_integer(kind) or pa.types.is_floating(kind)]
    strings = [name for name, kind in kinds.items() if pa.types.is_string(kind) or pa.types.is_large_string(kind)]
    others = set(kinds) - set(numeric) - set(strings)
    assert len(numeric) == 1 and not others, (
        f"columns {kinds}: Grafana alerts on one numeric column per row (labels: string columns, no time); "
        "this frame would be dropped as 'missing numeric fields' or read as a time series")
    found = []
    for row in table.to_pylist():
        labels = {}
        for name in strings:
            assert row[name] is not None, f"a null {name!r}: extractNumberSet fails on a label that is not a string"
            labels[name] = row[name]
        value = row[numeric[0]]
        found.append((labels, math.nan if value is None else float(value)))
    return found


def evaluate(item: dict[str, Any], engine: LocalEngine | None, at: datetime) -> Evaluation:
    """One evaluation of a SQL rule at `at`; `engine=None` is a database that does not answer."""
    database, sql = sql_of(item, at)
    try:
        if engine is None:
            raise ConnectionError("flightsql: connection refused")
        answer = run(engine.database(database), sql)
    except Exception as exc:  # any failure of the query is the rule's error state
        state = item["execErrState"]
        return Evaluation("Alerting" if state == "Alerting" else state if state != "OK" else "Normal",
                          [{}] if state == "Alerting" else [], error=str(exc))
    if answer.num_rows == 0:
        state = item["noDataState"]
        return Evaluation("Alerting" if state == "Alerting" else "NoData" if state == "NoData" else "Normal",
                          [{}] if state == "Alerting" else [])
    values = numbers(answer)
    evaluator = _query(item, "C")["model"]["conditions"][0]["evaluator"]
    test = PREDICATES[evaluator["type"]]
    firing = [labels for labels, value in values if not math.isnan(value) and test(value, evaluator["params"])]
    return Evaluation("Alerting" if firing else "Normal", firing, values)
