"""Arrow reads bytes in memory from a copy it owns: a process that parsed an InfluxDB 3 Parquet answer just before it
exits ends with its own exit code, not SIGABRT.

The root cause of migrate's "terminate called without an active exception" after a successful verification: Arrow
released the Python object behind its input (`io.BytesIO`, or `bytes` wrapped zero-copy) on one of its own threads
after read_table had returned, while the interpreter finalized (ingest/arrowio.py has the backtrace). Measured here
with pyarrow 26.0.1, one read and exit per process: `pq.read_table(io.BytesIO(body))` aborted 17 of 40 times,
`pq.read_table(pa.BufferReader(body))` 6 of 100 (3 of 100 without pre-buffering), ingest.arrowio 0 of 100.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ingest.arrowio import read_csv, read_parquet
from tests.support.paths import REPO

RUNS = 30  # a 6% abort rate fails this test 84% of the time; the BytesIO one always
# An InfluxDB 3 answer's shape: many row groups and columns, parsed as the last thing the process does.
LAST_READ_THEN_EXIT = """
import io
import pyarrow as pa, pyarrow.parquet as pq
from ingest.arrowio import read_parquet
table = pa.table({f"c{i}": pa.array(range(200_000)) for i in range(8)})
out = io.BytesIO()
pq.write_table(table, out, row_group_size=10_000)
assert read_parquet(out.getvalue()).num_rows == 200_000
"""


def test_a_process_that_reads_parquet_last_exits_cleanly_every_time():
    for run in range(RUNS):
        done = subprocess.run([sys.executable, "-c", LAST_READ_THEN_EXIT], cwd=REPO, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, f"run {run + 1} of {RUNS}: exit {done.returncode}: {done.stderr[-500:]}"
        assert "terminate called" not in done.stderr


def test_the_readers_answer_as_pyarrow_does_from_bytes():
    table = pa.table({"time": pa.array([1, 2, 3], pa.timestamp("ns")), "device": ["a", "b", None]})
    out = pa.BufferOutputStream()
    pq.write_table(table, out)
    assert read_parquet(out.getvalue().to_pybytes()).equals(table)
    data = b"a,b\n1,x\n2,\"y,z\"\n"
    options = {"parse_options": pcsv.ParseOptions(newlines_in_values=True)}
    assert read_csv(data, **options).equals(pcsv.read_csv(pa.BufferReader(data), **options))
    assert read_csv(memoryview(data)[4:], read_options=pcsv.ReadOptions(column_names=["a", "b"])).num_rows == 2


def test_no_ingest_module_hands_arrow_a_python_file_object():
    """Every Parquet and CSV parse of the ingest service goes through ingest.arrowio."""
    offenders = []
    for path in sorted((REPO / "ingest").rglob("*.py")):
        if path.name == "arrowio.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("read_table", "read_csv", "open_csv", "ParquetFile"):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.func.attr}")
    assert not offenders, "parse through ingest.arrowio instead: " + ", ".join(offenders)
