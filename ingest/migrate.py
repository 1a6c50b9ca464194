"""`python -m ingest migrate`: move a bucket from InfluxDB 2 to an InfluxDB 3 database — streamed, resumable and
verified.

1. **Plan.** The bucket's measurements, tag keys and field types come from InfluxDB 2 (ingest/sources/
   influxdb2.py), the target's tables and columns from InfluxDB 3. What cannot move as it is stops the run
   before anything is written, each with what to do: a field with another type in some shards (InfluxDB 3
   keeps one type per column), a tag and a field of one name (one column in InfluxDB 3), a name InfluxDB 3 or
   the line protocol refuses, a table past Core's 500 columns, more than Core's 2,000 tables, a new database
   past Core's 5, a column InfluxDB 3 already has with another type. Then InfluxDB 2 counts each field's values
   per window (InfluxQL): only windows that hold data are read.
2. **Move.** One window at a time (`--window`, 1d): the window's points from InfluxDB 2 as Flux annotated CSV,
   streamed and parsed into Arrow; encoded by the app's encoder and written by its InfluxDB 3 sink (retries,
   spool, refused lines kept in the rejects folder), up to INGEST_WRITES_IN_FLIGHT requests at once. What
   InfluxDB 3 already holds (a re-run, a resume after a crash) is read back per window and left out
   (ingest/stored.py), so running it twice writes nothing twice. A cursor per (bucket, database, measurement) in
   `<state>/migrate.json` records the end of the last window whose rows are written or spooled: it only moves
   when the writes in flight have settled, every few seconds; `--resume` continues from it.
3. **Verify.** Per measurement and window, each field's count of values in InfluxDB 2 (InfluxQL) and in
   InfluxDB 3 (SQL, a few windows per query so no query passes `--query-file-limit`), and a sample of points
   (`--sample`) read from both and compared value by value, with type. Differences are listed with what to
   do; exit code 1 when there are any (`--verify-only` checks without moving).

Exit codes as the other commands: 0 moved (and verified), 1 verification found differences, 2 a problem with
the bucket, the arguments or what cannot move, 3 a database refused us, 75 rows wait in the spool, 130
interrupted.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import requests

from common.names import database_name_problem
from ingest.arrowio import read_parquet
from ingest.config import IngestConfig
from ingest.lineprotocol import LineEncoder, check_name
from ingest.outputs import Outputs
from ingest.pipeline import load
from ingest.progress import Progress
from ingest.sinks import FatalSinkError
from ingest.sinks.influxdb3 import InfluxDB3Transport, with_port
from ingest.sources import Chunk, SourceError
from ingest.sources.influxdb2 import MAX_TIME, MIN_TIME, InfluxDB2Source, MeasurementSchema, flux_time, point_keys
from ingest.state import Cursors
from ingest.stats import RunSummary
from ingest.stored import StoredRows, sql_ident, sql_time

__all__ = ["MigrateOptions", "Migration", "Plan", "Verification", "parse_time"]

log = logging.getLogger("ingest.migrate")

# influxdb3/src/commands/serve.rs (v3.10.1): Core's catalog limits.
CORE_DATABASES, CORE_TABLES, CORE_COLUMNS = 5, 2000, 500
# influxdb3_catalog/src/catalog.rs RESERVED_COLUMN_NAMES: refused as tag or field names.
RESERVED_COLUMNS = ("time", "__chunk_order")
# influxql DataType names -> InfluxDB 3 column types as information_schema.columns spells them.
V3_TYPES = {"float": "Float64", "integer": "Int64", "unsigned": "UInt64", "string": "Utf8", "boolean": "Boolean"}
WINDOW_ROWS = 1_000_000  # a window with more rows is written in several chunks (each read back on its own)
READ_AHEAD = 2  # windows read from InfluxDB 2 at once
VERIFY_SPAN = 32  # windows per InfluxDB 3 count query at first; halved when Core's file limit refuses one
SAMPLE_WINDOWS = 8
SHOWN = 10  # differences listed in full (the rest counted)
_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?")


def parse_time(text: str, what: str) -> int:
    """`2024-01-31`, `2024-01-31T12:00:00Z`, `...T12:00:00.123456789+01:00` (UTC without an offset) or integer
    nanoseconds -> ns since the epoch; ValueError naming the option."""
    value = text.strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    match = _TIME.fullmatch(value)
    if not match:
        raise ValueError(f"{what} {text!r} is not a time like 2024-01-31, 2024-01-31T12:00:00Z or nanoseconds")
    day, clock, fraction, zone = match.groups()
    offset = "+00:00" if zone in (None, "Z") else zone
    try:
        moment = datetime.fromisoformat(f"{day}T{clock or '00:00'}{offset}")
    except ValueError as exc:
        raise ValueError(f"{what} {text!r}: {exc}") from None
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 10**9 + int((fraction or "").ljust(9, "0"))


@dataclass(frozen=True)
class MigrateOptions:
    bucket: str
    database: str
    start: int | None = None
    stop: int | None = None
    measurements: tuple[str, ...] = ()
    window: int = 86_400 * 10**9  # ns
    resume: bool = False
    verify: bool = True
    verify_only: bool = False
    sample: int = 1000
    skip_fields: frozenset[tuple[str, str]] = frozenset()
    skip_measurements: frozenset[str] = frozenset()
    checkpoint: float = 10.0  # seconds between cursor saves (each waits for the writes in flight)


@dataclass
class MeasurementPlan:
    schema: MeasurementSchema
    start: int
    stop: int
    counts: dict[int, dict[str, int]] = field(default_factory=dict)  # InfluxDB 2: window start -> field -> n
    done: int | None = None  # a resumed run: everything before this has landed
    new: bool = False  # InfluxDB 3 had no such table when the plan was made: nothing to read back

    def windows(self, every: int, *, resume: bool = True) -> list[tuple[int, int]]:
        """[start, stop) of each window with data, clipped to the range (and to the cursor when resuming)."""
        out = []
        for window in sorted(self.counts):
            begin = max(window, self.start, self.done if resume and self.done is not None else MIN_TIME)
            end = min(window + every, self.stop)
            if begin < end:
                out.append((begin, end))
        return out


@dataclass
class Plan:
    measurements: list[MeasurementPlan]
    problems: list[str]
    create_database: bool = False

    def window_count(self, every: int, *, resume: bool) -> int:
        """How many windows with data the move reads, over every measurement."""
        return sum(len(item.windows(every, resume=resume)) for item in self.measurements)


@dataclass
class Verification:
    """What the verification compared and what differed."""

    measurements: int = 0
    windows: int = 0
    values: int = 0
    sampled: int = 0
    counts: list[str] = field(default_factory=list)  # one line per (measurement, window, field) that differs
    points: list[str] = field(default_factory=list)  # one line per sampled point that differs
    unchecked: list[str] = field(default_factory=list)  # windows InfluxDB 3 would not count
    fewer: bool = False
    more: bool = False

    @property
    def ok(self) -> bool:
        return not (self.counts or self.points or self.unchecked)

    def text(self, bucket: str, database: str, rejects: str) -> str:
        head = (f"verify {bucket} -> {database}: {self.measurements} measurements, {self.windows:,} windows, "
                f"{self.values:,} values counted on both sides, {self.sampled:,} points compared value by value")
        if self.ok:
            return head + ": no difference"
        lines = [head + ":"]
        for title, items in (("counts that differ", self.counts), ("points that differ", self.points),
                             ("windows not counted", self.unchecked)):
            if items:
                lines.append(f"  {len(items):,} {title}:")
                lines += [f"    {item}" for item in items[:SHOWN]]
                if len(items) > SHOWN:
                    lines.append(f"    ... and {len(items) - SHOWN:,} more")
        lines.append("  what to do:")
        if self.fewer:
            lines.append("  - InfluxDB 3 holds fewer values: run the same migrate command again (it writes only what "
                         "is missing); if rows wait in the spool, `python -m ingest replay` first; lines InfluxDB 3 "
                         f"refused are in {rejects} with the reason")
        if self.more:
            lines.append("  - InfluxDB 3 holds values InfluxDB 2 does not: written there by another writer, or deleted "
                         "from InfluxDB 2 after they were moved; compare the window with a query on each side")
        if self.points:
            lines.append("  - a point differs: it changed on one side after it was moved (migrate that window again "
                         "with --start/--stop: the InfluxDB 2 value is written), or another writer wrote it")
        if self.unchecked:
            lines.append("  - InfluxDB 3 refused to count a window (--query-file-limit): raise "
                         "INFLUXDB3_QUERY_FILE_LIMIT or verify with a smaller --window")
        return "\n".join(lines)


class Migration:
    """One migrate command: plan, move, verify."""

    def __init__(self, config: IngestConfig, options: MigrateOptions, source: InfluxDB2Source, run_id: str, *,
                 bar: bool | None = None, outputs: Outputs | None = None, rng: random.Random | None = None):
        assert config.influxdb3 is not None
        self.config, self.options, self.source, self.run_id = config, options, source, run_id
        self.bar = bar
        self._outputs = outputs
        self.rng = rng or random.Random()
        self.cursors = Cursors(config.state_dir / "migrate.json")
        self.token = config.influxdb3.token
        self.stored = StoredRows(with_port(config.influxdb3.url), self.token, options.database,
                                 timeout=max(config.http_timeout, 60.0))

    @property
    def outputs(self) -> Outputs:
        if self._outputs is None:
            # migrate writes to InfluxDB 3 alone (it reads InfluxDB 2)
            self._outputs = Outputs(replace(self.config, influxdb2=None), self.run_id)
        return self._outputs

    def _key(self, measurement: str) -> str:
        return f"{self.options.bucket} -> {self.options.database}: {measurement}"

    # ---- plan ---------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        """Everything the move needs to know, and every reason it cannot start (with what to do)."""
        options = self.options
        problems: list[str] = []
        self.source.check_bucket()
        name_problem = database_name_problem(options.database)
        if name_problem:
            return Plan([], [f"InfluxDB 3 database {options.database!r} {name_problem}: give another with "
                             "--database"])
        databases = self._databases()
        create = options.database not in databases
        if create and len(databases) >= CORE_DATABASES:
            problems.append(f"InfluxDB 3 already has {len(databases)} databases ({', '.join(sorted(databases))}) and "
                            f"Core allows {CORE_DATABASES}: --database {options.database} would create one more. "
                            "Move into one of them with --database, or delete one first")
        known = self.source.measurements()
        wanted = list(options.measurements) or known
        missing = [name for name in wanted if name not in known]
        if missing:
            problems.append(f"bucket {options.bucket!r} has no measurement {', '.join(map(repr, missing))} "
                            f"(it has {', '.join(known) or 'none'})")
        wanted = [name for name in wanted if name in known and name not in options.skip_measurements]
        schemas = self.source.schemas(wanted)
        for measurement, name in options.skip_fields:
            if measurement in schemas:
                if name not in schemas[measurement].fields:
                    problems.append(f"--skip-field {measurement} {name}: measurement {measurement!r} has no field "
                                    f"{name!r}")
                schemas[measurement].skip.add(name)
        plans: list[MeasurementPlan] = []
        new_tables = 0
        for name in wanted:
            schema = schemas[name]
            if not schema.moved:
                log.info("%s: every field is left out; nothing of it moves", name)
                continue
            columns = {} if create else self._columns(name)
            found = self._problems(schema, columns)
            problems += found
            if found:
                continue
            new_tables += not columns
            plans.append(self._measurement_plan(schema))
            plans[-1].new = not columns
        if new_tables:
            tables = self._tables(databases)
            if tables + new_tables > CORE_TABLES:
                problems.append(f"InfluxDB 3 holds {tables:,} tables over all databases and Core allows "
                                f"{CORE_TABLES:,}; this move adds {new_tables:,}. Move fewer measurements "
                                "(--measurement, --skip-measurement)")
        if not problems:
            for plan in plans:
                plan.counts = self.source.counts(plan.schema, plan.start, plan.stop, options.window)
        return Plan(plans, problems, create)

    def _measurement_plan(self, schema: MeasurementSchema) -> MeasurementPlan:
        options = self.options
        start = options.start if options.start is not None else MIN_TIME
        stop = options.stop if options.stop is not None else MAX_TIME + 1
        plan = MeasurementPlan(schema, start, stop)
        cursor = self.cursors.get(self._key(schema.name)) if options.resume else None
        if cursor:
            plan.start = options.start if options.start is not None else int(cursor["start"])
            plan.stop = options.stop if options.stop is not None else int(cursor["stop"])
            plan.done = int(cursor["done"])
        return plan

    def _problems(self, schema: MeasurementSchema, columns: dict[str, str]) -> list[str]:
        """Why a measurement cannot move as it is; each says what to do."""
        m = schema.name
        found: list[str] = []
        skip = f"--skip-measurement {_arg(m)}"
        try:
            check_name("measurement", m)
        except ValueError as exc:
            return [f"measurement {m!r}: {exc}; it cannot be written as line protocol. Leave it out with {skip}"]
        for tag in schema.tags:
            reason = _name_problem(tag, "tag key")
            if reason:
                found.append(f"measurement {m!r}: tag key {tag!r} {reason}; a tag cannot be left out (its series "
                             f"would merge). Leave the measurement out with {skip}")
        for name in schema.moved:
            types = schema.fields[name]
            fix = f"--skip-field {_arg(m)} {_arg(name)}"
            reason = _name_problem(name, "field key")
            if reason:
                found.append(f"measurement {m!r}: field {name!r} {reason}. Leave it out with {fix}")
            elif name in schema.tags:
                found.append(f"measurement {m!r}: {name!r} is both a tag and a field; InfluxDB 3 has one column per "
                             f"name (and Flux's pivot refuses it). Leave the field out with {fix}, or copy it under "
                             "another name in InfluxDB 2 first")
            elif len(types) > 1:
                kinds = ", ".join(types[:-1]) + f" and {types[-1]}"
                found.append(f"measurement {m!r}: field {name!r} has {kinds} values in different shards; InfluxDB 3 "
                             "keeps one type per column, and InfluxDB 2's own reads drop the values whose type differs "
                             f"from the first shard's. Leave it out with {fix}, or first copy it in InfluxDB 2 under "
                             f"one type and another name (e.g. |> filter(fn: (r) => r._field == \"{name}\") |> "
                             f"toFloat() |> set(key: \"_field\", value: \"{name}_float\") |> to(bucket: ...))")
            elif name in columns and columns[name] != V3_TYPES[types[0]]:
                found.append(f"measurement {m!r}: InfluxDB 3's table already has {name!r} as {columns[name]}, InfluxDB "
                             f"2 holds {types[0]}. Move into another --database, or leave it out with {fix}")
        for tag in schema.tags:
            if tag in columns and not columns[tag].startswith("Dictionary"):
                found.append(f"measurement {m!r}: InfluxDB 3's table already has {tag!r} as a field ({columns[tag]}), "
                             f"InfluxDB 2 has it as a tag. Move into another --database, or leave it out with {skip}")
        total = len({*schema.tags, *schema.moved, *columns} - {"time"})
        if total > CORE_COLUMNS:
            found.append(f"measurement {m!r} needs {total:,} columns (tags and fields"
                         + (", with those InfluxDB 3's table already has" if columns else "")
                         + f"); InfluxDB 3 Core allows {CORE_COLUMNS} per table. Leave fields out with --skip-field "
                         f"{_arg(m)} FIELD, or the measurement with {skip}")
        return found

    def _databases(self) -> set[str]:
        try:
            return self.stored.databases()
        except requests.RequestException as exc:
            raise self._refused(exc, "list its databases") from None
        except RuntimeError as exc:
            if str(exc).startswith(("401 ", "403 ")):
                raise FatalSinkError(f"InfluxDB 3 answered {str(exc)[:3]} to a database listing: check "
                                     "INFLUXDB3_TOKEN") from None
            raise SourceError(f"InfluxDB 3 could not list its databases: {exc}") from None

    def _tables(self, databases: set[str]) -> int:
        """How many tables `databases` (the listing plan() made) hold together."""
        total = 0
        for database in databases:
            reader = StoredRows(self.stored.url, self.token, database, session=self.stored.session)
            try:
                rows = reader.sql("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'iox'",
                                  "json").json()
            except (RuntimeError, requests.RequestException) as exc:
                raise self._refused(exc, f"count the tables of {database!r}") from None
            total += int(rows[0]["n"]) if rows else 0
        return total

    # ---- move ---------------------------------------------------------------------------------------------
    def move(self, plan: Plan) -> RunSummary:
        """Write every planned window to InfluxDB 3; the cursors follow what has landed."""
        if plan.create_database:
            transport = self.outputs.sink("influxdb3").transport  # type: ignore[union-attr]
            assert isinstance(transport, InfluxDB3Transport)
            transport.ensure_database(self.options.database, "", None)
            log.info("created InfluxDB 3 database %r", self.options.database)
        windows = plan.window_count(self.options.window, resume=self.options.resume)
        progress = Progress(f"migrate {self.options.bucket}", total=windows, steps="windows", bar=self.bar)
        return load(f"migrate {self.options.bucket}", self._chunks(plan, progress), self.outputs,
                    database=self.options.database, progress=progress, record_metrics=False, skip_stored=True,
                    checkpoint=self.options.checkpoint)

    def _chunks(self, plan: Plan, progress: Progress) -> Iterator[Chunk]:
        """The windows as chunks, READ_AHEAD windows read from InfluxDB 2 at once (a window's query waits on
        the server's Flux for most of its time); a window of more than WINDOW_ROWS rows goes in parts, only its
        last part moving the cursor."""
        options = self.options
        pool = ThreadPoolExecutor(max_workers=READ_AHEAD, thread_name_prefix="migrate-read")
        try:
            for item in plan.measurements:
                schema = item.schema
                encoder = LineEncoder(schema.name, schema.tags, schema.moved)
                key = self._key(schema.name)
                if not options.resume or item.done is None:
                    self.cursors.set(key, {"start": item.start, "stop": item.stop, "done": item.start})
                elif item.done >= item.stop:
                    log.info("%s: moved before (up to %s); nothing to resume", schema.name, flux_time(item.stop))
                for start, stop, pieces in self._read_ahead(pool, schema, item.windows(options.window,
                                                                                         resume=options.resume)):
                    table = _concat(pieces, schema)
                    progress.step()
                    for offset in range(0, max(table.num_rows, 1), WINDOW_ROWS):
                        last = offset + WINDOW_ROWS >= table.num_rows
                        yield self._chunk(schema, encoder, start, table.slice(offset, WINDOW_ROWS), new=item.new,
                                          landed=self._landed(key, item, stop) if last else None)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # a stopped run does not read on

    def _read_ahead(self, pool: ThreadPoolExecutor, schema: MeasurementSchema, windows: list[tuple[int, int]]
                    ) -> Iterator[tuple[int, int, list[pa.Table]]]:
        """Each window's tables in order, the next ones already being read."""
        pending: deque[tuple[int, int, Future[list[pa.Table]]]] = deque()
        upcoming = iter(windows)
        for start, stop in itertools.islice(upcoming, READ_AHEAD):
            pending.append((start, stop, pool.submit(self._read, schema, start, stop)))
        while pending:
            start, stop, future = pending.popleft()
            pieces = future.result()
            for after, before in itertools.islice(upcoming, 1):
                pending.append((after, before, pool.submit(self._read, schema, after, before)))
            yield start, stop, pieces

    def _read(self, schema: MeasurementSchema, start: int, stop: int) -> list[pa.Table]:
        pieces = list(self.source.window(schema, start, stop))
        rows = sum(piece.num_rows for piece in pieces)
        if rows > WINDOW_ROWS:
            log.warning("%s: the window from %s holds %s rows; a smaller --window keeps memory lower", schema.name,
                        flux_time(start), f"{rows:,}")
        return pieces

    def _chunk(self, schema: MeasurementSchema, encoder: LineEncoder, start: int, table: pa.Table, *,
               new: bool = False, landed: Any = None) -> Chunk:

        def record(row: int) -> object:
            return {key: (value if not isinstance(value, bytes) else value.decode("utf-8", "replace"))
                    for key, value in table.slice(row, 1).to_pylist()[0].items()}

        return Chunk(table, encoder, f"{self.options.bucket}/{schema.name} from {flux_time(start)}", table.num_rows,
                     record=record, landed=landed, new=new)

    def _landed(self, key: str, item: MeasurementPlan, stop: int) -> Any:
        def landed() -> None:
            self.cursors.set(key, {"start": item.start, "stop": item.stop, "done": stop})

        return landed

    # ---- verify -------------------------------------------------------------------------------------------
    def verify(self, plan: Plan, *, recount: bool = True) -> Verification:
        """Counts per measurement, window and field on both sides, and a sample of points value by value."""
        result = Verification(measurements=len(plan.measurements))
        every = self.options.window
        for item in plan.measurements:
            schema = item.schema
            counts2 = self.source.counts(schema, item.start, item.stop, every) if recount else item.counts
            item.counts = counts2
            counts3, unchecked = self._counts3(schema, sorted(counts2), item.start, item.stop)
            result.unchecked += [f"{schema.name} {_window(window, every)}" for window in unchecked]
            result.windows += len(set(counts2) | set(counts3))
            for window in sorted(set(counts2) | set(counts3)):
                if window in unchecked:
                    continue
                for name in schema.moved:
                    two = counts2.get(window, {}).get(name, 0)
                    three = counts3.get(window, {}).get(name, 0)
                    result.values += two
                    if two != three:
                        result.fewer |= three < two
                        result.more |= three > two
                        result.counts.append(f"{schema.name} {_window(window, every)} field {name!r}: InfluxDB 2 "
                                             f"{two:,}, InfluxDB 3 {three:,}")
        self._sample(plan, result)
        return result

    def _counts3(self, schema: MeasurementSchema, windows: list[int], start: int, stop: int
                 ) -> tuple[dict[int, dict[str, int]], list[int]]:
        """InfluxDB 3's count per window and field over the windows InfluxDB 2 has data in (and any between
        them), a span of windows per query; windows it would not count (file limit) are returned apart."""
        columns = self._columns(schema.name) if windows else {}
        fields = [name for name in schema.moved if name in columns]
        if not fields:
            return {}, []
        every = self.options.window
        found: dict[int, dict[str, int]] = {}
        unchecked: list[int] = []
        pending = [windows[offset:offset + VERIFY_SPAN] for offset in range(0, len(windows), VERIFY_SPAN)]
        while pending:
            span = pending.pop(0)
            begin, end = max(span[0], start), min(span[-1] + every, stop)
            select = ", ".join(f'count({sql_ident(name)}) AS {sql_ident(name)}' for name in fields)
            query = (f"SELECT date_bin(INTERVAL '{every // 10**9} seconds', time) AS \"_window\", {select} "
                     f"FROM {sql_ident(schema.name)} WHERE time >= {sql_time(begin)} AND time < {sql_time(end)} "
                     "GROUP BY 1")
            try:
                body = self.stored.sql(query, "parquet").content
            except (RuntimeError, requests.RequestException) as exc:
                if "file limit" not in str(exc).lower():
                    raise self._refused(exc, f"count {schema.name!r}") from None
                if len(span) == 1:
                    unchecked.append(span[0])
                else:
                    pending[:0] = [span[:len(span) // 2], span[len(span) // 2:]]
                continue
            if not body:
                continue
            table = read_parquet(body)
            starts = table.column("_window").cast(pa.timestamp("ns")).cast(pa.int64()).to_pylist()
            for row, window in enumerate(starts):
                found[window // every * every] = {name: int(table.column(name)[row].as_py() or 0) for name in fields}
        return found, unchecked

    def _sample(self, plan: Plan, result: Verification) -> None:
        """Up to `--sample` points from a few windows, read from both sides and compared value by value."""
        choices = [(item, window) for item in plan.measurements for window in sorted(item.counts)]
        if not choices or self.options.sample <= 0:
            return
        picked = self.rng.sample(choices, min(SAMPLE_WINDOWS, len(choices)))
        per_window = max(1, self.options.sample // len(picked))
        every = self.options.window
        for item, window in picked:
            begin, end = max(window, item.start), min(window + every, item.stop)
            schema = item.schema
            two = _concat(self._read(schema, begin, end), schema)
            if not two.num_rows:
                continue
            rows_picked = sorted(self.rng.sample(range(two.num_rows), min(per_window, two.num_rows)))
            sample = two.take(pa.array(rows_picked, pa.int64()))
            result.sampled += sample.num_rows
            times = sample.column("time")
            try:
                three = self.stored.table(schema.name, sample.schema, "time", pc.min(times).as_py(),
                                          pc.max(times).as_py())
            except (RuntimeError, requests.RequestException, pa.ArrowException) as exc:
                result.points.append(f"{schema.name} {_window(window, every)}: could not read InfluxDB 3 ({exc})")
                continue
            result.fewer |= _compare(schema, sample, three, result.points)

    def _columns(self, measurement: str) -> dict[str, str]:
        try:
            return self.stored.columns(measurement)
        except (RuntimeError, requests.RequestException) as exc:
            raise self._refused(exc, f"read the columns of {measurement!r}") from None

    def _refused(self, exc: Exception, what: str) -> Exception:
        """An InfluxDB 3 failure as the error the command reports: a refused token stops with exit code 3."""
        text = str(exc)
        if text.startswith(("401", "403")):
            return FatalSinkError(f"InfluxDB 3 answered {text[:200]} to {what}: check INFLUXDB3_TOKEN")
        return SourceError(f"InfluxDB 3 at {self.stored.url} could not {what}: {text[:300]}")

    def close(self) -> None:
        self.stored.close()
        if self._outputs is not None:
            self._outputs.close()


def _concat(pieces: list[pa.Table], schema: MeasurementSchema) -> pa.Table:
    return pa.concat_tables(pieces) if pieces else schema.arrow_schema().empty_table()


def _compare(schema: MeasurementSchema, sample: pa.Table, three: pa.Table | None, out: list[str]) -> bool:
    """Compare sampled InfluxDB 2 rows with InfluxDB 3's rows of the same series and time; True when a point is
    missing from InfluxDB 3."""
    tags = schema.tags
    keys2 = point_keys(sample.column("time"), [sample.column(tag) for tag in tags]).to_pylist()
    index: dict[str, int] = {}
    if three is not None and three.num_rows:
        keys3 = point_keys(three.column("time"), [three.column(tag) for tag in tags])
        mask = pc.is_in(keys3, value_set=pa.array(keys2, pa.string()))
        three = three.filter(mask)
        index = {key: row for row, key in enumerate(pc.filter(keys3, mask).to_pylist())}
    missing = False
    for row, key in enumerate(keys2):
        point = _describe(sample, row, tags)
        if key not in index:
            out.append(f"{point}: missing from InfluxDB 3")
            missing = True
            continue
        other = index[key]
        for name in schema.moved:
            left = sample.column(name)[row].as_py()
            right = three.column(name)[other].as_py() if three is not None else None
            if left != right or type(left) is not type(right):
                out.append(f"{point} field {name!r}: InfluxDB 2 {left!r}, InfluxDB 3 {right!r}")
    return missing


def _describe(table: pa.Table, row: int, tags: Sequence[str]) -> str:
    values = ",".join(f"{tag}={table.column(tag)[row].as_py()}" for tag in tags
                      if table.column(tag)[row].as_py() is not None)
    return f"{flux_time(table.column('time')[row].as_py())} {values}".rstrip()


def _window(window: int, every: int) -> str:
    return f"[{flux_time(window)}, {flux_time(window + every)})"


def _name_problem(name: str, kind: str) -> str | None:
    """Why a tag or field key cannot be a column of the moved table, or None."""
    if name in RESERVED_COLUMNS:
        return "is a name InfluxDB 3 reserves for its own column"
    if name.startswith("_"):
        return "starts with '_': a Flux column of the same name would hide it when it is read"
    try:
        check_name(kind, name)
    except ValueError as exc:
        return f"cannot be written as line protocol ({exc})"
    return None


def _arg(text: str) -> str:
    """`text` as one shell word."""
    return text if re.fullmatch(r"[A-Za-z0-9_.:/-]+", text) else "'" + text.replace("'", "'\\''") + "'"
