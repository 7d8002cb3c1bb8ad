"""Progress bars with ETA on stderr (tqdm), disabled cleanly for tests and pipes."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True,
                 initial: int = 0) -> Iterator:
    """A tqdm bar (rate and ETA) writing to stderr; a no-op object when disabled."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=not enabled,
               file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    try:
        yield bar
    finally:
        bar.close()
