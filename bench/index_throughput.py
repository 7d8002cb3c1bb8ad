"""Index-build throughput (images/s, peak RSS) with real-size models on random weights.

Builds an image index from N COCO-sized JPEGs with BLIP-base captions + ViT-B-32 image vectors
(and, as a second workload, ViT-B-32 image vectors alone, captions given), at several batch sizes
and loader settings: sequential (``--workers 0``: each batch decoded and preprocessed in turn, as
before the loader threads), loader threads (``--workers N``), and a ``torch.utils.data.DataLoader``
with N worker processes doing the same work, for comparison. Each build runs in its own process
(models loaded before the clock starts), so its peak RSS is its own.

    python bench/index_throughput.py                      # CPU, writes BENCHMARKS.md
    python bench/index_throughput.py --device cuda --n 512 --no-write
    python bench/index_throughput.py --smoke     # small models, 4 images, one build
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import ROOT, SMOKE_HELP, command_line, machine, publish, smoke_folder  # noqa: E402
from fullsize import make_blip_base, make_clip_b32, make_images, questions_for  # noqa: E402

from pica.util.memory import peak_rss_mb  # noqa: E402

CACHE = ROOT / "bench" / "out" / "fullsize"


def dataloader_map(fn, batches, workers, ahead=2):
    """:func:`pica.util.loading.prefetch_map` done by a torch DataLoader with worker processes."""
    from torch.utils.data import DataLoader, Dataset

    batches = list(batches)

    class Batches(Dataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return i, [fn(item) for item in batches[i]]

    loader = DataLoader(Batches(), batch_size=None, num_workers=workers, collate_fn=lambda x: x,
                        prefetch_factor=ahead if workers else None)
    for i, results in loader:
        yield batches[i], results


def one(job: dict) -> dict:
    """Run one build in this process; return its figures."""
    import torch

    from pica.caption import make_captioner
    from pica.retrieval import build as index_build

    if job["torch_threads"]:
        torch.set_num_threads(job["torch_threads"])
    from pica.retrieval.embedders import make_embedder

    cache = Path(job.get("cache", CACHE))
    paths = make_images(cache / "images", job["n"])
    questions = questions_for(paths)
    embedder = f"open_clip:{cache / 'clip-b32'}"
    make_embedder(embedder, device=job["device"], dtype=job["dtype"])
    captions = None
    if job["workload"] == "caption+image":
        make_captioner(str(cache / "blip-base"), device=job["device"], dtype=job["dtype"])
    else:
        captions = {q.image_id: "a picture" for q in questions}
    if job["loader"] == "dataloader":
        index_build.prefetch_map = dataloader_map
    workers = 0 if job["loader"] == "sequential" else job["workers"]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        index_build.build_index(Path(tmp) / "idx", questions, captions=captions,
                                captioner=str(cache / "blip-base"), embedder=embedder,
                                batch_size=job["batch"], workers=workers, device=job["device"],
                                dtype=job["dtype"], progress=False)
        seconds = time.perf_counter() - start
    return {**job, "images_per_s": job["n"] / seconds, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def jobs(args) -> list[dict]:
    """(workload, images, batch, torch threads, loader, workers) of each build."""
    plan = []
    for torch_threads in args.torch_threads:
        plan += [("caption+image", args.n, args.caption_batch, torch_threads, "sequential", 0)]
        plan += [("caption+image", args.n, args.caption_batch, torch_threads, "threads", args.workers[0])]
    for batch in args.batches:
        for torch_threads in args.torch_threads:
            plan += [("image", args.n_image, batch, torch_threads, "sequential", 0)]
            plan += [("image", args.n_image, batch, torch_threads, "threads", w) for w in args.workers]
    plan += [("image", args.n_image, args.batches[-1], args.torch_threads[0], "dataloader", args.workers[0])]
    if args.smoke:  # one build: captions and image vectors, the images loaded by the DataLoader
        plan = [("caption+image", args.n, args.caption_batch, args.torch_threads[0], "dataloader", args.workers[0])]
    keys = ("workload", "n", "batch", "torch_threads", "loader", "workers")
    return [{"device": args.device, "dtype": args.dtype, "cache": str(args.cache), **dict(zip(keys, p))}
            for p in plan]


def table(rows: list[dict]) -> str:
    lines = ["| workload | images | batch | torch threads | loader | workers | images/s | vs sequential |"
             " peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    base = {(r["workload"], r["batch"], r["torch_threads"]): r["images_per_s"]
            for r in rows if r["loader"] == "sequential"}
    for r in rows:
        ref = base.get((r["workload"], r["batch"], r["torch_threads"]))
        gain = f"{r['images_per_s'] / ref:.2f}×" if ref else "-"
        lines.append(f"| {r['workload']} | {r['n']} | {r['batch']} | {r['torch_threads'] or 'all'} |"
                     f" {r['loader']} | {r['workers']} |"
                     f" {r['images_per_s']:.2f} | {gain} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="images per caption+image build")
    parser.add_argument("--caption-batch", type=int, default=4, help="batch size of caption+image builds")
    parser.add_argument("--n-image", type=int, default=96, help="images per image-vectors-only build")
    parser.add_argument("--batches", type=int, nargs="+", default=[32],
                        help="batch sizes of image-vectors-only builds")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--torch-threads", type=int, nargs="+", default=[1, 0],
                        help="torch intra-op threads (0 = torch's default, all cores); 1 leaves the"
                        " other core to the loaders, as a GPU running the models would")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--no-write", action="store_true", help="print, do not update BENCHMARKS.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    args.cache = CACHE
    if not args.smoke:
        return bench(args)
    args.n, args.caption_batch, args.n_image, args.batches, args.workers = 4, 2, 4, [4], [2]
    args.torch_threads = [1]
    with smoke_folder("index_throughput") as folder:
        args.cache = folder / "fullsize"
        bench(args, folder)


def bench(args: argparse.Namespace, smoke_dir: Path | None = None) -> None:
    """Models and images (built once into the cache folder), each build in its own process, the table."""
    small = smoke_dir is not None
    make_blip_base(args.cache / "blip-base", small=small)
    make_clip_b32(args.cache / "clip-b32", small=small)
    make_images(args.cache / "images", max(args.n, args.n_image))
    rows = []
    for job in jobs(args):
        done = subprocess.run([sys.executable, __file__, "--one", json.dumps(job)], capture_output=True,
                              text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{r['workload']:14} batch {r['batch']:3} {r['loader']:10} w{r['workers']}:"
              f" {r['images_per_s']:7.2f} images/s  {r['peak_rss_mb']:.0f} MB", flush=True)
    body = (f"## Index build throughput: loader threads vs sequential loading\n\n"
            f"`{command_line()}` — {machine()}, device {args.device}, dtype {args.dtype}.\n\n"
            "Random-weight BLIP-base (captions, always the full 30 tokens) and ViT-B-32 (image"
            " vectors) built from their configs; COCO-sized 640×480 JPEGs. *sequential* is"
            " `--workers 0` (each batch's images decoded and preprocessed in the main thread, as"
            " before); *threads* is `--workers N` (pica's loader, batches decoded ahead while the"
            " models run); *dataloader* is a torch DataLoader with N worker processes doing the same"
            " work. Settings are compared within this one run.\n\n" + table(rows))
    if args.no_write:
        print(body)
    else:
        publish("index-throughput", body, smoke_dir)


if __name__ == "__main__":
    main()
