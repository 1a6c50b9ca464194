"""Arrow readers over bytes already in memory, which Arrow reads from a copy that it owns.

Arrow may drop its last reference to the input on one of its own threads after the read has returned (a Parquet
fragment's file source, released by a continuation on the CPU pool). If that input is Python's (`io.BytesIO`, or
`bytes` wrapped zero-copy by `pa.BufferReader`), dropping it takes the GIL; while the interpreter finalizes, that
ends the thread with pthread_exit, whose forced unwind meets a noexcept C++ destructor, and the process aborts
after its work was done ("terminate called without an active exception", exit 134). Seen in a backtrace here:
`ParquetFileFragment::~ParquetFileFragment -> BufferReader::~BufferReader -> PyBuffer::~PyBuffer ->
PyGILState_Ensure -> take_gil -> pthread_exit -> std::terminate`. A copy in Arrow's memory is freed without Python.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

__all__ = ["arrow_owned", "read_csv", "read_parquet"]


def arrow_owned(data: bytes | bytearray | memoryview) -> pa.Buffer:
    """`data` copied into a buffer Arrow allocated (one memcpy: a few ms for an answer of tens of MB)."""
    source = memoryview(data).cast("B")
    copy = pa.allocate_buffer(source.nbytes)
    memoryview(copy).cast("B")[:] = source
    return copy


def read_parquet(body: bytes) -> pa.Table:
    """A Parquet answer (an InfluxDB 3 `format=parquet` body) as a table."""
    return pq.read_table(pa.BufferReader(arrow_owned(body)))


def read_csv(data: bytes | memoryview, **options: object) -> pa.Table:
    """CSV bytes as a table, with pyarrow.csv.read_csv's options."""
    return pcsv.read_csv(pa.BufferReader(arrow_owned(data)), **options)  # type: ignore[arg-type]
