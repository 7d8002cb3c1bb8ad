"""`pica caption` images/s against a served vision model, by --concurrency, and pica's own CPU
cost per image.

The server (tests/servers.VisionServer in a subprocess) answers each chat-completions request
after a fixed latency with at most ``--slots`` requests served at once (vLLM's --max-num-seqs), so
its capacity is ``slots / latency`` images/s and "busy" is the measured rate over that capacity.
It does not decode the images (it stands for a GPU machine). The images are generated COCO-sized
photo-like JPEGs (640x480: gradients, shapes and sensor noise, quality 90, ~100 KB); the job is the
real one (`run_caption_job`: the openai client, resumable JSONL fsync'd per caption).

CPU per image: the time pica spends on one image before the request - as sent by `pica caption`
(a JPEG within --caption-max-side goes as its own bytes: header check + base64) and the decoded
path (decode + resize + JPEG encode + base64, what a 1280-px image or a decoded one costs) - and the
job's whole process CPU time per image at the highest concurrency (HTTP client included).

    python bench/caption_throughput.py            # writes the "caption-throughput" section
    python bench/caption_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import SMOKE_HELP, TESTS, command_line, machine, publish, smoke_folder  # noqa: E402

SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from servers import VisionServer
with VisionServer(slots={slots}, latency={latency}, decode=False) as s:
    print(s.base_url, flush=True)
    sys.stdin.read()
"""


def make_jpegs(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """Photo-like JPEGs: a colour gradient, a few ellipses and rectangles, Gaussian noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    w, h = size
    for i in range(count):
        rng = np.random.default_rng(i)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([a * x / w + b * y / h + c for a, b, c in rng.uniform(0, 160, (3, 3))], -1)
        image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            box = [x0, y0, x0 + rng.integers(20, w // 2), y0 + rng.integers(20, h // 2)]
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
        pixels = np.asarray(image).astype(np.float32) + rng.normal(0, 12, (h, w, 3))
        path = folder / f"COCO_bench_{i:012d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_image_ms(fn, paths: list[Path]) -> tuple[float, float]:
    """Mean and SE of the CPU milliseconds of ``fn(path)`` over ``paths`` (one thread)."""
    times = []
    for path in paths:
        start = cpu_seconds()
        fn(path)
        times.append((cpu_seconds() - start) * 1000)
    return statistics.mean(times), statistics.stdev(times) / len(times) ** 0.5


def run_job(base_url: str, paths_dir: Path, concurrency: int, limit: int, out: Path) -> tuple[float, float]:
    """Images/s and process CPU ms per image of one `pica caption` job."""
    from pica.caption import make_captioner
    from pica.caption.job import folder_tasks, run_caption_job

    cap = make_captioner("openai:bench", api_base=base_url, concurrency=concurrency)
    tasks = folder_tasks(paths_dir)[:limit]
    out.unlink(missing_ok=True)
    cpu, start = cpu_seconds(), time.perf_counter()
    run_caption_job(tasks, cap, out, concurrency=concurrency, progress=False)
    wall = time.perf_counter() - start
    return len(tasks) / wall, (cpu_seconds() - cpu) * 1000 / len(tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", default="1,4,8,16,32")
    parser.add_argument("--seconds", type=float, default=5.0, help="target length of each job")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        args.latency, args.images, args.repeats, args.seconds = 0.02, 12, 2, 0.2
        args.concurrency = "1,4"
    levels = [int(c) for c in args.concurrency.split(",")]
    capacity = args.slots / args.latency
    context = smoke_folder("caption_throughput") if args.smoke else tempfile.TemporaryDirectory()
    with context as tmp:
        tmp = Path(tmp)
        size = (64, 48) if args.smoke else (640, 480)
        paths = make_jpegs(tmp / "images", args.images, size)
        mean_kb = statistics.mean(p.stat().st_size for p in paths) / 1024
        from pica.util.images import file_data_url, image_data_url, load_image

        sent = per_image_ms(lambda p: file_data_url(p, 768), paths[:100])
        decoded = per_image_ms(lambda p: image_data_url(load_image(p), 512), paths[:100])
        server = subprocess.Popen([sys.executable, "-c", SERVER.format(
            tests=str(TESTS), slots=args.slots, latency=args.latency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            base_url = server.stdout.readline().strip()
            rows = []
            for c in levels:
                limit = min(args.images, max(8, round(args.seconds * min(c, args.slots) / args.latency)))
                runs = [run_job(base_url, tmp / "images", c, limit, tmp / "out.jsonl")
                        for _ in range(args.repeats)]
                rates = [r for r, _ in runs]
                se = statistics.stdev(rates) / len(rates) ** 0.5 if len(rates) > 1 else 0.0
                cpu = statistics.mean(ms for _, ms in runs)
                ideal = min(c, args.slots) / args.latency
                rows.append((c, limit, statistics.mean(rates), se, ideal, cpu))
        finally:
            server.stdin.close()
            server.wait(timeout=10)
        lines = [
            "## Caption throughput (`pica caption` against a served vision model)",
            "",
            f"Machine: {machine()}. Command: `{command_line()}`.",
            f"Server: {args.slots} slots, {args.latency:g} s per image = {capacity:g} images/s capacity,"
            f" in a subprocess on the same machine, not decoding images. Images: {args.images} generated"
            f" photo-like JPEGs {size[0]}x{size[1]}, {mean_kb:.0f} KB mean. Each figure: mean ± 1 SE over"
            f" {args.repeats} jobs of n images each.",
            "",
            "| --concurrency | n images per job | images/s | ideal min(c, slots)/latency | of ideal |"
            " server busy | process CPU ms/image |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c, n, rate, se, ideal, cpu in rows:
            lines.append(f"| {c} | {n} | {rate:.1f} ± {se:.1f} | {ideal:g} | {rate / ideal:.1%} |"
                         f" {rate / capacity:.1%} | {cpu:.2f} |")
        lines += [
            "",
            f"pica's CPU per image before the request (one thread, n = 100): as `pica caption` sends a"
            f" {size[0]}x{size[1]} JPEG (its own bytes: header check + base64) {sent[0]:.2f} ± {sent[1]:.2f} ms;"
            f" decoded path (decode + resize to 512 px + JPEG encode + base64) {decoded[0]:.2f} ±"
            f" {decoded[1]:.2f} ms.",
        ]
        for c, _, rate, _, _, _ in rows:
            if c == args.slots:
                gap = (c / rate - args.latency) * 1000
                lines.append(
                    f"At --concurrency {c} each slot idles {gap:.1f} ms per image between one answer"
                    " and the next request: the client parsing the answer, writing and fsyncing its"
                    " line (captions finishing together share one fsync), and sending the next"
                    " image; more requests in flight than slots hide that gap.")
        print(json.dumps({"rows": rows, "sent_ms": sent, "decoded_ms": decoded}))
        publish("caption-throughput", "\n".join(lines), tmp if args.smoke else None)


if __name__ == "__main__":
    main()
