"""Writing a store's files into a set, and reading them back, through the set's codec.

Stores never touch compression or encryption themselves: they hand plain bytes (a stream, a file, or
pushed chunks) to a `StoreWriter`, and get plain bytes back from a `StoreReader`.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from backup.archive import COPY_BUFFER, Codec, Encoder, compression_of, open_decoded, stored_name
from backup.manifest import FileEntry

__all__ = ["StoreReader", "StoreWriter"]


def _safe_relative(relative: str) -> PurePosixPath:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"unsafe path in backup set: {relative!r}")
    return path


class StoreWriter:
    """Adds files under `<set>/<store>/` and remembers a FileEntry for each."""

    def __init__(self, set_dir: Path, store: str, codec: Codec):
        self.set_dir, self.store, self.codec = set_dir, store, codec
        self.root = set_dir / store
        self.root.mkdir(parents=True, exist_ok=True)
        self.entries: list[FileEntry] = []

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self.entries)

    def open(self, relative: str, *, compress: bool = True, codec: Codec | None = None) -> _EntryWriter:
        """A writer for pushed chunks; call `.close()` to record the entry (or `.abort()`)."""
        codec = codec or self.codec
        name = stored_name(str(_safe_relative(relative)), codec, compress=compress)
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return _EntryWriter(self, Encoder(target, codec, compress=compress), name, codec, compress)

    def add_stream(self, relative: str, source: BinaryIO, *, compress: bool = True,
                   codec: Codec | None = None) -> FileEntry:
        writer = self.open(relative, compress=compress, codec=codec)
        try:
            while block := source.read(COPY_BUFFER):
                writer.write(block)
        except BaseException:
            writer.abort()
            raise
        return writer.close()

    def add_file(self, relative: str, path: Path, **kwargs) -> FileEntry:
        with open(path, "rb") as source:
            return self.add_stream(relative, source, **kwargs)

    def add_bytes(self, relative: str, data: bytes, **kwargs) -> FileEntry:
        return self.add_stream(relative, io.BytesIO(data), **kwargs)


class _EntryWriter:
    def __init__(self, owner: StoreWriter, encoder: Encoder, name: str, codec: Codec, compress: bool):
        self.owner, self.encoder, self.name, self.codec, self.compress = owner, encoder, name, codec, compress

    def write(self, data: bytes | memoryview) -> None:
        self.encoder.write(data)

    def close(self) -> FileEntry:
        result = self.encoder.close()
        self.compressed_size = result.compressed_size
        entry = FileEntry(path=f"{self.owner.store}/{self.name}", store=self.owner.store, size=result.size,
                          sha256=result.sha256, plain_size=result.plain_size, plain_sha256=result.plain_sha256,
                          compression=self.codec.compression if self.compress else "none",
                          encrypted=self.codec.key is not None)
        self.owner.entries.append(entry)
        return entry

    def abort(self) -> None:
        self.encoder.abort()


class StoreReader:
    """Reads a store's files of a set by their original relative names."""

    def __init__(self, set_dir: Path, store: str, entries: list[FileEntry], key: bytes | None):
        self.set_dir, self.store, self.key = set_dir, store, key
        self.by_name: dict[str, FileEntry] = {}
        for entry in entries:
            self.by_name[self.original_name(entry)] = entry

    def original_name(self, entry: FileEntry) -> str:
        """`influxdb3/n/wal/x.wal.zst.enc` → `n/wal/x.wal` (what the store wrote)."""
        relative = entry.path[len(self.store) + 1:]
        if entry.encrypted and relative.endswith(".enc"):
            relative = relative[: -len(".enc")]
        suffix = {"gzip": ".gz", "zstd": ".zst"}.get(entry.compression, "")
        if suffix and relative.endswith(suffix):
            relative = relative[: -len(suffix)]
        return relative

    def names(self) -> list[str]:
        return sorted(self.by_name)

    def entry(self, relative: str) -> FileEntry:
        try:
            return self.by_name[relative]
        except KeyError:
            raise FileNotFoundError(f"{self.store}/{relative} is not in this backup set") from None

    def stored_path(self, relative: str) -> Path:
        entry = self.entry(relative)
        path = self.set_dir / _safe_relative(entry.path)
        if not path.is_file():
            raise FileNotFoundError(f"{entry.path} is listed in the manifest but missing from the set")
        return path

    @contextmanager
    def open(self, relative: str, *, decompress: bool = True) -> Iterator[BinaryIO]:
        with open_decoded(self.stored_path(relative), self.key, decompress=decompress) as stream:
            yield stream

    def read_bytes(self, relative: str) -> bytes:
        with self.open(relative) as stream:
            return stream.read()

    def copy_to(self, relative: str, target: Path, *, decompress: bool = True) -> None:
        """Write the decoded file to `target` (created; parents made)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        with self.open(relative, decompress=decompress) as source, open(target, "xb") as sink:
            while block := source.read(COPY_BUFFER):
                sink.write(block)

    @contextmanager
    def as_local_file(self, relative: str, scratch: Path, *, decompress: bool = True) -> Iterator[Path]:
        """A plain file on disk with the content: the stored file itself when nothing needs decoding,
        else a temporary decoded copy in `scratch` that is removed afterwards."""
        path = self.stored_path(relative)
        entry = self.entry(relative)
        if not entry.encrypted and (not decompress or compression_of(path.name) == "none"):
            yield path
            return
        scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".decode-", dir=scratch))
        try:
            target = folder / PurePosixPath(relative).name
            self.copy_to(relative, target, decompress=decompress)
            yield target
        finally:
            shutil.rmtree(folder, ignore_errors=True)
