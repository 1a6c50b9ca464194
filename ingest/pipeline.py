"""One load: chunks from a source, encoded, batched and delivered; bad rows quarantined; the run summarized.

Counting holds for every sink: rows read = rows rejected + rows written + rows refused by the database +
rows left in the spool + rows the database already held unchanged (replayed ones count as written once they
land).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from common.retention import spelled
from ingest.outputs import Outputs
from ingest.progress import Progress
from ingest.rejects import RejectsFile
from ingest.sources import Chunk
from ingest.stats import RunSummary, Tracker

__all__ = ["load"]

log = logging.getLogger("ingest.pipeline")


def load(source: str, chunks: Iterable[Chunk], outputs: Outputs, *, database: str | None = None,
         progress: Progress | None = None, record_metrics: bool = True, drain: bool = True,
         skip_stored: bool = False, checkpoint: float = 10.0) -> RunSummary:
    """Send every chunk, then flush and replay the spools once more. On an error (a fatal database answer, a
    full spool, Ctrl-C) the rows already read are still handed to the sinks before the error propagates.

    `skip_stored` (file loads, replays, backfills): lines InfluxDB 3 already holds are not written to it again
    (ingest/stored.py); the other sinks still get them.

    Chunks with a `landed` callback get it once their rows are written or spooled: every `checkpoint` seconds the
    writers settle (wait for the requests in flight) and the callbacks of the chunks sent so far are called,
    and the rest at the end; never after an error. Settling more often would wait out InfluxDB 3's write
    acknowledgement (its next WAL flush, about a second) with nothing else in flight."""
    tracker = Tracker(source, outputs.sinks)
    outputs.loads.append(tracker)
    writer = outputs.writer(database, history=skip_stored)
    stored = outputs.stored_rows(database) if skip_stored else None
    others = None  # with `stored`: the sinks other than InfluxDB 3, which get the lines it already holds
    if stored is not None and any(sink.name != "influxdb3" for sink in outputs.sinks):
        others = outputs.writer(database, exclude=("influxdb3",))
    rejects = RejectsFile(outputs.rejects_dir, source, outputs.run_id)
    retention = outputs.retention(database)
    cutoff = time.time_ns() - int(retention.total_seconds()) * 10**9 if retention is not None else None
    expired = 0  # rows older than the target's retention: written, and never seen (history belongs in history)
    read = 0
    writers = [w for w in (writer, others) if w is not None]
    waiting: list[Callable[[], None]] = []
    settled = time.monotonic()
    try:
        for chunk in chunks:
            read += chunk.rows_read
            for line, reason, record in chunk.rejects:
                rejects.add(input=chunk.input, line=line, reason=reason, record=record)
            if cutoff is not None:
                expired += _older_than(chunk, cutoff)
            encoded = chunk.encoder.encode(chunk.table)
            if len(encoded.rejected):
                rows = encoded.rejected.rows
                lines = chunk.lines(rows).tolist() if chunk.lines is not None else [None] * len(rows)
                for line, (row, reason) in zip(lines, encoded.rejected, strict=True):
                    rejects.add(input=chunk.input, line=line, reason=reason,
                                record=chunk.record(row) if chunk.record is not None else None)
            if stored is None or chunk.new:
                writer.write(encoded)
            else:
                fresh, known = stored.split(chunk.encoder, chunk.table, encoded)
                writer.write(fresh)
                if known.rows:
                    outputs.sink("influxdb3").counters.unchanged += known.rows  # type: ignore[union-attr]
                    if others is not None:
                        others.write(known)
            if progress is not None:
                progress.update(chunk.rows_read)
            if chunk.landed is not None:
                waiting.append(chunk.landed)
            if waiting and time.monotonic() - settled >= checkpoint:
                for each in writers:
                    each.settle()
                for landed in waiting:
                    landed()
                waiting, settled = [], time.monotonic()
    except BaseException:
        # Rows already read still go out (or into a spool) before the error stops the run.
        for each in writers:
            with contextlib.suppress(Exception):
                each.flush()
        raise
    else:
        for each in writers:
            each.close(drain=drain and each is writer)
        for landed in waiting:
            landed()
    finally:
        outputs.loads.remove(tracker)
        if stored is not None:
            stored.close()
        if progress is not None:
            progress.close()
    summary = tracker.finish(read, rejects.count, str(rejects.path) if rejects.count else None)
    fields: dict[str, object] = {"source": source, "rows_read": summary.read, "rows_rejected": summary.rejected,
                                 "seconds": round(summary.duration, 3)}
    for name, result in summary.sinks.items():
        fields.update({f"{name}_written": result.written, f"{name}_unchanged": result.unchanged,
                       f"{name}_spooled": result.spooled,
                       f"{name}_refused": result.refused, f"{name}_spool_rows": result.spool_rows})
    log.info("%s", summary.text(), extra={"fields": fields})
    if rejects.count:
        log.warning("%s: %d rows rejected; reasons and line numbers in %s", source, rejects.count, rejects.path)
    if expired and retention is not None:
        log.warning("%s: %d rows are older than the retention of %s (%s): InfluxDB 3 leaves them out of every query "
                    "and InfluxDB 2 deletes them. Load history from the past into %s (--bucket %s)", source, expired,
                    database or outputs.config.bucket, spelled(retention), outputs.config.history_bucket,
                    outputs.config.history_bucket)
    if record_metrics:
        outputs.record(summary)
    return summary


def _older_than(chunk: Chunk, cutoff_ns: int) -> int:
    """Rows of the chunk stamped before `cutoff_ns` (rows without a valid time are the encoder's rejects)."""
    stamps = chunk.table.column(chunk.encoder.time)
    if pa.types.is_timestamp(stamps.type):
        stamps = pc.cast(stamps, pa.timestamp("ns")).cast(pa.int64())
    elif not pa.types.is_integer(stamps.type):
        return 0
    return int(pc.sum(pc.less(stamps, cutoff_ns)).as_py() or 0)
