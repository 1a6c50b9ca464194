"""The names the stack gives InfluxDB 3 databases and InfluxDB 2 buckets (the same name in both).

InfluxDB 3 Core's rule (influxdb3_server/src/http.rs `validate_db_name`, v3.10.1): ASCII, starting with a
letter or digit, then letters, digits, `_` and `-`, at most 511 characters (v3.6 allowed 64). A `/` would
separate a v1 retention policy; the stack never uses one. InfluxDB 2 only refuses a leading `_` (reserved for
system buckets) and `"` (tenant/service_bucket.go `validBucketName`), both already excluded here.
"""

from __future__ import annotations

import re

__all__ = ["DATABASE_NAME_MAX", "DATABASE_NAME_RULE", "database_name_problem"]

DATABASE_NAME_MAX = 511
DATABASE_NAME_RULE = (f"an ASCII letter or digit, then letters, digits, '_' or '-', at most {DATABASE_NAME_MAX} "
                      "characters (InfluxDB 3's rule)")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def database_name_problem(name: str) -> str | None:
    """Why `name` cannot be an InfluxDB 3 database (and InfluxDB 2 bucket) name, or None when it can."""
    if not name:
        return "is empty"
    if len(name) > DATABASE_NAME_MAX:
        return f"is {len(name)} characters long; at most {DATABASE_NAME_MAX}"
    if not _NAME.fullmatch(name):
        return f"must be {DATABASE_NAME_RULE}"
    return None
