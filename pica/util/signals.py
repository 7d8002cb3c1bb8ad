"""SIGTERM handled like SIGINT, for long jobs (``pica eval``, ``pica index build``, calibration).

``timeout``, Slurm and Kubernetes stop a job with SIGTERM, whose default action kills the process
without unwinding: locks stay recorded, temporary files stay behind. Inside
:func:`terminate_as_interrupt` SIGTERM raises :class:`Terminated` instead — a ``KeyboardInterrupt``
subclass, so every ``finally`` and context manager that cleans up after Ctrl-C (run locks,
temporary files, checked appends) does the same for SIGTERM, and the CLI exits with 143.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143, what shells report for a process ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"terminated by signal {signum}")


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread.

    The previous handler is restored afterwards. A no-op outside the main thread (Python runs
    signal handlers only there) or where SIGTERM's handler was set by someone else.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        yield  # somebody (a server, a test harness) handles SIGTERM already
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


_leave_stuck_threads = False


def leave_stuck_threads_on_interrupt() -> None:
    """Let :func:`end_interrupted` end the process while threads are still blocked (the
    ``pica`` console command only, never a library caller or a test harness)."""
    global _leave_stuck_threads
    _leave_stuck_threads = True


def end_interrupted(code: int, grace: float = 1.0) -> None:
    """After an interrupt has unwound the main thread: give the other threads ``grace`` seconds
    to end, then, if some are still blocked (a request to a server that never answers), end the
    process now with ``code`` instead of waiting for them at exit.

    Everything a job keeps is already durable (appends are fsynced as they happen, outputs written
    atomically), so only abandoned work is lost. Does nothing unless
    :func:`leave_stuck_threads_on_interrupt` was called.
    """
    if not _leave_stuck_threads:
        return
    deadline = time.monotonic() + grace
    me = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not me and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and t is not me and not t.daemon for t in threading.enumerate()):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
