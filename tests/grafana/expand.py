"""What Grafana does to a saved InfluxDB query before the database sees it, so tests can run the same text.

Two steps, as in Grafana 11:
1. The frontend replaces template variables (`$name`, `${name}`, `${name:format}`; templateSrv's regex and
   format functions, e.g. `sqlstring` quotes each value and doubles its quotes) and leaves `$__interval` for the
   backend. Our dashboards always name the format, so the datasource's default formatting never applies.
2. The backend (pkg/tsdb/influxdb/fsql, grafana-plugin-sdk-go data/sqlutil) expands the SQL macros:
   `$__timeFilter(col)` -> `col >= '<from>' AND col <= '<to>'` (RFC 3339, seconds, UTC),
   `$__timeFrom`/`$__timeTo` -> `cast('<t>' as timestamp)`, `$__interval` -> `interval '<n> second'`,
   `$__dateBin(col)` -> `date_bin(interval '<n> second', col, timestamp '1970-01-01T00:00:00Z')`, with n the
   query's interval in whole seconds. The interval is the frontend's: max(min interval, roundInterval(range /
   max data points)), Grafana's rounding ladder below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

__all__ = [
    "MacroError", "TimeRange", "expand_flux", "expand_sql", "format_value", "go_duration", "grafana_interval",
    "interpolate", "interval_ms", "parse_duration_ms", "references", "resolve_time",
]

# templateSrv's variable regex (public/app/features/templating/template_srv.ts).
VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|[\]{}/]")
# rangeutil.roundInterval: (below this many ms, use this interval).
ROUND_LADDER = [
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
    (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
    (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
    (2700000, 1800000), (5400000, 3600000), (9000000, 7200000), (16200000, 10800000), (32400000, 21600000),
    (86400000, 43200000), (604800000, 86400000), (1814400000, 604800000), (3628800000, 2592000000),
]
YEAR_MS = 31536000000
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class MacroError(ValueError):
    """A macro Grafana would refuse (wrong argument count), or text left unexpanded."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def ms(self) -> int:
        return int((self.end - self.start) / timedelta(milliseconds=1))


# ---- step 1: template variables (frontend) -------------------------------------------------------------
def _escape_regex(value: str) -> str:
    return REGEX_SPECIAL.sub(lambda match: "\\" + match.group(0), value)


def format_value(values: Sequence[str], fmt: str) -> str:
    """One variable's selected values in one of Grafana's formats (formatRegistry)."""
    items = [str(value) for value in values]
    if fmt == "sqlstring":
        return ",".join("'" + item.replace("'", "''") + "'" for item in items)
    if fmt == "singlequote":
        return ",".join("'" + item.replace("'", "\\'") + "'" for item in items)
    if fmt in ("raw", "csv"):
        return ",".join(items)
    if fmt == "regex":
        escaped = [_escape_regex(item) for item in items]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt == "pipe":
        return "|".join(items)
    raise ValueError(f"format {fmt!r} is not emulated here")


def references(text: str) -> list[tuple[str, str | None]]:
    """Every variable reference in `text` as (name, format or None), built-ins (`$__...`) left out."""
    found = []
    for match in VARIABLE.finditer(text):
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if not name.startswith("__"):
            found.append((name, fmt))
    return found


def interpolate(text: str, values: Mapping[str, Sequence[str]]) -> str:
    """Replace the variables in `values` (name -> selected values); anything else stays as it is, as in
    templateSrv (unknown names and built-ins such as `$__timeFilter` are left for the backend)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name not in values:
            return match.group(0)
        fmt = match.group(3) or match.group(6)
        if fmt is None:
            raise ValueError(f"${{{name}}} has no format: the text would depend on the datasource's default")
        return format_value(values[name], fmt)

    return VARIABLE.sub(replace, text)


# ---- time range and interval (frontend) ----------------------------------------------------------------
def resolve_time(expression: str, now: datetime) -> datetime:
    """Grafana's relative times as our dashboards use them: `now`, `now-6h`, `now+1y` (units s m h d w M y)."""
    match = re.fullmatch(r"now(?:([+-])(\d+)([smhdwMy]))?", expression)
    if not match:
        return datetime.fromisoformat(expression.replace("Z", "+00:00"))
    if not match.group(1):
        return now
    sign = 1 if match.group(1) == "+" else -1
    amount = int(match.group(2)) * sign
    unit = match.group(3)
    offsets = {"s": pd.DateOffset(seconds=amount), "m": pd.DateOffset(minutes=amount),
               "h": pd.DateOffset(hours=amount), "d": pd.DateOffset(days=amount), "w": pd.DateOffset(weeks=amount),
               "M": pd.DateOffset(months=amount), "y": pd.DateOffset(years=amount)}
    return (pd.Timestamp(now) + offsets[unit]).to_pydatetime()


def parse_duration_ms(text: str) -> int:
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text)
    if not match:
        raise ValueError(f"not an interval: {text!r}")
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def interval_ms(time_range: TimeRange, max_data_points: int = 1000, min_interval: str | None = None) -> int:
    """The query's interval: Grafana's rounded range / max data points, never below the min interval."""
    raw = time_range.ms / max_data_points
    rounded = next((value for limit, value in ROUND_LADDER if raw < limit), YEAR_MS)
    low = parse_duration_ms(min_interval) if min_interval else 1
    return max(rounded, low)


# ---- step 2: SQL macros (backend) ----------------------------------------------------------------------
def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _macro_matches(sql: str, name: str) -> list[tuple[str, str]]:
    """sqlutil.getMacroMatches: each `$__name` with the text of its balanced parentheses, if any."""
    found = []
    for match in re.finditer(rf"\$__{name}\b", sql):
        rest = sql[match.start():]
        depth, arg_start, end = 0, 0, 0
        for index, char in enumerate(rest):
            if depth == 0 and end > 0:
                break
            if char == "(":
                depth += 1
                arg_start = arg_start or index + 1
            elif char == ")":
                if depth == 0:
                    end = 0
                    break
                depth -= 1
                end = index + 1
        if end == 0:
            end = match.end() - match.start()
        whole = rest[:end]
        found.append((whole, rest[arg_start:end - 1] if arg_start else ""))
    return found


def expand_sql(sql: str, time_range: TimeRange, interval: int) -> str:
    """The SQL InfluxDB 3 receives from Grafana's FlightSQL backend for this range and interval (ms)."""
    seconds = interval // 1000
    start, end = _rfc3339(time_range.start), _rfc3339(time_range.end)

    def one_arg(args: list[str], name: str) -> str:
        if len(args) != 1:
            raise MacroError(f"$__{name}: expected 1 argument, received {len(args)}")
        return args[0]

    macros = {
        "timeFilter": lambda args: f"{one_arg(args, 'timeFilter')} >= '{start}' AND {args[0]} <= '{end}'",
        "timeFrom": lambda args: f"cast('{start}' as timestamp)",
        "timeTo": lambda args: f"cast('{end}' as timestamp)",
        "interval": lambda args: f"interval '{seconds} second'",
        "dateBin": lambda args: (f"date_bin(interval '{seconds} second', {one_arg(args, 'dateBin')}, "
                                 "timestamp '1970-01-01T00:00:00Z')"),
        "dateBinAlias": lambda args: (f"date_bin(interval '{seconds} second', {one_arg(args, 'dateBinAlias')}, "
                                      f"timestamp '1970-01-01T00:00:00Z') as {args[0]}_binned"),
    }
    for name, render in macros.items():
        for whole, arg_text in _macro_matches(sql, name):
            args = [part.strip() for part in arg_text.split(",")] if arg_text else []
            sql = sql.replace(whole, render(args))
    leftover = re.findall(r"\$\w+|\$\{[^}]*\}", sql)
    if leftover:
        raise MacroError(f"left unexpanded: {', '.join(sorted(set(leftover)))}")
    if seconds <= 0 and "date_bin(interval '0 second'" in sql:
        raise MacroError("$__dateBin with an interval under 1 s bins by 0 seconds: set the panel's min interval")
    return sql


# ---- step 2 for Flux (backend) -------------------------------------------------------------------------
def go_duration(ms: int) -> str:
    """Go's time.Duration.String() of a whole number of milliseconds: 10s, 1m0s, 1h30m0s, 1.5s, 500ms."""
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}" + (f".{rest % 1000:03d}".rstrip("0") if rest % 1000 else "")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def grafana_interval(ms: int) -> str:
    """grafana-plugin-sdk-go backend/gtime FormatInterval: the largest whole unit of y (365 d), d, h, m, s, ms."""
    for unit, size in (("y", 31_536_000_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def _rfc3339_nano(moment: datetime) -> str:
    """Go's time.RFC3339Nano: fractional seconds without trailing zeros."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.astimezone(UTC).microsecond
    return text + (f".{micros:06d}".rstrip("0") if micros else "") + "Z"


_FLUX_VARIABLE = re.compile(r"([a-zA-Z]+)\.([a-zA-Z]+)")


def expand_flux(flux: str, time_range: TimeRange, interval: int, *, bucket: str = "", default_bucket: str = "",
                organization: str = "") -> str:
    """The Flux InfluxDB 2 receives from Grafana's backend (pkg/tsdb/influxdb/flux/macros.go): `v.timeRangeStart`,
    `v.timeRangeStop` (RFC 3339, nanoseconds), `v.windowPeriod` (Go duration text), `v.bucket`,
    `v.defaultBucket`, `v.organization` (quoted); then `$__interval_ms` and `$__interval`."""
    replacements = {"timeRangeStart": _rfc3339_nano(time_range.start), "timeRangeStop": _rfc3339_nano(time_range.end),
                    "windowPeriod": go_duration(interval), "bucket": f'"{bucket}"',
                    "defaultBucket": f'"{default_bucket}"', "organization": f'"{organization}"'}
    for whole, _, name in ((m.group(0), m.group(1), m.group(2)) for m in _FLUX_VARIABLE.finditer(flux)):
        if name in replacements:
            flux = flux.replace(whole, replacements[name])
    flux = flux.replace("$__interval_ms", str(interval)).replace("$__interval", grafana_interval(interval))
    return flux
