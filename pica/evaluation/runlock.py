"""One writer per run folder: an OS file lock held for the duration of a run.

``RunLock(folder)`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``folder/.lock`` and writes the
holder's pid, host and start time into that file (one JSON line). A second process that tries the
same folder fails at once with :class:`~pica.errors.RunInUseError` naming the holder. The kernel
drops the lock when the holder's descriptor closes, so a run killed by SIGKILL leaves no stale
lock: its ``.lock`` file stays behind with the dead holder's details, but those are only read while
somebody holds the lock, and the next holder overwrites them.

The file is never deleted: unlinking a lock file lets a process that opened the old inode lock it
while a newcomer locks a fresh file, and both would think they hold the folder. The descriptor is
close-on-exec, so programs the run starts do not inherit the lock (a bare ``fork`` without
``exec`` would share it until the child exits). Locks are advisory and per open file: two
``RunLock`` objects in one process also exclude each other.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from pica.errors import PicaError, RunInUseError
from pica.util.fileio import storage_error

LOCK_FILE = ".lock"
DEFAULT_HINT = "wait for it or use another run folder"


class RunLock:
    """Exclusive, non-blocking lock on a run folder, as a context manager.

    Example::

        with RunLock(Path("runs/dev")):
            ...  # the only writer of runs/dev

    Args:
        folder: An existing run folder.
        hint: What the refused user should do, appended to the error message.
    """

    def __init__(self, folder: str | Path, *, hint: str = DEFAULT_HINT) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.hint = hint
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or fail at once.

        Returns:
            ``self``.

        Raises:
            RunInUseError: another process (or another ``RunLock``) holds the folder.
            StorageError: the lock file cannot be created (read-only, full or failing storage).
            PicaError: the lock file cannot be opened or locked otherwise.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EIO):
                raise storage_error(self.path, e) from e  # read-only or full storage: exit 74
            raise PicaError(f"cannot open the lock file {self.path}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(fd)
            raise RunInUseError(in_use_message(self.folder, read_holder(self.folder), self.hint)) from e
        except OSError as e:
            os.close(fd)
            raise PicaError(f"cannot lock run folder {self.folder}: {e.strerror}") from e
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        data = (json.dumps(record) + "\n").encode("utf-8")
        try:  # the holder's details are informational: a full disk must not stop the run here
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the holder's details and drop the lock (no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(folder: str | Path) -> dict[str, Any] | None:
    """The details the current holder wrote to ``folder/.lock``, or ``None`` if unreadable.

    The file is empty between runs and for an instant while a new holder writes it; it may name a
    dead process when that process was killed, so only trust it while the lock is held.
    """
    try:
        record = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def in_use_message(folder: Path, holder: dict[str, Any] | None, hint: str = DEFAULT_HINT) -> str:
    """One line: which process holds ``folder`` and what to do about it."""
    if holder and holder.get("pid"):
        who = f"pid {holder['pid']} on host {holder.get('host', '?')}"
        if holder.get("started"):
            who += f" (started {holder['started']})"
    else:
        who = "another pica process"
    return f"run folder {folder} is in use by {who}; {hint}"


def is_held(folder: str | Path) -> bool:
    """Whether a process holds ``folder``'s run lock now (a ``pica eval`` or ``pica report`` at
    work), without taking it or writing anything: a shared lock on a read-only descriptor is tried
    and dropped at once. A folder without ``.lock`` (or whose lock file cannot be opened) is free.
    """
    try:
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the shared lock if it was taken
    return False
