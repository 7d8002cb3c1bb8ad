"""Image loading overlapped with model work: decode and preprocess the next batches in threads.

:func:`prefetch_map` keeps a few batches ahead of the consumer: while the captioner and open_clip
run on batch *n* (torch releases the GIL in its kernels, as PIL does while decoding), loader threads
decode and preprocess the images of batches *n+1 … n+ahead*. Memory holds at most ``ahead + 1``
batches of images, so a dataset of any size streams through.

A thread pool, not a ``torch.utils.data.DataLoader``: no worker processes forked with the models
in memory, no tensors passed between processes, and errors (a broken image) arrive as the
``InputError`` the main thread raises. On the 2-core machine measured, worker processes were
somewhat faster still for open_clip alone (BENCHMARKS.md, "Index build throughput"); threads
were kept for the reasons above.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch_map(fn: Callable[[T], R], batches: Iterable[Sequence[T]], workers: int,
                 ahead: int = 2) -> Iterator[tuple[Sequence[T], list[R]]]:
    """Yield ``(batch, [fn(item) for item in batch])`` for each batch, in order.

    Args:
        fn: Work for one item (e.g. decode an image and preprocess it for each model).
        batches: The batches, consumed lazily.
        workers: Loader threads; 0 maps each batch in the calling thread when it is asked for
            (no overlap, the sequential path).
        ahead: Batches mapped ahead of the one being consumed (with ``workers`` > 0).

    Raises:
        Whatever ``fn`` raises for an item of the batch being yielded; work queued for later
        batches is cancelled.
    """
    if workers <= 0:
        for batch in batches:
            yield batch, [fn(item) for item in batch]
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pica-load")
    queue: deque[tuple[Sequence[T], list[Future]]] = deque()
    source = iter(batches)

    def submit() -> None:
        batch = next(source, None)
        if batch is not None:
            queue.append((batch, [pool.submit(fn, item) for item in batch]))

    try:
        for _ in range(max(ahead, 1)):
            submit()
        while queue:
            batch, futures = queue.popleft()
            results = [f.result() for f in futures]
            submit()
            yield batch, results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def parallel_map(fn: Callable[..., R], calls: Sequence[tuple], workers: int,
                 name: str = "pica-worker") -> list[R]:
    """``[fn(*args) for args in calls]`` with up to ``workers`` calls at once, results in order.

    With one worker or one call it runs in the calling thread. On the first failure the calls not
    yet started are cancelled and the exception is raised; calls still running are not waited for
    (an interrupt never waits on a request that hangs).
    """
    if workers <= 1 or len(calls) <= 1:
        return [fn(*args) for args in calls]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix=name)
    futures = [pool.submit(fn, *args) for args in calls]
    try:
        results = [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results
