"""Data sources. Each yields `Chunk`s: an Arrow table ready for the encoder, plus what the pipeline needs to
count rows and to quarantine bad ones with their line number."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ingest.lineprotocol import LineEncoder

__all__ = ["Chunk", "SourceError"]


class SourceError(RuntimeError):
    """The input cannot be read at all (missing file, no network, wrong format): the message names it and why."""


@dataclass
class Chunk:
    """One slice of an input.

    `rows_read` counts the input records the chunk stands for, the rejected ones included. `rejects` are rows
    already found bad while parsing (line, reason, record); `lines` and `record` map a row of `table` back to
    its input line and raw record, for rows the encoder rejects. `landed` lets a source keep a cursor that
    never runs ahead of what is safe (see `pipeline.load`'s `checkpoint`).
    """

    table: pa.Table
    encoder: LineEncoder
    input: str
    rows_read: int
    rejects: list[tuple[int | None, str, object]] = field(default_factory=list)
    lines: Callable[[np.ndarray], np.ndarray] | None = None
    record: Callable[[int], object] | None = None
    landed: Callable[[], None] | None = None  # called once this chunk and every one before it are written or spooled
    new: bool = False  # the database cannot hold any of these rows yet (its table did not exist): nothing to read back
