"""Peak memory of this process, as summaries and benchmarks report it."""

from __future__ import annotations

import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's ``VmHWM`` where there is one: ``getrusage``'s ``ru_maxrss`` also counts the process
    this one was started from (the kernel carries the parent's high-water mark across fork and
    exec), so a small command launched by a large one would report the large one's peak.
    Elsewhere ``ru_maxrss`` (kilobytes; bytes on macOS).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
