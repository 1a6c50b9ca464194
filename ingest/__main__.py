"""`python -m ingest {birds,weather,sensors,run,export,buckets,replay,audit,health,schema,migrate}`.

Exit codes: 0 done; 1 `migrate` verified and found differences; 2 bad configuration, arguments or input (or
what `migrate` cannot move as it is); 3 a database refused us (wrong token, unknown bucket, no permission) or
the spool is full; 75 the data is safe in the spool but not yet in a database (it is replayed on the next run,
by `python -m ingest replay`, or by the running service); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from common.config import ConfigError, Env
from common.logs import setup_logging

__all__ = ["main"]

log = logging.getLogger("ingest")
EX_DIFFERENT, EX_USAGE, EX_SINK, EX_SPOOLED, EX_INTERRUPTED = 1, 2, 3, 75, 130


class UsageError(Exception):
    """A command-line value that does not make sense; the message says which."""


# ---- commands ---------------------------------------------------------------------------------------------
def _config(args: argparse.Namespace, *, influxdb2: bool = True, influxdb3: bool = True):
    from ingest.config import IngestConfig

    lp_out = getattr(args, "lp_out", None) is not None
    config = IngestConfig.from_env(need_influxdb2=influxdb2 and not lp_out and not getattr(args, "no_influxdb2", False),
                                   need_influxdb3=influxdb3 and not lp_out and not getattr(args, "no_influxdb3", False))
    if getattr(args, "bucket", None):  # the one target of this command's load, the bird study's included
        config = dataclasses.replace(config, bucket=args.bucket, history_bucket=args.bucket)
    return config


def _jobs(args: argparse.Namespace, run_id: str):
    from common.retry import RetryPolicy
    from ingest.download import Http
    from ingest.jobs import Jobs
    from ingest.outputs import Outputs

    config = _config(args)
    outputs = Outputs(config, run_id, lp_out=getattr(args, "lp_out", None))
    if not getattr(args, "lp_out", None) and not getattr(args, "skip_buckets", False):
        outputs.ensure_buckets()
    bar = False if getattr(args, "no_progress", False) else None
    policy = RetryPolicy(attempts=config.retry_attempts, base=1.0, cap=20.0, max_wait=config.retry_max_wait)
    return Jobs(config, outputs, Http(timeout=config.http_timeout, policy=policy), bar=bar), outputs


def _finish(outputs, summaries) -> int:
    outputs.close()
    pending = max((summary.pending for summary in summaries), default=0)
    if pending:
        log.warning("%d rows wait in the spool under %s; they are sent on the next run or with "
                    "`python -m ingest replay`", pending, outputs.config.state_dir / "spool")
        return EX_SPOOLED
    return 0


def cmd_birds(args: argparse.Namespace, run_id: str) -> int:
    jobs, outputs = _jobs(args, run_id)
    summaries = jobs.birds(args.sources or None, study_id=args.study_id,
                           accept_license=True if args.accept_license else None)
    return _finish(outputs, summaries)


def cmd_weather(args: argparse.Namespace, run_id: str) -> int:
    jobs, outputs = _jobs(args, run_id)
    if args.response_file:
        summary = jobs.weather_file(Path(args.response_file), args.location)
    elif args.backfill or args.start:
        start, end = _date_range(args)
        summary = jobs.weather_backfill(start, end)
    else:
        summary = jobs.weather(provider=args.provider)
    return _finish(outputs, [summary])


def _date_range(args: argparse.Namespace) -> tuple[date, date]:
    try:
        if args.backfill:
            from ingest.reader import parse_window

            span = parse_window(args.backfill, "--backfill")
            end = date.today() - timedelta(days=1)  # the archive lags; yesterday is complete
            return end - timedelta(days=max(0, span.days - 1)), end
        start = date.fromisoformat(args.start)
        end = date.fromisoformat(args.end) if args.end else date.today() - timedelta(days=1)
    except ValueError as exc:
        raise UsageError(f"weather backfill: {exc}") from None
    if end < start:
        raise UsageError(f"weather backfill: --end {end} is before --start {start}")
    return start, end


def cmd_sensors(args: argparse.Namespace, run_id: str) -> int:
    jobs, outputs = _jobs(args, run_id)
    if args.replay:
        summaries = [jobs.sensors_replay(Path(path), device=args.device, device_column=args.device_column,
                                         location=args.location, time_column=args.time_column,
                                         timezone=args.timezone, shift_to_now=args.shift_to_now)
                     for path in args.replay]
        return _finish(outputs, summaries)
    if args.backfill:
        from ingest.reader import parse_window

        try:
            span = parse_window(args.backfill, "--backfill")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        now = time.time_ns()
        return _finish(outputs, [jobs.sensors_span(now - int(span.total_seconds()) * 1_000_000_000, now + 1)])
    summaries = []
    ticks = 0
    interval = jobs.config.sensors_interval
    try:
        while args.ticks is None or ticks < args.ticks:
            summaries.append(jobs.sensors_tick(None))
            ticks += 1
            if args.ticks is not None and ticks >= args.ticks:
                break
            time.sleep(interval - time.time() % interval)
    except KeyboardInterrupt:
        log.info("sensors: stopped after %d readings", ticks)
    return _finish(outputs, summaries[-1:])


def cmd_run(args: argparse.Namespace, run_id: str) -> int:
    from ingest.runner import Runner
    from ingest.state import Cursors, Heartbeat

    jobs, outputs = _jobs(args, run_id)
    state = jobs.config.state_dir
    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    Runner(jobs, cursors=Cursors(state / "cursors.json"), heartbeat=Heartbeat(state / "heartbeat"), stop=stop).run()
    outputs.close()
    return 0


def cmd_export(args: argparse.Namespace, run_id: str) -> int:
    from ingest.reader import Reader, parse_window

    config = _config(args, influxdb2=args.source == "influxdb2", influxdb3=args.source == "influxdb3")
    try:
        span = parse_window(args.range, "--range")
        window = parse_window(args.window, "--window")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        frame = Reader(config).query(args.bucket or config.bucket, args.measurement, source=args.source, span=span,
                                     window=window, aggregate=args.fn)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out in (None, "-"):
        frame.to_csv(sys.stdout, index=False)
    else:
        frame.to_csv(args.out, index=False)
        log.info("export: %d rows written to %s", len(frame), args.out)
    return 0


def cmd_buckets(args: argparse.Namespace, run_id: str) -> int:
    _, outputs = _jobs(args, run_id)
    outputs.close()
    return 0


def cmd_replay(args: argparse.Namespace, run_id: str) -> int:
    _, outputs = _jobs(args, run_id)
    empty = all(sink.drain(force=True) for sink in outputs.sinks)
    for sink in outputs.sinks:
        log.info("%s: replayed %d rows; %d batches remain", sink.name, sink.counters.replayed, len(sink.spool or []))
    outputs.close()
    return 0 if empty else EX_SPOOLED


def cmd_audit(args: argparse.Namespace, run_id: str) -> int:
    jobs, outputs = _jobs(args, run_id)
    try:
        marked = jobs.audit()
    finally:
        outputs.close()
    if marked is None:
        log.error("audit: nothing to audit without InfluxDB 3 (INGEST_INFLUXDB3, --no-influxdb3, --lp-out)")
        return EX_USAGE
    log.info("audit: %s", ", ".join(f"{table}: {count} buckets marked" for table, count in marked.items())
             or "every rollup the live databases copied is in its copy")
    return 0


def cmd_health(args: argparse.Namespace, run_id: str) -> int:
    from ingest.state import Heartbeat

    env = Env()
    state = env.path("INGEST_STATE_DIR", "var/ingest")
    age = Heartbeat(Path(str(state)) / "heartbeat").age()
    if age is None:
        print(f"unhealthy: no heartbeat yet under {state}", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"unhealthy: last heartbeat {age:.0f}s ago (limit {args.max_age}s)", file=sys.stderr)
        return 1
    print(f"healthy: last heartbeat {age:.0f}s ago")
    return 0


def cmd_schema(args: argparse.Namespace, run_id: str) -> int:
    from ingest import schema

    print(json.dumps([dataclasses.asdict(item) for item in schema.MEASUREMENTS], indent=2, ensure_ascii=False))
    return 0


def cmd_migrate(args: argparse.Namespace, run_id: str) -> int:
    from common.config import parse_duration
    from common.retry import RetryPolicy
    from ingest.config import IngestConfig
    from ingest.download import Http
    from ingest.migrate import MigrateOptions, Migration, parse_time
    from ingest.reader import parse_window
    from ingest.sources.influxdb2 import InfluxDB2Source

    try:
        window = parse_window(args.window, "--window")
        checkpoint = parse_duration(args.checkpoint).total_seconds()
        start = parse_time(args.start, "--start") if args.start else None
        stop = parse_time(args.stop, "--stop") if args.stop else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if start is not None and stop is not None and stop <= start:
        raise UsageError(f"--stop {args.stop} is not after --start {args.start}")
    if args.verify_only and args.no_verify:
        raise UsageError("--verify-only and --no-verify leave nothing to do")
    config = IngestConfig.from_env(require=("influxdb2", "influxdb3"))
    options = MigrateOptions(
        bucket=args.bucket, database=args.database or args.bucket, start=start, stop=stop,
        measurements=tuple(dict.fromkeys(args.measurement)), window=int(window.total_seconds()) * 10**9,
        resume=args.resume, verify=not args.no_verify, verify_only=args.verify_only, sample=args.sample,
        skip_fields=frozenset((measurement, name) for measurement, name in args.skip_field),
        skip_measurements=frozenset(args.skip_measurement), checkpoint=checkpoint)
    assert config.influxdb2 is not None
    policy = RetryPolicy(attempts=config.retry_attempts, base=1.0, cap=20.0, max_wait=config.retry_max_wait)
    # A window's query answers only once Flux has pivoted the window: allow it far longer than a write.
    http = Http(timeout=max(config.http_timeout, 300.0), policy=policy)
    source = InfluxDB2Source(config.influxdb2.url, config.influxdb2.token, config.influxdb2.org, args.bucket,
                             http=http)
    migration = Migration(config, options, source, run_id, bar=False if args.no_progress else None)
    try:
        plan = migration.plan()
        if plan.problems:
            for problem in plan.problems:
                log.error("cannot move as it is: %s", problem)
            log.error("migrate: nothing was moved; %d problem(s) above, each with what to do", len(plan.problems))
            return EX_USAGE
        windows = plan.window_count(options.window, resume=options.resume)
        log.info("migrate %s -> InfluxDB 3 %s%s: %d measurements, %d windows of %s with data", options.bucket,
                 options.database, " (new)" if plan.create_database else "", len(plan.measurements), windows,
                 args.window)
        if not options.verify_only:
            pending = migration.move(plan).pending
            if pending:
                log.warning("%d rows wait in the spool under %s; they are sent by `python -m ingest replay` (then "
                            "verify with --verify-only)", pending, config.state_dir / "spool")
                return EX_SPOOLED
        if not (options.verify or options.verify_only):
            return 0
        verified = migration.verify(plan, recount=not options.verify_only)
        text = verified.text(options.bucket, options.database, str(config.state_dir / "rejects"))
        (log.info if verified.ok else log.error)("%s", text)
        return 0 if verified.ok else EX_DIFFERENT
    finally:
        migration.close()


# ---- parser -----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--lp-out", metavar="FILE",
                        help="write line protocol to FILE (.gz compresses, - is stdout) instead of the databases")
    common.add_argument("--no-influxdb2", action="store_true", help="do not write to InfluxDB 2")
    common.add_argument("--no-influxdb3", action="store_true", help="do not write to InfluxDB 3")
    common.add_argument("--bucket", help="bucket/database to write (default INGEST_BUCKET, telemetry)")
    common.add_argument("--no-progress", action="store_true", help="no progress bar (log lines instead)")
    common.add_argument("--skip-buckets", action="store_true", help="do not create missing buckets at start")

    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    birds = sub.add_parser("birds", parents=[common], help="Movebank tracking data (CSV files/URLs or the REST API)")
    birds.add_argument("sources", nargs="*", metavar="SOURCE",
                       help="Movebank CSV paths or URLs, plain or gzip (default MOVEBANK_SOURCES, else the public "
                            "CC0 O_ASSEN oystercatcher study)")
    birds.add_argument("--study-id", type=int, help="download this study through the Movebank REST API")
    birds.add_argument("--accept-license", action="store_true",
                       help="accept the study's license terms through the API when Movebank asks")
    birds.set_defaults(handler=cmd_birds)

    weather = sub.add_parser("weather", parents=[common], help="current weather, or an archive backfill")
    weather.add_argument("--provider", choices=["open-meteo", "openweathermap"],
                         help="default: openweathermap when OPENWEATHERMAP_API_KEY is set, else open-meteo")
    weather.add_argument("--backfill", metavar="SPAN", help="hourly history for the last SPAN (e.g. 30d), Open-Meteo")
    weather.add_argument("--start", metavar="YYYY-MM-DD", help="backfill from this day")
    weather.add_argument("--end", metavar="YYYY-MM-DD", help="backfill up to this day (default yesterday)")
    weather.add_argument("--response-file", metavar="JSON", help="load a saved provider response instead")
    weather.add_argument("--location", help="location name for --response-file")
    weather.set_defaults(handler=cmd_weather)

    sensors = sub.add_parser("sensors", parents=[common], help="simulated fleet, or a CSV replay")
    sensors.add_argument("--backfill", metavar="SPAN", help="write simulated history for the last SPAN and exit")
    sensors.add_argument("--ticks", type=int, help="emit this many readings (one per SENSORS_INTERVAL) and exit")
    sensors.add_argument("--replay", nargs="+", metavar="CSV", help="replay sensor CSV files")
    sensors.add_argument("--device", help="device tag for a replay (default: the file name)")
    sensors.add_argument("--device-column", help="take the device tag from this column")
    sensors.add_argument("--location", help="location tag for a replay")
    sensors.add_argument("--time-column", help="time column of a replay (default: time/timestamp/date...)")
    sensors.add_argument("--timezone", help="zone of times without an offset in a replay (default UTC)")
    sensors.add_argument("--shift-to-now", action="store_true", help="move a replay so its last row is now")
    sensors.set_defaults(handler=cmd_sensors)

    run = sub.add_parser("run", parents=[common], help="long-running service mode (the container's default)")
    run.set_defaults(handler=cmd_run)

    export = sub.add_parser("export", help="query a measurement per time window into CSV")
    export.add_argument("--from", dest="source", choices=["influxdb2", "influxdb3"], default="influxdb3")
    export.add_argument("--bucket", help="bucket/database (default INGEST_BUCKET)")
    export.add_argument("--measurement", required=True, help="e.g. weather, sensors, bird_fixes")
    export.add_argument("--range", default="7d", help="how far back, e.g. 30d (default 7d)")
    export.add_argument("--window", default="1h", help="aggregation window, e.g. 1h (default 1h)")
    export.add_argument("--fn", default="mean", choices=["mean", "min", "max", "sum", "count", "median"])
    export.add_argument("--out", help="CSV file (default stdout)")
    export.set_defaults(handler=cmd_export)

    buckets = sub.add_parser("buckets", parents=[common], help="create the buckets/databases of the buckets file")
    buckets.set_defaults(handler=cmd_buckets)
    replay = sub.add_parser("replay", parents=[common], help="send what waits in the spools, then exit")
    replay.set_defaults(handler=cmd_replay)
    audit = sub.add_parser("audit", parents=[common],
                           help="check that history holds every rollup copied to it; mark what it lacks")
    audit.set_defaults(handler=cmd_audit)
    health = sub.add_parser("health", help="exit 0 when the run loop's heartbeat is fresh (container healthcheck)")
    health.add_argument("--max-age", type=float, default=300.0, help="seconds (default 300)")
    health.set_defaults(handler=cmd_health)
    migrate = sub.add_parser("migrate", help="move a bucket from InfluxDB 2 to InfluxDB 3 (resumable, verified)",
                             description="Move a bucket from InfluxDB 2 to an InfluxDB 3 database, a time window "
                                         "at a time; stop and --resume it; the counts and a sample of points are "
                                         "compared on both sides at the end (README, 'Move from InfluxDB 2 to 3').")
    migrate.add_argument("--bucket", required=True, help="the InfluxDB 2 bucket (of INFLUXDB2_ORG)")
    migrate.add_argument("--database", help="the InfluxDB 3 database (default: the bucket's name; created if missing)")
    migrate.add_argument("--start", help="from this time, inclusive (2024-01-31, 2024-01-31T12:00:00Z or ns; "
                                         "default: the oldest point)")
    migrate.add_argument("--stop", help="up to this time, exclusive (default: after the newest point)")
    migrate.add_argument("--measurement", nargs="+", action="extend", default=[], metavar="M",
                         help="only these measurements (default: all)")
    migrate.add_argument("--skip-measurement", action="append", default=[], metavar="M",
                         help="leave this measurement out")
    migrate.add_argument("--skip-field", nargs=2, action="append", default=[], metavar=("MEASUREMENT", "FIELD"),
                         help="leave this field of a measurement out (a field that cannot move as it is)")
    migrate.add_argument("--window", default="1d", help="time read and written at once (default 1d; smaller "
                                                        "keeps memory lower for dense data)")
    migrate.add_argument("--resume", action="store_true", help="continue after the last window that landed")
    migrate.add_argument("--checkpoint", default="10s", help="how often the cursor follows what landed (default "
                                                             "10s; each save waits for the writes in flight)")
    migrate.add_argument("--verify-only", action="store_true", help="compare both sides, move nothing")
    migrate.add_argument("--no-verify", action="store_true", help="move, do not compare afterwards")
    migrate.add_argument("--sample", type=int, default=1000, help="points compared value by value (default 1000)")
    migrate.add_argument("--no-progress", action="store_true", help="no progress bar (log lines instead)")
    migrate.set_defaults(handler=cmd_migrate)
    schema = sub.add_parser("schema", help="print the measurements, tags and fields as JSON")
    schema.set_defaults(handler=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ingest.reader import QueryError
    from ingest.sinks import FatalSinkError
    from ingest.sources import SourceError
    from ingest.spool import SpoolFullError

    args = build_parser().parse_args(argv)
    quiet = args.command in ("health", "schema")
    logger = setup_logging("ingest", level="WARNING" if quiet else None)
    run_id = getattr(logger, "run_id", "-")
    try:
        return args.handler(args, run_id)
    except ConfigError as exc:
        log.error("%s", exc)
        return EX_USAGE
    except (UsageError, SourceError, QueryError) as exc:
        log.error("%s", exc)
        return EX_USAGE
    except FatalSinkError as exc:
        log.error("stopped: %s", exc)
        return EX_SINK
    except SpoolFullError as exc:
        log.error("stopped: %s", exc)
        return EX_SINK
    except KeyboardInterrupt:
        log.warning("interrupted")
        return EX_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
