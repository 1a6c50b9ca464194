"""Streaming compression and authenticated encryption of backup files, chunk by chunk, never whole.

Stored file = compress(plain) then, when a key is configured, encrypt. Suffixes say what was applied:
`.gz` (gzip) or `.zst` (zstd), then `.enc`. Nothing here holds more than one chunk in memory.

Encryption format (README, "Encryption"), a STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015)
over AES-256-GCM:

    header  = b"ISBKENC1" | kdf_salt (16) | file_salt (16) | chunk_size (u32, big endian)       44 bytes
    master  = scrypt(key, salt=kdf_salt, n=2**15, r=8, p=1, length=32)     (cached per kdf_salt)
    file_key= HKDF-SHA256(master, salt=file_salt, info=b"influx-stack backup v1")
    chunk i = AES-256-GCM(file_key).encrypt(nonce = i (11 bytes, big endian) | last (1 byte: 0 or 1),
                                            data = next chunk_size plaintext bytes, aad = header)

Every file has its own key, so counter nonces never repeat; the header is authenticated as associated data;
the counter stops reordering and the `last` flag stops truncation (a stream that ends without a chunk
marked last is rejected, and so is data after it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["ArchiveError", "Codec", "EncodedFile", "Encoder", "digest_decoded", "encode_stream", "open_decoded",
           "sha256_file", "stored_name"]

MAGIC = b"ISBKENC1"
HEADER = struct.Struct(">8s16s16sI")
CHUNK = 1 << 20
TAG = 16
COPY_BUFFER = 1 << 20
_INFO = b"influx-stack backup v1"
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_masters: dict[tuple[bytes, bytes], bytes] = {}


class ArchiveError(ValueError):
    """A stored file cannot be decoded: wrong key, corruption, truncation or an unknown format."""


@dataclass(frozen=True)
class Codec:
    """How files are stored: compression ("gzip", "zstd" or "none") and an optional encryption key."""

    compression: str = "zstd"
    level: int = 3
    key: bytes | None = None

    def suffix(self, *, compress: bool = True) -> str:
        ext = {"gzip": ".gz", "zstd": ".zst", "none": ""}[self.compression] if compress else ""
        return ext + (".enc" if self.key else "")


@dataclass(frozen=True)
class EncodedFile:
    """What `encode_stream` wrote: stored bytes and their hash, plain bytes and theirs."""

    size: int
    sha256: str
    plain_size: int
    plain_sha256: str
    compressed_size: int  # after compression, before encryption: what `influx` manifests record


def stored_name(name: str, codec: Codec, *, compress: bool = True) -> str:
    return name + codec.suffix(compress=compress)


def _master(key: bytes, salt: bytes) -> bytes:
    cached = _masters.get((key, salt))
    if cached is None:
        cached = Scrypt(salt=salt, length=32, **_SCRYPT).derive(key)
        _masters[(key, salt)] = cached
    return cached


def _file_key(key: bytes, kdf_salt: bytes, file_salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=file_salt, info=_INFO).derive(_master(key, kdf_salt))
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# Per process, one scrypt salt: every file of a run shares the (expensive) master key derivation.
_RUN_SALT = os.urandom(16)


class _HashingWriter(io.RawIOBase):
    def __init__(self, sink: BinaryIO):
        self.sink, self.digest, self.count = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.digest.update(view)
        self.count += len(view)
        self.sink.write(view)
        return len(view)


class _EncryptingWriter(io.RawIOBase):
    """Buffers one chunk; seals it when full; seals the last (possibly empty) chunk on close."""

    def __init__(self, sink: BinaryIO, key: bytes, chunk_size: int = CHUNK):
        self.sink, self.chunk_size = sink, chunk_size
        file_salt = os.urandom(16)
        self.header = HEADER.pack(MAGIC, _RUN_SALT, file_salt, chunk_size)
        self.aead = _file_key(key, _RUN_SALT, file_salt)
        self.buffer, self.index = bytearray(), 0
        sink.write(self.header)

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.buffer += data
        while len(self.buffer) > self.chunk_size:  # keep >0 bytes back: the last chunk is sealed on close
            self._seal(bytes(self.buffer[: self.chunk_size]), last=False)
            del self.buffer[: self.chunk_size]
        return len(data)

    def _seal(self, chunk: bytes, *, last: bool) -> None:
        self.sink.write(self.aead.encrypt(_nonce(self.index, last), chunk, self.header))
        self.index += 1

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self.buffer), last=True)
            self.buffer.clear()
        super().close()


class _DecryptingReader(io.RawIOBase):
    def __init__(self, source: BinaryIO, key: bytes, name: str):
        self.source, self.name_ = source, name
        raw = source.read(HEADER.size)
        if len(raw) != HEADER.size:
            raise ArchiveError(f"{name}: too short to be an encrypted backup file")
        magic, kdf_salt, file_salt, chunk_size = HEADER.unpack(raw)
        if magic != MAGIC:
            raise ArchiveError(f"{name}: not an encrypted backup file (bad magic)")
        if not 0 < chunk_size <= 64 * CHUNK:
            raise ArchiveError(f"{name}: implausible chunk size {chunk_size}")
        self.header, self.chunk_size = raw, chunk_size
        self.aead = _file_key(key, kdf_salt, file_salt)
        self.index, self.pending, self.done = 0, b"", False
        self.lookahead = source.read(chunk_size + TAG)

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        current = self.lookahead
        self.lookahead = self.source.read(self.chunk_size + TAG)
        last = not self.lookahead
        try:
            plain = self.aead.decrypt(_nonce(self.index, last), current, self.header)
        except InvalidTag:
            where = "final " if last else ""
            raise ArchiveError(f"{self.name_}: {where}chunk {self.index} failed authentication (wrong key, "
                               "corrupted or truncated file)") from None
        self.index += 1
        self.done = last
        return plain

    def readinto(self, target) -> int:  # type: ignore[override]
        while not self.pending and not self.done:
            self.pending = self._next_chunk()
        size = min(len(target), len(self.pending))
        target[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def _compressor(codec: Codec, sink: BinaryIO) -> BinaryIO:
    if codec.compression == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=codec.level, mtime=0)  # type: ignore[return-value]
    if codec.compression == "zstd":
        return zstandard.ZstdCompressor(level=codec.level, write_checksum=True).stream_writer(
            sink, closefd=False)  # type: ignore[return-value]
    return sink


class Encoder:
    """Push-style writer: `write()` plain bytes, `close()` → EncodedFile. The target is fsynced on close."""

    def __init__(self, target: Path, codec: Codec, *, compress: bool = True):
        self.target = target
        self._raw = open(target, "xb")  # noqa: SIM115 - closed in close()
        self._stored = _HashingWriter(self._raw)
        self._encrypted: BinaryIO = (_EncryptingWriter(self._stored, codec.key)  # type: ignore[assignment]
                                     if codec.key else self._stored)
        self._counted = _HashingWriter(self._encrypted)
        active = Codec(codec.compression if compress else "none", codec.level, codec.key)
        self._compressed = _compressor(active, self._counted)
        self._plain = _HashingWriter(self._compressed)

    def write(self, data: bytes | memoryview) -> None:
        self._plain.write(data)

    def close(self) -> EncodedFile:
        if self._compressed is not self._counted:
            self._compressed.close()
        if self._encrypted is not self._stored:
            self._encrypted.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        return EncodedFile(self._stored.count, self._stored.digest.hexdigest(), self._plain.count,
                           self._plain.digest.hexdigest(), self._counted.count)

    def abort(self) -> None:
        self._raw.close()
        self.target.unlink(missing_ok=True)


def encode_stream(source: BinaryIO, target: Path, codec: Codec, *, compress: bool = True) -> EncodedFile:
    """Write `source` to `target` compressed (unless `compress` is False) and encrypted (with a key); fsync it."""
    encoder = Encoder(target, codec, compress=compress)
    try:
        while block := source.read(COPY_BUFFER):
            encoder.write(block)
    except BaseException:
        encoder.abort()
        raise
    return encoder.close()


def compression_of(name: str) -> str:
    base = name[: -len(".enc")] if name.endswith(".enc") else name
    if base.endswith(".zst"):
        return "zstd"
    if base.endswith(".gz"):
        return "gzip"
    return "none"


@contextmanager
def open_decoded(path: Path, key: bytes | None, *, decompress: bool = True) -> Iterator[BinaryIO]:
    """Read a stored file back as its plain bytes (decrypted, and decompressed unless told not to)."""
    encrypted = path.name.endswith(".enc")
    if encrypted and key is None:
        raise ArchiveError(f"{path.name} is encrypted: set BACKUP_ENCRYPTION_KEY (or _FILE) to read it")
    with open(path, "rb") as raw:
        stream: BinaryIO = io.BufferedReader(_DecryptingReader(raw, key, path.name), COPY_BUFFER) \
            if encrypted else raw  # type: ignore[arg-type]
        kind = compression_of(path.name) if decompress else "none"
        if kind == "gzip":
            stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
        elif kind == "zstd":
            stream = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)  # type: ignore[assignment]
        yield _Guarded(stream, path.name)  # type: ignore[misc]


class _Guarded:
    """Re-raise decoder errors (gzip, zstd) as ArchiveError naming the file."""

    def __init__(self, stream: BinaryIO, name: str):
        self.stream, self.name = stream, name

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(size)
        except ArchiveError:
            raise
        except (OSError, EOFError, zstandard.ZstdError, gzip.BadGzipFile) as exc:
            raise ArchiveError(f"{self.name}: cannot decompress ({exc})") from exc


def digest_decoded(path: Path, key: bytes | None, *, decompress: bool = True) -> tuple[int, str]:
    """(plain size, plain SHA-256) of a stored file, read through every check the decoder has."""
    digest, size = hashlib.sha256(), 0
    with open_decoded(path, key, decompress=decompress) as stream:
        while block := stream.read(COPY_BUFFER):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def sha256_file(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while block := handle.read(COPY_BUFFER):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
