"""Files written whole or not at all: the one temporary-then-rename writer of the code base.

A reader (another window, a PACS upload, a crash-restart) never sees half a
file: the content goes to a hidden temporary file in the same folder (so the
rename stays on one file system), is flushed to disk, and only then takes the
final name; the folder is then synced too, so the rename itself survives a
power cut. When writing fails, the temporary file is removed and the previous
file, if any, is left as it was.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _fsync(path: Path, flags: int = os.O_RDWR) -> None:
    # a file is opened for writing: Windows refuses to flush a read-only handle (EBADF)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | Path, *, durable: bool = True, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write it inside the block, and on a clean exit it
    replaces ``path``. ``durable`` flushes the bytes to disk before the rename (skip it only for
    working files that are rebuilt anyway); ``mode`` (e.g. ``0o600`` for a file holding patient
    data) is set before any byte is written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if mode is not None:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode))
            os.chmod(tmp, mode)  # the umask does not widen or narrow what was asked
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable and hasattr(os, "O_DIRECTORY"):  # POSIX: the new name is on disk once its folder is
        _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)


def write_bytes(path: str | Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """``data`` as the whole content of ``path``."""
    with atomic_path(path, durable=durable, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str, *, durable: bool = True, mode: int | None = None) -> None:
    """``text`` (UTF-8) as the whole content of ``path``."""
    write_bytes(path, text.encode("utf-8"), durable=durable, mode=mode)
