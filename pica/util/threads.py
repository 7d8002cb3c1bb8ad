"""How many threads pica's own NumPy/BLAS work may use, so it never oversubscribes the machine.

OpenBLAS (and FAISS's OpenMP) start one thread per core and spin them between calls. pica's
per-question work — the MiniLM encoder's products on a chunk's questions and captions, FAISS
searches — is small and runs *alongside* another engine: llama.cpp's threads on the local path,
the HTTP client's threads (and the server) on the API path. Spinning BLAS threads there cost
several times the CPU of the arithmetic and collapse as soon as the machine is busy (issue 28:
77 ms of CPU per question as shipped, 15.8 ms with one BLAS thread). So:

- per-question work (``pica eval``, ``answer``, ``serve``) uses **one** BLAS/OpenMP thread by
  default; ``--threads N`` given to an API run (no local model to share with) raises it to N;
- batch work (``pica index build``, ``pica caption``: large embedder batches, nothing else on
  the CPU) uses the **CPU budget**: ``--threads``, else the cores the process may run on
  (:func:`cpu_budget`: its CPU affinity and the cgroup's ``cpu.max`` quota).

:func:`bound_threads` applies a number: threadpoolctl caps every BLAS and OpenMP library loaded
now, and the ``*_NUM_THREADS`` variables cap those loaded later (FAISS and torch are imported lazily).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")
_bound: int | None = None


def cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs the cgroup quota allows (``cpu.max`` of cgroup v2, ``cpu.cfs_*`` of v1), or ``None``."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def cpu_budget(requested: int | None = None) -> int:
    """Threads pica may keep busy: ``requested`` (``--threads``), else the cores this process is
    given — its CPU affinity, capped by the cgroup quota (rounded up) — at least 1."""
    if requested:
        return max(1, int(requested))
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cgroup_cpus()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def per_question_threads(requested: int | None, *, local_model: bool) -> int:
    """BLAS/OpenMP threads of the per-question work: 1, or ``--threads`` on an API run (a local
    model's ``--threads`` are llama.cpp's own, which pica's NumPy work must not compete with)."""
    return 1 if local_model or not requested else cpu_budget(requested)


def bound_threads(n: int) -> int:
    """Cap the BLAS and OpenMP thread pools of this process at ``n`` (loaded libraries through
    threadpoolctl, later ones through the environment variables) and return ``n``; a no-op when
    ``n`` is already the bound (answers call it per question stream, ``serve`` per request)."""
    global _bound
    n = max(1, int(n))
    if n == _bound:
        return n
    for var in ENV_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    _bound = n
    return n


def bound() -> int | None:
    """The number :func:`bound_threads` last applied in this process (``None``: never)."""
    return _bound
