"""Files written safely: atomic writes, checked appends, directory fsync, content hashes.

Every writer here either completes or leaves the previous state: a failed write (full disk, quota,
I/O error) removes its temporary file or truncates an append back to where it started, and raises
:class:`~pica.errors.StorageError` naming the path and the cause.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from pica.errors import StorageError


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def storage_error(path: Path | str, e: OSError) -> StorageError:
    """The one-line :class:`StorageError` for a failed write of ``path``."""
    cause = e.strerror or str(e) or type(e).__name__
    hint = " (free some space, then run the same command again)" if e.errno in (
        errno.ENOSPC, errno.EDQUOT) else ""
    return StorageError(f"cannot write {path}: {cause}{hint}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file next to it and a rename: never half-written.

    Args:
        path: The file to (re)place.
        write: Writes the complete content to the temporary path it is given.

    Raises:
        StorageError: the write, fsync or rename failed; the temporary file is removed and
            ``path`` keeps its previous content.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise storage_error(path, e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write`."""
    atomic_write(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")))


def append_record(fd: int, data: bytes, path: Path | str) -> None:
    """Append ``data`` (one complete record) to the append-only descriptor ``fd`` and fsync it.

    Short writes are continued; if the record cannot be written completely (an ``OSError`` such
    as a full disk, a write that makes no progress, a failed fsync, or an exception from a signal
    handler before the last byte is written), the file is truncated back to its length before the
    call, so it always ends with a complete record. A record written in full is never taken back.

    Raises:
        StorageError: the record could not be written (naming ``path`` and the cause).
    """
    start = os.lseek(fd, 0, os.SEEK_END)
    written = 0
    try:
        while written < len(data):
            n = os.write(fd, data[written:])
            if n <= 0:
                raise OSError(errno.EIO, "the write made no progress")
            written += n
        os.fsync(fd)
    except OSError as e:  # a failed write, or an fsync that cannot vouch for the record
        _roll_back(fd, start)
        raise storage_error(path, e) from e
    except BaseException:  # a signal handler's exception (Ctrl-C, SIGTERM) between two calls
        if written < len(data):
            _roll_back(fd, start)
        raise  # a complete record stays: it was written, and fsync is all that may be missing


def _roll_back(fd: int, length: int) -> None:
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    except OSError:
        pass  # nothing more can be done; the reader moves a torn record aside on resume
