"""``pica index merge``: join the shards of ``pica index build --shard K/N`` into one index.

Shard ``K`` holds the contiguous block ``K`` of the dataset's examples, cut between whole
embedding batches (:mod:`pica.util.shards`), so laying the shards' rows end to end in ``K`` order
gives the rows of a one-shot build with the same ``--batch-size`` in the same order, with the same
vectors (each computed in the same batch, copied exactly from the shard's flat FAISS index), hence
the same nearest examples. An approximate search index (``--approximate``) is rebuilt over all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pica.errors import InputError
from pica.retrieval.index import ExampleIndex
from pica.retrieval.writer import IndexWriter
from pica.util.progress import progress_bar


def merge_indexes(out: str | Path, shards: Sequence[str | Path], *, overwrite: bool = False,
                  progress: bool = True) -> Path:
    """Merge shard indexes into ``out``.

    Args:
        out: Index folder to create.
        shards: The shard folders, in any order: all ``N`` shards of one ``--shard K/N`` build.
        overwrite: Replace an existing ``out``.
        progress: Show a progress bar.

    Returns:
        The folder written.

    Raises:
        InputError: a folder that is not a shard, shards of different builds (embedder, vector
            kinds, N, sources), a shard missing or given twice, ``out`` exists.
    """
    if not shards:
        raise InputError("pass the shard folders to merge")
    loaded = [ExampleIndex.load(path) for path in shards]
    by_k: dict[int, ExampleIndex] = {}
    counts = set()
    for index in loaded:
        shard = index.manifest.get("sources", {}).get("shard")
        if not shard:
            raise InputError(f"{index.path} is not a shard (built without --shard K/N)")
        k, n = (int(v) for v in str(shard).split("/"))
        counts.add(n)
        if k in by_k:
            raise InputError(f"shard {k}/{n} given twice: {by_k[k].path} and {index.path}")
        by_k[k] = index
    if len(counts) != 1:
        raise InputError(f"the shards come from builds split in different ways ({sorted(counts)} parts)")
    n = counts.pop()
    if missing := sorted(set(range(n)) - set(by_k)):
        raise InputError(f"shards missing: {', '.join(f'{k}/{n}' for k in missing)}; merge all {n}")
    ordered = [by_k[k] for k in range(n)]
    first = ordered[0]
    dims = {kind: spec["dim"] for kind, spec in first.manifest["kinds"].items()}
    base = _shared_sources(first)
    for index in ordered[1:]:
        if index.embedder_id != first.embedder_id or index.kinds != first.kinds:
            raise InputError(f"{index.path} was built with {index.embedder_id} ({', '.join(index.kinds)}),"
                             f" {first.path} with {first.embedder_id} ({', '.join(first.kinds)})")
        if _shared_sources(index) != base:
            differs = ", ".join(_differences(_shared_sources(index), base))
            raise InputError(f"{index.path} and {first.path} were built from different sources"
                             f" or settings: {differs} differ")
    digests = {index.embedder_digest for index in ordered}
    if len(digests - {None}) > 1:
        raise InputError(f"the shards were embedded with different copies of {first.embedder_id}"
                         " (their embedder_digest differs)")
    search = first.manifest.get("search", {}).get("type", "flat")
    sources = {**{k: v for k, v in base.items() if k != "batch_size"}, "merged_shards": n}
    writer = IndexWriter(out, first.embedder_id, dims, overwrite=overwrite,
                         approximate=None if search == "flat" else search, sources=sources,
                         embedder_digest=digests.pop() if len(digests) == 1 else None)
    with progress_bar(total=sum(len(i) for i in ordered), desc="merging", unit="ex",
                      enabled=progress) as bar:
        for index in ordered:
            rows = range(len(index))
            writer.add([index.example(r) for r in rows],
                       {kind: index.vectors[kind].reconstruct_n(0, len(index)) for kind in dims})
            bar.update(len(index))
    return writer.finish()


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted names of the keys whose values differ (``batch_size``, ``content.captions``), with
    both values when they are short."""
    found = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            shown = f" ({x} vs {y})" if len(f"{x}{y}") <= 40 else ""
            found.append(f"{prefix}{key}{shown}")
    return found


def _shared_sources(index: ExampleIndex) -> dict:
    """The manifest sources every shard of one build has in common."""
    return {k: v for k, v in index.manifest.get("sources", {}).items()
            if k != "shard"}
