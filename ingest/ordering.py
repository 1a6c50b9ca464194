"""Put a file's rows in time order before a history load sends them.

InfluxDB 3 Core writes one Parquet file per table per 10-minute window of data time per snapshot, and a history
load is sent in steps a snapshot apart (ingest/pacing.py). A file ordered by something else than time revisits
its windows: a Movebank export lists each bird's year one bird after another, so the bird study's four birds
made 17,434 (table, window) pairs of its 11,666 windows, each step persisting its own file of a window an earlier
step had written. In time order every window is sent once, within one step: one file per window, fewer steps.

Time order also keeps each chunk's time span narrow, so reading back what InfluxDB 3 already holds for it
(ingest/stored.py) reads the files of a few windows, not those of the whole year one bird's block spans.

A file is read whole to sort it, up to `max_rows` rows at a time (a larger one is ordered part by part, which
is still in time order when the file is); rows keep their input lines for the rejects file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.lineprotocol import LineEncoder
from ingest.sources import Chunk

__all__ = ["MAX_ROWS", "ROWS_PER_CHUNK", "in_time_order"]

log = logging.getLogger("ingest.ordering")

MAX_ROWS = 5_000_000  # rows held to sort at once (the bird study: 20,156; about 1 GB of a wide Movebank table)
ROWS_PER_CHUNK = 20_000  # rows per chunk sent: each a narrow span of time


def in_time_order(chunks: Iterable[Chunk], *, max_rows: int = MAX_ROWS,
                  rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[Chunk]:
    """The rows of `chunks` (one input) sorted by time (stable: rows at one instant keep their order), in chunks of
    at most `rows_per_chunk` rows, `max_rows` rows at a time."""
    part: list[Chunk] = []
    rows = 0
    for chunk in chunks:
        part.append(chunk)
        rows += chunk.table.num_rows
        if rows >= max_rows:
            log.info("%s: more than %d rows; ordered by time %d rows at a time", chunk.input, max_rows, max_rows)
            yield from _ordered(part, rows_per_chunk)
            part, rows = [], 0
    if part:
        yield from _ordered(part, rows_per_chunk)


def _ordered(part: list[Chunk], size: int) -> Iterator[Chunk]:
    """One part sorted and cut into chunks; the first carries the part's parse rejects (and counts them), the last
    the callbacks that move a cursor."""
    encoder = _encoder(part)
    sizes = [chunk.table.num_rows for chunk in part]
    table = pa.concat_tables([chunk.table for chunk in part], promote_options="default")
    order = pc.sort_indices(table, [(encoder.time, "ascending")]).to_numpy()
    table = table.take(pa.array(order))
    source = np.repeat(np.arange(len(part)), sizes)[order]  # each sorted row's chunk, and its row there
    row = np.concatenate([np.arange(count) for count in sizes] or [np.zeros(0, np.int64)])[order]
    rejects = [reject for chunk in part for reject in chunk.rejects]
    read = sum(chunk.rows_read for chunk in part)
    landed = [chunk.landed for chunk in part if chunk.landed is not None]
    starts = list(range(0, table.num_rows, size)) or [0]
    for index, start in enumerate(starts):
        last = index == len(starts) - 1
        sources, rows = source[start:start + size], row[start:start + size]
        count = len(sources)
        yield Chunk(
            table=table.slice(start, size), encoder=encoder, input=part[0].input,
            rows_read=count + (read - table.num_rows if index == 0 else 0), rejects=rejects if index == 0 else [],
            lines=_lines(part, sources, rows), record=_record(part, sources, rows),
            landed=_all(landed) if last and landed else None, new=all(chunk.new for chunk in part))


def _encoder(part: list[Chunk]) -> LineEncoder:
    """The part's encoder: the first one, with every field any chunk has (a column a block left out is null in
    the others' rows, which the encoder leaves out of their lines)."""
    first = part[0].encoder
    if first.fields is None or all(chunk.encoder.fields == first.fields for chunk in part):
        return first
    fields = list(dict.fromkeys(name for chunk in part for name in chunk.encoder.fields or ()))
    return LineEncoder(first.measurement, first.tags, fields, time=first.time, slice_rows=first.slice_rows)


def _lines(part: list[Chunk], sources: np.ndarray, rows: np.ndarray) -> Callable[[np.ndarray], np.ndarray] | None:
    """Rows of a sorted chunk -> their lines in the input, through the chunks they came from."""
    if any(chunk.lines is None for chunk in part):
        return None

    def lines(wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, dtype=np.int64)
        out = np.zeros(len(wanted), dtype=np.int64)
        for index in np.unique(sources[wanted]):
            picked = sources[wanted] == index
            out[picked] = part[index].lines(rows[wanted][picked])
        return out

    return lines


def _record(part: list[Chunk], sources: np.ndarray, rows: np.ndarray) -> Callable[[int], object] | None:
    if any(chunk.record is None for chunk in part):
        return None
    return lambda wanted: part[int(sources[wanted])].record(int(rows[wanted]))


def _all(callbacks: list[Callable[[], None]]) -> Callable[[], None]:
    def landed() -> None:
        for callback in callbacks:
            callback()

    return landed
