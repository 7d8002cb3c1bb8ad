"""``--shard K/N``: a deterministic K-th of N parts of a list, for jobs split over machines.

Shard ``K`` (0-based, as ``$SLURM_ARRAY_TASK_ID`` of ``--array=0-(N-1)`` and Ray's ``range(N)``)
is the contiguous block ``items[K*n//N : (K+1)*n//N]`` of the ``n`` items in their given order
(``pica caption`` sorts them by key first; ``pica index build`` keeps the dataset's order and
cuts between whole batches of ``--batch-size`` examples, see :func:`take_shard`). Blocks
cover every item exactly once, differ in size by at most one, and laid end to end in ``K`` order
give the original list, which is what makes ``pica index merge`` equal to a one-shot build.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from pica.errors import InputError

T = TypeVar("T")
SHARD_PATTERN = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)``; ``None`` -> ``None``.

    Raises:
        InputError: not ``K/N`` with ``N >= 1`` and ``0 <= K < N``.
    """
    if spec is None:
        return None
    match = SHARD_PATTERN.fullmatch(spec)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise InputError(f"--shard must be K/N with 0 <= K < N (0-based, e.g. 0/4 ... 3/4), got '{spec}'")
    return int(match[1]), int(match[2])


def shard_bounds(count: int, shard: tuple[int, int]) -> tuple[int, int]:
    """``(start, stop)`` of shard ``(K, N)`` of ``count`` items."""
    k, n = shard
    return k * count // n, (k + 1) * count // n


def take_shard(items: Sequence[T], shard: tuple[int, int] | None, unit: int = 1) -> list[T]:
    """The items of ``shard`` (all of them for ``None``), in their order.

    Args:
        items: Everything, in the order shards are laid end to end.
        shard: ``(K, N)``.
        unit: Shards are made of whole blocks of ``unit`` items (the last block may be short):
            ``pica index build`` shards whole embedding batches, so each vector is computed in
            exactly the batch a one-shot build puts it in.
    """
    if shard is None:
        return list(items)
    blocks = -(-len(items) // unit)
    start, stop = shard_bounds(blocks, shard)
    return list(items[start * unit:stop * unit])
