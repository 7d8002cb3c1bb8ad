"""Files written safely: atomic writes, checked appends, directory fsync, content hashes.

Every writer here either completes or leaves the previous state: a failed write (full disk, quota,
I/O error) removes its temporary file or truncates an append back to where it started, and raises
:class:`~pica.errors.StorageError` naming the path and the cause.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
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


class GroupAppender:
    """An append-only file of complete records whose fsyncs are shared (group commit).

    :meth:`append` writes a record completely or not at all (as :func:`append_record`: short
    writes continued, a failed one truncated back) but does not fsync: a background thread
    fsyncs once per ``window`` seconds for all the records written meanwhile, and :meth:`close`
    fsyncs the rest. A record is in the file (the page cache) when :meth:`append` returns, so a
    killed process (SIGKILL) never loses it; a power cut loses at most the records of the last
    ``window`` seconds (those not yet fsynced). A failed fsync rolls the file back to the last
    record it had made durable and raises :class:`StorageError` from the next :meth:`append` or
    :meth:`close`: those records are redone on resume, never counted twice.

    Args:
        path: The file (created if missing).
        window: Seconds during which appended records share one fsync.

    Raises:
        StorageError: the file cannot be opened.
    """

    def __init__(self, path: Path | str, window: float = 0.05) -> None:
        self.path, self.window = path, window
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise storage_error(path, e) from e
        self._end = self._synced = os.lseek(self.fd, 0, os.SEEK_END)
        self._dirty = False
        self._closed = False
        self._error: OSError | None = None
        self._cond = threading.Condition()
        self._flusher = threading.Thread(target=self._flush_loop, name="pica-fsync", daemon=True)
        self._flusher.start()

    def append(self, data: bytes) -> None:
        """Write one complete record (no fsync: see the class).

        Raises:
            StorageError: this record could not be written (the file ends with the previous
                record), or an earlier group's fsync failed (the file ends with the last durable one).
        """
        self._check()
        start = self._end
        written = 0
        try:
            while written < len(data):
                n = os.write(self.fd, data[written:])
                if n <= 0:
                    raise OSError(errno.EIO, "the write made no progress")
                written += n
        except OSError as e:
            _roll_back(self.fd, start)
            raise storage_error(self.path, e) from e
        except BaseException:  # a signal handler's exception between two calls
            if written < len(data):
                _roll_back(self.fd, start)
            else:
                self._written(start + written)  # a complete record stays
            raise
        self._written(start + written)

    def _written(self, end: int) -> None:
        with self._cond:
            self._end = end
            if not self._dirty:
                self._dirty = True
                self._cond.notify()

    def close(self) -> None:
        """fsync what is not durable yet, stop the flusher and close the file.

        Raises:
            StorageError: the last fsync failed (the file is rolled back to the last durable record).
        """
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._flusher.join()
        try:
            if self._error is None and self._end != self._synced:
                self._sync()
            self._check()
        finally:
            os.close(self.fd)

    def _sync(self) -> None:
        end = self._end
        try:
            os.fsync(self.fd)
        except OSError as e:
            self._error = e
        else:
            self._synced = end

    def _check(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            _roll_back(self.fd, self._synced)
            self._end = self._synced
            raise storage_error(self.path, error) from error

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                deadline = time.monotonic() + self.window
                while not self._closed and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                if self._closed:
                    return  # close() syncs in the caller's thread
                self._dirty = False
            if self._error is None:
                self._sync()


def _roll_back(fd: int, length: int) -> None:
    try:
        os.ftruncate(fd, length)
        os.fsync(fd)
    except OSError:
        pass  # nothing more can be done; the reader moves a torn record aside on resume
