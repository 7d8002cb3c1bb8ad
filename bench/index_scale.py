"""Index builds at scale with synthetic vectors: memory, time, and approximate-search recall@16.

Streams N synthetic examples (random unit vectors of CLIP ViT-B-32 size: 512-d question + 512-d
image) through ``IndexWriter`` in batches, as ``pica index build`` does, then measures exact and
approximate (HNSW, IVF) search: recall@16 against exact search and milliseconds per query.
Each build runs in its own process so its peak memory is its own.

    python bench/index_scale.py --n 100000
    python bench/index_scale.py --smoke      # 3,000 examples, 100 queries
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SMOKE_HELP, command_line, machine, publish, smoke_folder  # noqa: E402

from pica.util.memory import peak_rss_mb  # noqa: E402

DIM = 512


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    """Vectors near random centres: real embeddings cluster; uniform noise is a worst case."""
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * unit(rng, n) / np.sqrt(2)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def build(n: int, out: Path, approximate: str | None, batch: int = 4096) -> dict:
    """Stream n synthetic examples into an index folder; report time and peak memory."""
    from pica.retrieval.writer import IndexWriter
    from pica.types import Example

    rng = np.random.default_rng(0)
    centres = {k: unit(rng, 2000) for k in ("question", "image")}
    start = time.perf_counter()
    with IndexWriter(out, "synthetic:clip-like", {"question": DIM, "image": DIM},
                     approximate=approximate, sources={"synthetic": n}) as writer:
        for first in range(0, n, batch):
            size = min(batch, n - first)
            examples = [Example(id=str(first + i), question=f"synthetic question {first + i}?",
                                answer="answer", caption="a synthetic caption", image_id=str(first + i))
                        for i in range(size)]
            writer.add(examples, {k: clustered(rng, c, size) for k, c in centres.items()})
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
            "bytes": sum(p.stat().st_size for p in out.iterdir())}


def search(out: Path, queries: int = 1000, k: int = 16) -> dict:
    """Recall@k of the folder's search index against exact search, and ms per query."""
    from pica.retrieval.index import ExampleIndex

    index = ExampleIndex.load(out, verify=False)
    rng = np.random.default_rng(1)
    centres = {kind: unit(np.random.default_rng(0), 2000) for kind in ("question", "image")}
    q = {kind: clustered(rng, c, queries) for kind, c in centres.items()}
    exact_index = index.flat_index(("question", "image"))
    start = time.perf_counter()
    _, exact = exact_index.search(np.concatenate([q["question"], q["image"]], axis=1), k)
    exact_ms = 1000 * (time.perf_counter() - start) / queries
    start = time.perf_counter()
    hits = index.nearest(q, k)
    ms = 1000 * (time.perf_counter() - start) / queries
    recall = float(np.mean([len({h.row for h in got} & set(want)) / k for got, want in zip(hits, exact)]))
    return {"recall": recall, "ms_per_query": ms, "exact_ms_per_query": exact_ms,
            "search": index.manifest["search"]}


def child(args: argparse.Namespace) -> None:
    out = Path(args.out)
    result = build(args.n, out, args.approximate)
    result.update(search(out, args.queries))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="examples to index")
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries of the recall and timing")
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--approximate", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if not args.smoke:
        return bench(args)
    args.n, args.queries = 3000, 100
    with smoke_folder("index_scale") as folder:
        bench(args, folder)


def bench(args: argparse.Namespace, smoke_dir: Path | None = None) -> None:
    """Each search kind built and measured in its own process; the table."""
    rows = []
    with tempfile.TemporaryDirectory(dir=smoke_dir) as tmp:
        for kind in (None, "hnsw", "ivf"):
            out = Path(tmp) / (kind or "exact")
            cmd = [sys.executable, __file__, "--child", "--n", str(args.n), "--out", str(out),
                   "--queries", str(args.queries)]
            if kind:
                cmd += ["--approximate", kind]
            result = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            rows.append((kind or "exact (flat)", result))
            print(kind or "exact", result, flush=True)
    raw_mb = args.n * 2 * DIM * 4 / 2**20
    lines = [
        "## Index builds at scale (synthetic vectors)",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"{args.n:,} examples streamed in batches of 4,096 through `IndexWriter` (512-d question +"
        f" 512-d image vectors, clustered like real embeddings; raw vectors {raw_mb:,.0f} MB).",
        f"Recall@16 is measured against exact search on {args.queries:,} held-out queries.",
        "",
        f"| search | build s | peak RSS MB | folder MB | recall@16 | ms/query (batch of {args.queries:,}) | params |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        params = ", ".join(f"{k}={v}" for k, v in r["search"].items() if k != "type") or "-"
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['bytes'] / 2**20:.0f} |"
                     f" {r['recall']:.3f} | {r['ms_per_query']:.2f} | {params} |")
    publish("index_scale", "\n".join(lines), smoke_dir)


if __name__ == "__main__":
    main()
