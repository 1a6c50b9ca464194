"""The time range a query's filters give each table it scans, the way InfluxDB 3 Core derives it.

Core pushes a query's filters down to every table scan (influxdb3_query_executor/src/lib.rs `QueryTable`
declares all filters `Inexact`) and `ChunkFilter::new` (influxdb3_write/src/lib.rs, v3.10.1) derives
[lower, upper] bounds on `time` from them: each filter that is a BinaryExpr, Not or Between referring to
`time` goes through DataFusion's interval analysis, the resulting intervals are intersected (an empty
intersection is an error), and only TimestampNanosecond bounds count. Interval analysis derives column
bounds from comparisons and AND, never through OR; `now()`, `to_timestamp(...)` and casts of literals are
already folded into literals by the optimizer.

The local engine's tables are in-memory tables, which do not take filters: the optimizer leaves them in
Filter nodes right above each TableScan. This module reads the optimized logical plan (DataFusion's
`optimized_logical_plan()`), takes the conjuncts of the filters above each scan (and any the scan holds)
and applies the same rules, conservatively: whatever it cannot read gives no bound (all files count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["BoundsError", "ScanBounds", "scan_bounds", "scan_filters"]

_NANO_TIMESTAMP = re.compile(r"Timestamp\((ns|Nanosecond)\b")
_FLIP = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}
_NEGATE = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
_SKIPPED_SCHEMAS = {"information_schema", "system"}


class BoundsError(Exception):
    """influxdb3_write/src/lib.rs `ChunkFilter::new`: intervals of two filters that do not intersect."""


@dataclass(frozen=True)
class ScanBounds:
    table: str
    lower: int | None
    upper: int | None


def _variant(node: Any) -> tuple[str, Any]:
    variant = node.to_variant()
    return type(variant).__name__, variant


def _conjuncts(expr: Any) -> list[Any]:
    kind, variant = _variant(expr)
    if kind == "BinaryExpr" and variant.op().upper() == "AND":
        return _conjuncts(variant.left()) + _conjuncts(variant.right())
    return [expr]


def _time_literal(expr: Any) -> int | None:
    kind, variant = _variant(expr)
    if kind != "Literal" or not _NANO_TIMESTAMP.match(str(variant.data_type())):
        return None
    value = variant.value_timestamp()
    value = value[0] if isinstance(value, tuple) else value
    return None if value is None else int(value)


def _is_time(expr: Any) -> bool:
    kind, variant = _variant(expr)
    return kind == "Column" and variant.name() == "time"


def _comparison(op: str, left: Any, right: Any) -> tuple[int | None, int | None] | None:
    if op not in _FLIP:
        return None
    if _is_time(left):
        value = _time_literal(right)
    elif _is_time(right):
        value, op = _time_literal(left), _FLIP[op]
    else:
        return None
    if value is None:
        return None
    # DataFusion closes open intervals of discrete types: `time > x` is [x + 1, +inf).
    return {">": (value + 1, None), ">=": (value, None), "<": (None, value - 1), "<=": (None, value),
            "=": (value, value)}[op]


def _bounds(expr: Any) -> tuple[int | None, int | None] | None:
    kind, variant = _variant(expr)
    if kind == "BinaryExpr":
        return _comparison(variant.op(), variant.left(), variant.right())
    if kind == "Not":
        inner_kind, inner = _variant(variant.expr())
        if inner_kind == "BinaryExpr" and inner.op() in _NEGATE:
            return _comparison(_NEGATE[inner.op()], inner.left(), inner.right())
        return None
    if kind == "Between" and not variant.negated() and _is_time(variant.expr()):
        low, high = _time_literal(variant.low()), _time_literal(variant.high())
        if low is None and high is None:
            return None
        return low, high
    return None


def _intersect(filters: list[Any]) -> tuple[int | None, int | None]:
    lower: int | None = None
    upper: int | None = None
    found = False
    for expr in (part for item in filters for part in _conjuncts(item)):
        try:
            bounds = _bounds(expr)
        except Exception:  # an expression this reader does not know: no bound, like a failed analysis
            bounds = None
        if bounds is None:
            continue
        low, high = bounds
        if found and ((low is not None and upper is not None and low > upper)
                      or (high is not None and lower is not None and high < lower)):
            raise BoundsError("provided filters on time column did not produce a valid set of boundaries")
        found = True
        lower = low if lower is None else (lower if low is None else max(lower, low))
        upper = high if upper is None else (upper if high is None else min(upper, high))
    return lower, upper


def scan_bounds(plan: Any) -> list[ScanBounds]:
    """Every user-table scan of an optimized logical plan with the time bounds its filters give it."""
    found: list[ScanBounds] = []

    def walk(node: Any, filters: list[Any]) -> None:
        kind, variant = _variant(node)
        if kind == "Filter":
            below = node.inputs()[0]
            below_kind = type(below.to_variant()).__name__
            pending = [*filters, variant.predicate()]
            walk(below, pending if below_kind in ("Filter", "TableScan") else [])
            return
        if kind == "TableScan":
            _, schema, table = variant.fqn()
            if schema not in _SKIPPED_SCHEMAS:
                lower, upper = _intersect([*filters, *variant.filters()])
                found.append(ScanBounds(table, lower, upper))
            return
        for child in node.inputs():
            walk(child, [])

    walk(plan, [])
    return found


def _string_equalities(filters: list[Any], column: str) -> list[str]:
    found = []
    for expr in (part for item in filters for part in _conjuncts(item)):
        kind, variant = _variant(expr)
        if kind != "BinaryExpr" or variant.op() != "=":
            continue
        left_kind, left = _variant(variant.left())
        right_kind, right = _variant(variant.right())
        if left_kind == "Column" and left.name() == column and right_kind == "Literal":
            value = right.value_string()
            if value is not None:
                found.append(value)
    return found


def scan_filters(plan: Any, column: str = "table_name") -> list[tuple[str | None, str, list[str]]]:
    """(schema, table, string literals of `<column> = '<literal>'` filters) of every scan: what a system table
    finds in the filters pushed down to it (influxdb3_system_tables/src/lib.rs `find_table_name_in_filter`)."""
    found: list[tuple[str | None, str, list[str]]] = []

    def walk(node: Any, filters: list[Any]) -> None:
        kind, variant = _variant(node)
        if kind == "Filter":
            below = node.inputs()[0]
            pending = [*filters, variant.predicate()]
            walk(below, pending if type(below.to_variant()).__name__ in ("Filter", "TableScan") else [])
            return
        if kind == "TableScan":
            _, schema, table = variant.fqn()
            found.append((schema, table, _string_equalities([*filters, *variant.filters()], column)))
            return
        for child in node.inputs():
            walk(child, [])

    walk(plan, [])
    return found
