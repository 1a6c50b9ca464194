"""`python -m tests.engine`: run a plugin on the local engine, as `influxdb3 test` does against a server.

    python -m tests.engine wal plugins/statistics/table_stats --database telemetry --table sensors \\
        --lp batch.lp --arg bucket=1h --arg target_database=forecast
    python -m tests.engine schedule forecast/prophet_forecast --database forecast \\
        --data forecast=history.lp --time 2024-01-01T03:00:00 --arg seed=1
    python -m tests.engine request forecast/forecast_chart --database forecast --data forecast=history.lp \\
        --query days=365 --output chart.html

`--data DB=FILE` preloads line protocol (repeatable); the plugin path is relative to plugins/ (a leading
`plugins/` is accepted). It prints the plugin's log, the lines it wrote and, for requests, the response;
the exit status is 1 when the plugin raised or its writes were refused.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from tests.engine.engine import PLUGIN_DIR, LocalEngine, PluginRun


def _pairs(values: list[str], what: str) -> dict[str, str]:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} {item!r} is not key=value")
        result[key] = value
    return result


def _plugin_name(text: str) -> str:
    path = Path(text)
    if path.parts and path.parts[0] == "plugins":
        path = Path(*path.parts[1:])
    return str(path)


def _report(run: PluginRun, output: Path | None, limit: int) -> int:
    for line in run.logs:
        print(line)
    for database, lines in run.writes.items():
        print(f"-- {len(lines)} line(s) written to {database}")
        for line in lines[:limit]:
            print(line)
        if len(lines) > limit:
            print(f"... {len(lines) - limit} more")
    for problem in run.write_errors:
        print(f"WRITE ERROR: {problem}", file=sys.stderr)
    if run.error:
        print(run.error, file=sys.stderr)
    if run.response is not None:
        print(f"-- HTTP {run.response.status} {run.response.content_type} ({len(run.response.body)} bytes)")
        if output:
            output.write_text(run.response.body, encoding="utf-8")
            print(f"body saved to {output}")
        else:
            print(run.response.body[:2000])
    return 1 if (run.error or run.write_errors) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.engine", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugin-dir", type=Path, default=PLUGIN_DIR)
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("wal", "schedule", "request"):
        command = sub.add_parser(kind)
        command.add_argument("plugin", help="plugin file or folder, relative to the plugin directory")
        command.add_argument("--database", "-d", required=True)
        command.add_argument("--arg", action="append", default=[], help="trigger argument key=value")
        command.add_argument("--data", action="append", default=[], help="preload DB=FILE.lp")
        command.add_argument("--trigger", help="trigger name (cache namespace)")
        command.add_argument("--show", type=int, default=20, help="written lines to print per database")
        if kind == "wal":
            command.add_argument("--lp", type=Path, required=True, help="line protocol written, then fed")
            command.add_argument("--table", help="table:<name> trigger (default: all_tables)")
        elif kind == "schedule":
            command.add_argument("--time", type=datetime.fromisoformat, help="call time (UTC), default now")
        else:
            command.add_argument("--query", action="append", default=[], help="query parameter key=value")
            command.add_argument("--header", action="append", default=[], help="request header key=value")
            command.add_argument("--body", type=Path, help="file sent as the request body")
            command.add_argument("--output", type=Path, help="save the response body here")
    options = parser.parse_args(argv)
    engine = LocalEngine(plugin_dir=options.plugin_dir)
    for item in options.data:
        database, sep, file_name = item.partition("=")
        if not sep:
            raise SystemExit(f"--data {item!r} is not DB=FILE")
        engine.write_lp(database, Path(file_name).read_text(encoding="utf-8"))
    args = _pairs(options.arg, "--arg")
    plugin = _plugin_name(options.plugin)
    if options.kind == "wal":
        run = engine.run_writes(plugin, options.database, options.lp.read_text(encoding="utf-8"),
                                table=options.table, args=args, trigger=options.trigger)
    elif options.kind == "schedule":
        run = engine.run_schedule(plugin, options.database, options.time, args=args, trigger=options.trigger)
    else:
        body = options.body.read_bytes() if options.body else b""
        run = engine.run_request(plugin, options.database, _pairs(options.query, "--query"),
                                 _pairs(options.header, "--header"), body, args=args, trigger=options.trigger)
    return _report(run, getattr(options, "output", None), options.show)


if __name__ == "__main__":
    sys.exit(main())
