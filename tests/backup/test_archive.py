"""Streaming compression and authenticated encryption of set files: round trips and every way to tamper."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from backup.archive import CHUNK, HEADER, TAG, ArchiveError, Codec, digest_decoded, encode_stream, open_decoded

KEY = b"correct horse battery staple"
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 12345]


def _encode(tmp_path: Path, data: bytes, codec: Codec, name: str = "file") -> Path:
    target = tmp_path / (name + codec.suffix())
    encode_stream(io.BytesIO(data), target, codec)
    return target


def _decode(path: Path, key: bytes | None) -> bytes:
    with open_decoded(path, key) as stream:
        return stream.read()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip_with_and_without_encryption(tmp_path: Path, size: int, compression: str):
    data = os.urandom(size // 2) + b"\x00" * (size - size // 2)
    for key in (None, KEY):
        path = _encode(tmp_path, data, Codec(compression, 3, key), f"f{int(bool(key))}")
        assert _decode(path, key) == data
        assert path.name.endswith(Codec(compression, 3, key).suffix())


def test_encrypted_output_reveals_nothing_and_each_file_has_its_own_key(tmp_path: Path):
    data = b"INFLUXDB_TOKEN=abc123 " * 5000
    one = _encode(tmp_path, data, Codec("none", 0, KEY), "one").read_bytes()
    two = _encode(tmp_path, data, Codec("none", 0, KEY), "two").read_bytes()
    assert b"INFLUXDB_TOKEN" not in one
    assert one[HEADER.size:] != two[HEADER.size:], "same plaintext, different ciphertext (per-file salt)"
    assert len(one) == HEADER.size + len(data) + TAG


def _encrypted(tmp_path: Path, size: int = 2 * CHUNK + 100) -> tuple[Path, bytes]:
    data = os.urandom(size)
    return _encode(tmp_path, data, Codec("none", 0, KEY)), data


def test_a_wrong_key_is_rejected(tmp_path: Path):
    path, _ = _encrypted(tmp_path)
    with pytest.raises(ArchiveError, match="failed authentication"):
        _decode(path, b"not the right key at all")


def test_a_missing_key_is_named(tmp_path: Path):
    path, _ = _encrypted(tmp_path)
    with pytest.raises(ArchiveError, match="set BACKUP_ENCRYPTION_KEY"):
        _decode(path, None)


@pytest.mark.parametrize("tamper", ["flip-body", "flip-header", "truncate-chunk", "drop-last-chunk",
                                    "swap-chunks", "append"])
def test_tampering_is_detected(tmp_path: Path, tamper: str):
    path, _ = _encrypted(tmp_path)
    raw = bytearray(path.read_bytes())
    sealed = CHUNK + TAG
    if tamper == "flip-body":
        raw[HEADER.size + 1000] ^= 0x01
    elif tamper == "flip-header":
        raw[HEADER.size - 1] ^= 0x01  # chunk size field
    elif tamper == "truncate-chunk":
        del raw[-7:]
    elif tamper == "drop-last-chunk":
        del raw[HEADER.size + 2 * sealed:]
    elif tamper == "swap-chunks":
        first = raw[HEADER.size: HEADER.size + sealed]
        raw[HEADER.size: HEADER.size + sealed] = raw[HEADER.size + sealed: HEADER.size + 2 * sealed]
        raw[HEADER.size + sealed: HEADER.size + 2 * sealed] = first
    else:
        raw += b"extra"
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError):
        _decode(path, KEY)


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_corrupt_compressed_files_raise_archive_errors_naming_the_file(tmp_path: Path, compression: str):
    path = _encode(tmp_path, os.urandom(200_000), Codec(compression, 3, None))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match=path.name):
        digest_decoded(path, None)


def test_the_encoder_never_holds_the_whole_file(tmp_path: Path):
    """A 64 MiB stream goes through with a peak buffer of about one chunk (tracemalloc, not timing)."""
    import tracemalloc

    class Source(io.RawIOBase):
        remaining = 64 * CHUNK

        def readable(self):
            return True

        def readinto(self, buffer):
            size = min(len(buffer), self.remaining)
            buffer[:size] = b"\x5a" * size
            self.remaining -= size
            return size

    tracemalloc.start()
    encode_stream(io.BufferedReader(Source(), CHUNK), tmp_path / "big.zst.enc", Codec("zstd", 1, KEY))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * CHUNK, f"peak {peak / CHUNK:.1f} MiB for a 64 MiB file"
