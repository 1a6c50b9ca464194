"""Token files: read back, and written atomically with mode 0600, owned by the one service that reads them."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["read_secret", "write_secret"]


def read_secret(path: Path) -> str | None:
    """The token in `path`, or None when the file is missing or empty (a lost token)."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return value or None


def write_secret(path: Path, value: str, owner: tuple[int, int] | None) -> None:
    """Write `value` so that no reader ever sees a partial or world-readable file: a new 0600 file beside the
    target, synced, given to `owner`, then renamed over it. The folder becomes 0700 and the owner's too (the
    volume holds nothing else), so only that uid (and root) can reach the file."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{path.name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)  # whatever the umask
        if owner is not None:
            os.chown(temporary, *owner)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    os.chmod(folder, 0o700)
    if owner is not None:
        os.chown(folder, *owner)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
