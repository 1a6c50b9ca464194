"""SQL window clauses per series that run on InfluxDB 3 Core 3.6.0 whatever order its scan returns rows in.

On Core 3.6.0 a window partitioned by a tag column can fail at execution with "Expects PARTITION BY expression to
be ordered" (DataFusion trusted an input order that a union of tiers, or of Parquet files and the buffer, does not
have; seen on the real bird study and on the statistics tables, benchmarks/bench_birds.py and bench_history.py).
Partitioning by an expression of the column (`concat(tag, '')`, the same value for every tag, since line protocol
has no empty tag values) makes the plan sort the rows itself. Dashboards (grafana/boards), alert rules and
plugins all build their windows here.
"""

from __future__ import annotations

__all__ = ["over", "partition_key"]


def partition_key(column: str) -> str:
    """A string column as a partition expression (see the module's docstring)."""
    return f"concat({column}, '')"


def over(*partition: str, order: str = "time", expressions: tuple[str, ...] = ()) -> str:
    """`OVER (PARTITION BY ... ORDER BY order)`: `partition` are string columns (tags), `expressions` SQL already
    computed per row (a bucket, a flag), partitioned by as they are."""
    keys = ", ".join([*expressions, *(partition_key(column) for column in partition)])
    return f"OVER (PARTITION BY {keys} ORDER BY {order})"
