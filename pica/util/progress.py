"""Progress bars with ETA on stderr (tqdm), disabled cleanly for tests and pipes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

# Set by ``--quiet`` (:func:`set_quiet`): every bar is off, whatever its caller asked.
_QUIET = False


def set_quiet(quiet: bool) -> bool:
    """Turn every progress bar off (``--quiet``) or back on; returns the previous setting."""
    global _QUIET
    previous, _QUIET = _QUIET, quiet
    return previous


@cache
def _bar_class():
    from tqdm import tqdm

    class Bar(tqdm):
        """A tqdm bar that prints its final line once: tqdm draws the line of the update that
        reaches ``total`` and again when it is closed; here only ``close`` draws it."""

        def update(self, n: float | None = 1) -> bool | None:
            if not self.disable and self.total is not None and self.n + (n or 0) >= self.total:
                self.n += n or 0
                return True
            return super().update(n)

    return Bar


@contextmanager
def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True,
                 initial: int = 0) -> Iterator:
    """A tqdm bar (rate and ETA) writing to stderr; a no-op object when disabled.

    Args:
        total: Steps in all.
        desc: Label before the bar.
        unit: Name of a step.
        enabled: Draw it (else every call is a no-op); never drawn after ``set_quiet(True)``.
        initial: Steps already done (a resumed run).

    Yields:
        The bar (``update(n)``, ``set_postfix_str``, ...); its final line is printed once, on exit.
    """
    bar = _bar_class()(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled or _QUIET,
                       file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    try:
        yield bar
    finally:
        bar.close()
