"""`python -m ingest migrate` against the stand-ins: InfluxDB 2 (tests/support/influxdb2.py, answering migrate's
Flux and InfluxQL as the server's source does, checked against a real influxd in tests/integration) and InfluxDB 3
Core over the local engine (its write_lp partial answers, its SQL).

What a user relies on: every type, null, escape and nanosecond lands as it was; windows cut at their bounds lose
and double nothing; a crash half-way and `--resume` write every point exactly once; a line InfluxDB 3 refuses is
kept and reported; the verification finds a difference; what cannot move is said before anything moves."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import requests

from ingest.__main__ import main
from ingest.fluxcsv import FluxQueryError, read_blocks
from ingest.migrate import parse_time
from tests.support.influxdb2_query import Table, encode_csv
from tests.support.lineprotocol import parse_lines
from tests.support.paths import REPO

HOUR = 3_600 * 10**9
DAY = 24 * HOUR
T0 = 1_700_006_400 * 10**9  # 2023-11-15T00:00:00Z: a day and an hour boundary

EVERY_KIND = "\n".join([
    # every field type, escapes in names and values, sparse fields (nulls), series with other tag sets
    f'room\\ temp,building=HQ,floor\\=x=1\\,2 temp=21.5,count=3i,total=18446744073709551615u,ok=true,'
    f'note="said \\"hi\\", left\\\\" {T0}',
    f'room\\ temp,building=HQ,floor\\=x=1\\,2 temp=-0.000001,ok=false {T0 + 1}',
    f'room\\ temp,building=HQ,floor\\=x=1\\,2 note="" {T0 + 2}',  # an empty string is a value, not a null
    f'room\\ temp,building=annex temp=1e+21,note=" leading space, ünïcode" {T0 + HOUR - 1}',
    f'room\\ temp,building=annex count=-9223372036854775807i {T0 + HOUR}',  # exactly on a window bound
    f'room\\ temp,building=annex,wing=east temp=0.1 {T0 + 2 * HOUR + 123_456_789}',
    f"room\\ temp temp=7 {-DAY - 5}",  # before 1970, no tag
    f"other,host=a value=1 {T0 + 5 * HOUR}",
    f"other,host=a value=2 {T0 + DAY + 5}",
])


def write2(fake, server, lines: str, bucket: str = "telemetry") -> None:
    response = requests.post(f"{server.url}/api/v2/write", params={"org": "stack", "bucket": bucket},
                             data=lines.encode(), headers={"Authorization": f"Token {fake.token2}"}, timeout=10)
    assert response.status_code == 204, response.text


def rows3(fake, database: str, table: str) -> list[dict]:
    """Every row of an InfluxDB 3 table, time as ns, nulls left out."""
    batches = fake.v3.engine.execute(database, f'SELECT * FROM "{table}"')
    data = pa.Table.from_batches(batches)
    data = data.set_column(data.column_names.index("time"), "time", data.column("time").cast(pa.int64()))
    return sorted(({k: v for k, v in row.items() if v is not None} for row in data.to_pylist()),
                  key=lambda row: (row["time"], sorted(row.items(), key=str)))


def expected(lines: str, measurement: str, start: int | None = None, stop: int | None = None) -> list[dict]:
    found: dict[tuple, dict] = {}
    for point in parse_lines(lines):
        if point.measurement != measurement or (start is not None and point.timestamp < start) or \
                (stop is not None and point.timestamp >= stop):
            continue
        key = (point.timestamp, tuple(sorted(point.tags.items())))
        found.setdefault(key, {"time": point.timestamp, **point.tags}).update(point.fields)
    return sorted(found.values(), key=lambda row: (row["time"], sorted(row.items(), key=str)))


def migrate(*args: str) -> int:
    return main(["migrate", "--bucket", "telemetry", "--database", "moved", "--no-progress", *args])


def test_every_type_null_escape_and_nanosecond_moves_as_it_was(fake_influx, ingest_env, capsys):
    fake, server = fake_influx
    write2(fake, server, EVERY_KIND)
    assert migrate("--window", "1h") == 0
    for table in ("room temp", "other"):
        assert rows3(fake, "moved", table) == expected(EVERY_KIND, table), table
    schema = {row["column_name"]: row["data_type"] for row in fake.v3.engine.query(
        "moved", "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'room temp'")}
    assert schema["count"] == "Int64" and schema["total"] == "UInt64" and schema["ok"] == "Boolean"
    assert schema["note"] == "Utf8" and schema["temp"] == "Float64" and schema["building"].startswith("Dictionary")
    err = capsys.readouterr().err
    assert "read 9 rows, rejected 0" in err and "written 9" in err
    assert "9 points compared value by value: no difference" in err and "Traceback" not in err

    # Moving it again writes nothing: what InfluxDB 3 holds is read back and left out.
    before = len(fake.landed3)
    assert migrate("--window", "1h") == 0
    assert len(fake.landed3) == before
    assert "already stored unchanged 9" in capsys.readouterr().err


def test_start_is_inclusive_stop_exclusive_and_windows_meet_without_gap_or_overlap(fake_influx, ingest_env):
    fake, server = fake_influx
    lines = "\n".join(f"edge,k=v n={index}i {T0 + offset}" for index, offset in enumerate(
        [-1, 0, 1, HOUR - 1, HOUR, 2 * HOUR - 1, 2 * HOUR, 3 * HOUR]))
    write2(fake, server, lines)
    assert migrate("--start", "2023-11-15T00:00:00Z", "--stop", str(T0 + 3 * HOUR), "--window", "1h") == 0
    assert rows3(fake, "moved", "edge") == expected(lines, "edge", T0, T0 + 3 * HOUR)
    assert [row["n"] for row in rows3(fake, "moved", "edge")] == [1, 2, 3, 4, 5, 6]


def test_a_crash_half_way_then_resume_writes_every_point_exactly_once(fake_influx, ingest_env, tmp_path):
    """The process is killed (SIGKILL, nothing flushed) once its cursor has moved; `--resume` continues after the
    last window that landed, reads back what the writes in flight left, and writes each point once in all."""
    fake, server = fake_influx
    lines = "\n".join(f"crash,device=d{index % 3} v={index} {T0 + index * 60 * 10**9}" for index in range(24 * 60))
    write2(fake, server, lines)
    original = fake.v3

    class Slow:
        """InfluxDB 3 acknowledging each write after a while (its WAL flush), so there is a half-way. Counts the
        writes it is still handling: a write the killed process sent lands (or not) before the resume reads back."""

        def __init__(self) -> None:
            self.handling = 0
            self.lock = threading.Lock()

        def __getattr__(self, name):
            return getattr(original, name)

        def __call__(self, request):
            if request.path != "/api/v3/write_lp":
                return original(request)
            with self.lock:
                self.handling += 1
            try:
                time.sleep(0.05)
                return original(request)
            finally:
                with self.lock:
                    self.handling -= 1

    slow = fake.v3 = Slow()
    env = {**os.environ, "INGEST_BATCH_ROWS": "20", "INGEST_WRITES_IN_FLIGHT": "2", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "ingest", "migrate", "--bucket", "telemetry", "--database", "moved",
               "--window", "1h", "--checkpoint", "200ms", "--no-progress"]
    cursor = tmp_path / "state" / "migrate.json"
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            done = _done(cursor)
            if done is not None and done >= T0 + 4 * HOUR:
                break
            time.sleep(0.02)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    settle = time.monotonic() + 10
    while slow.handling and time.monotonic() < settle:
        time.sleep(0.01)
    assert slow.handling == 0, "the writes the killed process had sent were still being handled after 10 s"
    done = _done(cursor)
    assert done is not None and T0 + 4 * HOUR <= done < T0 + 24 * HOUR
    landed_before = len(fake.landed3)
    assert 0 < landed_before < 24 * 60

    fake.v3 = original
    assert migrate("--window", "1h", "--resume") == 0
    assert rows3(fake, "moved", "crash") == expected(lines, "crash")
    assert len(fake.landed3) == 24 * 60, "every point written once over the crash and the resume"
    assert _done(cursor) == T0 + 24 * HOUR

    assert migrate("--window", "1h", "--resume") == 0  # all landed: nothing to resume
    assert len(fake.landed3) == 24 * 60


def _done(cursor: Path) -> int | None:
    try:
        entries = json.loads(cursor.read_text())
    except (OSError, ValueError):
        return None
    entry = entries.get("telemetry -> moved: crash")
    return None if entry is None else int(entry["done"])


def test_a_line_influxdb3_refuses_is_kept_with_its_reason_and_the_verification_reports_it(
        fake_influx, ingest_env, tmp_path, capsys):
    """Another writer makes `temp` an integer column after the plan was made: InfluxDB 3 refuses the float lines
    by number (a partial write), the others land, the refused ones wait in the rejects folder, and the
    verification names what is missing."""
    fake, server = fake_influx
    lines = "\n".join([f"refused,k=a hum=40,temp=1.5 {T0}", f"refused,k=b hum=41 {T0 + 1}",
                       f"refused,k=c temp=2.5 {T0 + 2}"])
    write2(fake, server, lines)
    original = fake.v3

    class Racing:
        def __getattr__(self, name):
            return getattr(original, name)

        def __call__(self, request):
            if request.path == "/api/v3/write_lp" and "refused" not in fake.v3_tables:
                fake.v3_tables.add("refused")
                original.engine.write("moved", f"refused,k=z temp=1i {T0 - DAY}")
            return original(request)

    fake.v3_tables = set()
    fake.v3 = Racing()
    assert migrate() == 1
    fake.v3 = original
    assert rows3(fake, "moved", "refused") == [{"time": T0 - DAY, "k": "z", "temp": 1},
                                               {"time": T0 + 1, "k": "b", "hum": 41.0}]
    err = capsys.readouterr().err
    assert "refused by the database 2" in err
    [saved] = (tmp_path / "state" / "rejects").glob("*refused-influxdb3-*.lp.gz")
    assert sorted(gzip.decompress(saved.read_bytes()).decode().splitlines()) == sorted(
        line for line in lines.splitlines() if "temp=" in line)
    assert "field 'temp': InfluxDB 2 2, InfluxDB 3 0" in err
    assert "InfluxDB 3 holds fewer values" in err and "refused are in" in err


def test_the_verification_finds_a_changed_point_and_values_influxdb2_does_not_have(fake_influx, ingest_env, capsys):
    fake, server = fake_influx
    lines = "\n".join(f"checked,k=k{index % 2} v={index}.5,s=\"x{index}\" {T0 + index * 10**9}" for index in range(20))
    write2(fake, server, lines)
    assert migrate() == 0
    capsys.readouterr()
    fake.v3.engine.write("moved", [f"checked,k=k1 v=99.5 {T0 + 3 * 10**9}",  # a changed value
                                   f"checked,k=k9 v=1.5 {T0 + 30 * 10**9}"])  # a point InfluxDB 2 does not have
    assert migrate("--verify-only") == 1
    err = capsys.readouterr().err
    assert "field 'v': InfluxDB 2 20, InfluxDB 3 21" in err
    assert "k=k1 field 'v': InfluxDB 2 3.5, InfluxDB 3 99.5" in err
    assert "InfluxDB 3 holds values InfluxDB 2 does not" in err and "a point differs" in err


def test_what_cannot_move_as_it_is_is_said_before_anything_moves(fake_influx, ingest_env, capsys):
    fake, server = fake_influx
    week = 7 * DAY
    write2(fake, server, f"mixed,k=a v=1.5 {T0}")
    write2(fake, server, f"mixed,k=a v=2i {T0 + 2 * week}")  # another shard group: InfluxDB 2 takes it
    write2(fake, server, "\n".join([f"clash,x=1 y=3 {T0}", f"clash x=2 {T0}",  # a tag and a field named x
                                    f"hidden,k=a _secret=1,ok=2 {T0}"]))
    wide = ",".join(f"f{index}=1" for index in range(501))
    write2(fake, server, f"wide {wide} {T0}")
    for name in ("a", "b", "c", "d"):  # with telemetry, Core's 5 databases
        fake.v3.engine.create_database(name)

    assert migrate() == 2
    err = capsys.readouterr().err
    assert "measurement 'mixed': field 'v' has float and integer values in different shards" in err
    assert "--skip-field mixed v" in err
    assert "measurement 'clash': 'x' is both a tag and a field" in err and "--skip-field clash x" in err
    assert "measurement 'hidden': field '_secret' starts with '_'" in err
    assert "measurement 'wide' needs 501 columns" in err and "allows 500" in err
    assert "InfluxDB 3 already has 5 databases" in err and "nothing was moved" in err
    assert "moved" not in fake.databases and not fake.landed3

    fake.v3.engine.delete_database("d")
    assert migrate("--skip-field", "mixed", "v", "--skip-field", "clash", "x", "--skip-field", "hidden", "_secret",
                   "--skip-measurement", "wide") == 0
    assert rows3(fake, "moved", "clash") == [{"time": T0, "x": "1", "y": 3.0}]
    assert rows3(fake, "moved", "hidden") == [{"time": T0, "k": "a", "ok": 2.0}]
    assert "mixed" not in {row["table_name"] for row in fake.v3.engine.query(
        "moved", "SELECT table_name FROM information_schema.tables WHERE table_schema = 'iox'")}


def test_arguments_and_a_missing_bucket_are_refused_with_the_reason(fake_influx, ingest_env, capsys):
    assert main(["migrate", "--bucket", "nope", "--no-progress"]) == 3
    assert "InfluxDB 2 has no bucket 'nope' in organization 'stack'" in capsys.readouterr().err
    assert migrate("--start", "2024-02-01", "--stop", "2024-01-01") == 2
    assert "is not after --start" in capsys.readouterr().err
    assert migrate("--window", "soon") == 2
    assert "--window" in capsys.readouterr().err
    assert main(["migrate", "--bucket", "telemetry", "--database", "bad name", "--no-progress"]) == 2
    assert "'bad name' must be an ASCII letter or digit" in capsys.readouterr().err


def test_a_refused_token_stops_with_the_variable_to_check(fake_influx, ingest_env, capsys, monkeypatch):
    monkeypatch.setenv("INFLUXDB2_TOKEN", "wrong")
    assert migrate() == 3
    assert "401" in (err := capsys.readouterr().err) and "INFLUXDB2_TOKEN" in err and "Traceback" not in err
    monkeypatch.setenv("INFLUXDB2_TOKEN", fake_influx[0].token2)
    monkeypatch.setenv("INFLUXDB3_TOKEN", "apiv3_wrong")
    assert migrate() == 3
    assert "INFLUXDB3_TOKEN" in (err := capsys.readouterr().err) and "Traceback" not in err


def test_progress_counts_windows_and_shows_rows_and_the_time_left(caplog):
    from ingest.progress import Progress

    with caplog.at_level("INFO", logger="ingest.progress"):
        progress = Progress("migrate telemetry", total=4, steps="windows", bar=False, every=0)
        progress.update(1500)
        progress.step()
        progress.update(10)
    assert "1,510 rows so far" in caplog.text and "1 of 4 windows" in caplog.text and "to go" in caplog.text
    assert progress.eta() is not None


def test_parse_time_reads_dates_offsets_nanoseconds():
    assert parse_time("2023-11-15", "--start") == T0
    assert parse_time("2023-11-15T01:00:00.000000001+01:00", "--start") == T0 + 1
    assert parse_time("1969-12-31T00:00:00Z", "--start") == -DAY
    assert parse_time(str(T0 + 7), "--start") == T0 + 7
    with pytest.raises(ValueError, match="--stop 'tomorrow'"):
        parse_time("tomorrow", "--stop")


# ---- the annotated CSV reader ---------------------------------------------------------------------------------
def _table(rows: list[dict], kind: str = "string") -> Table:
    return Table([("_time", "dateTime"), ("_measurement", "string"), ("k", "string"), ("v", kind)],
                 ["_measurement", "k"], rows)


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[offset:offset + size] for offset in range(0, len(data), size))


@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_the_csv_reader_keeps_rows_whole_at_any_chunk_and_piece_size(chunk):
    values = ['plain', 'comma, inside', 'quote " inside', 'line\nbreak', '', None, ' lead', '\\.', 'x' * 300]
    tables = [_table([{"_time": T0 + index, "_measurement": "m", "k": f"k{index % 2}", "v": value}
                      for index, value in enumerate(values)]),
              _table([{"_time": -1, "_measurement": "m", "k": "z", "v": 1.5}], "double")]
    data = encode_csv(tables, ["datatype", "group", "default"])
    blocks = list(read_blocks(_pieces(data, chunk), piece_bytes=100))
    strings = [row for block in blocks if block.columns[-1].datatype == "string" for row in block.table.to_pylist()]
    # Flux writes LF inside a quoted value as CRLF (encoding/csv UseCRLF) and an empty string like a null.
    assert [row["v"] for row in strings] == ['plain', 'comma, inside', 'quote " inside', 'line\r\nbreak', None,
                                             None, ' lead', '\\.', 'x' * 300]
    assert [row["_time"].value for row in strings] == [T0 + index for index in range(len(values))]
    assert len(blocks) > 2, "the block was cut into pieces"
    [last] = [block for block in blocks if block.columns[-1].datatype == "double"]
    assert last.table.column("_time").cast(pa.int64()).to_pylist() == [-1] and last.group == ["_measurement", "k"]


def test_the_csv_reader_raises_the_error_table_and_reads_the_first_second_of_influxdb_time():
    error = (b"#datatype,string,long,dateTime:RFC3339,long\r\n#group,false,false,false,false\r\n"
             b"#default,_result,,,\r\n,result,table,_time,v\r\n,,0,1677-09-21T00:12:43.145224194Z,1\r\n\r\n"
             b"#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n"
             b",\"runtime error: schema collision, somewhere\",\r\n")
    blocks = read_blocks([error])
    first = next(blocks)
    assert first.table.column("_time").cast(pa.int64()).to_pylist() == [-(2**63) + 2]
    with pytest.raises(FluxQueryError, match="schema collision, somewhere"):
        next(blocks)
