"""Peak memory as summaries and benchmarks report it: the process's own, not its parent's."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pica.util.memory import peak_rss_mb

CHILD = ("import resource; from pica.util.memory import peak_rss_mb;"
         " print(peak_rss_mb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM and the inherited ru_maxrss are Linux's")
def test_a_child_reports_its_own_peak_not_its_parents():
    held = np.ones(400 * 2**20, dtype=np.uint8)  # 400 MB resident in this (parent) process
    held[::4096] = 2
    assert peak_rss_mb() >= 400
    own, inherited = map(float, subprocess.run([sys.executable, "-c", CHILD], check=True, capture_output=True,
                                                text=True).stdout.split())
    assert inherited >= 400  # getrusage carries the parent's high-water mark: the old figure
    assert own < 300  # a Python with pica's memory module imported is far below 400 MB
    del held
