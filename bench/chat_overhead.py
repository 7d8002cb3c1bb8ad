"""What the OpenAI-compatible API costs: /v1/chat/completions vs /v1/answer on one pica serve.

One ``pica serve`` process (the packaged Gemma, the starter index, ``--captioner openai:vlm``
against a stand-in vision server in this process that does not decode images: it stands for a GPU
machine) answers the same questions about the same JPEG through both routes in the same run:

- latency: one request at a time, the two routes alternating (A B, B A, ...) on the same question,
  so each pair is paired; the difference is reported with its paired SE;
- throughput: blocks of requests sent by ``--clients`` threads at once, the routes alternating by
  block; requests/s per block, mean ± SE over ``--repeats`` blocks per route.

The chat request is a plain question (a direct answer, the same pipeline work as /v1/answer): the
difference is the JSON/base64 body, the prompt parser and the OpenAI reply around the same answer.

    python bench/chat_overhead.py
    python bench/chat_overhead.py --smoke
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import SMOKE_HELP, TESTS, command_line, machine, publish, smoke_folder  # noqa: E402

sys.path.insert(0, str(TESTS))

QUESTIONS = ["What sport can you use this for?", "What is the man holding?", "Where is this photo taken?",
             "What season is it?", "What is the weather like?", "What are these people doing?",
             "What could this be used for?", "Which country is this in?"]


def jpeg(size: tuple[int, int]) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (120, 160, 200))
    draw = ImageDraw.Draw(img)
    for i in range(0, size[0], 24):
        draw.line([(i, 0), (size[0] - i, size[1])], fill=(200, 90 + i % 120, 40), width=5)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=85)
    return out.getvalue()


def request(port: int, route: str, question: str, image: bytes) -> tuple[float, float]:
    """Send one request; return (client seconds, the pipeline's own seconds)."""
    from serve_server import multipart

    if route == "chat":
        url = "data:image/jpeg;base64," + base64.b64encode(image).decode()
        body = json.dumps({"model": "pica", "max_tokens": 16, "temperature": 0, "messages": [
            {"role": "user", "content": [{"type": "text", "text": question},
                                         {"type": "image_url", "image_url": {"url": url}}]}]}).encode()
        path, ctype = "/v1/chat/completions", "application/json"
    else:
        body, ctype = multipart({"question": question}, {"image": ("photo.jpg", image, "image/jpeg")})
        path = "/v1/answer"
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        reply = conn.getresponse()
        data = json.loads(reply.read())
    finally:
        conn.close()
    seconds = time.perf_counter() - t0
    if reply.status != 200:
        raise RuntimeError(f"{path}: HTTP {reply.status} {data}")
    answer = data["pica"] if route == "chat" else data
    return seconds, float(answer["seconds"]["total"])


def block(port: int, route: str, image: bytes, requests: int, clients: int) -> float:
    """Requests/s of ``requests`` requests sent by ``clients`` threads at once."""
    todo = list(range(requests))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            request(port, route, QUESTIONS[i % len(QUESTIONS)], image)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return requests / (time.perf_counter() - t0)


def mean_se(values: list[float]) -> tuple[float, float]:
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return statistics.mean(values), se


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30, help="paired sequential requests per route")
    parser.add_argument("--clients", type=int, default=8, help="threads sending at once (throughput)")
    parser.add_argument("--block", type=int, default=12, help="requests per throughput block")
    parser.add_argument("--repeats", type=int, default=4,
                        help="throughput blocks per route (even: the ABBA order cancels a linear drift)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.clients, args.block, args.repeats = 2, 2, 4, 1
    from serve_server import pica_server
    from servers import VisionServer

    image = jpeg((160, 120) if args.smoke else (640, 480))
    load_before = os.getloadavg()[0]
    with smoke_folder("chat_overhead") if args.smoke else _nothing() as tmp, \
            VisionServer(slots=64, decode=False) as vision, \
            pica_server("--captioner", "openai:vlm", "--captioner-api-base", vision.base_url,
                        "--timeout", "900") as server:
        for route in ("answer", "chat"):  # warm both routes (first-use costs) before measuring
            request(server.port, route, QUESTIONS[0], image)
        latency: dict[str, list[float]] = {"answer": [], "chat": []}
        pipeline: dict[str, list[float]] = {"answer": [], "chat": []}
        for i in range(args.pairs):
            order = ("answer", "chat") if i % 2 == 0 else ("chat", "answer")
            for route in order:
                seconds, inside = request(server.port, route, QUESTIONS[i % len(QUESTIONS)], image)
                latency[route].append(seconds * 1000)
                pipeline[route].append(inside * 1000)
        rates: dict[str, list[float]] = {"answer": [], "chat": []}
        for r in range(args.repeats):
            for route in (("answer", "chat") if r % 2 == 0 else ("chat", "answer")):
                rates[route].append(block(server.port, route, image, args.block, args.clients))
        load = (load_before, os.getloadavg()[0])
        report(args, image, latency, pipeline, rates, load, Path(tmp) if args.smoke else None)


def report(args, image: bytes, latency: dict[str, list[float]], pipeline: dict[str, list[float]],
           rates: dict[str, list[float]], load: tuple[float, float], smoke_dir: Path | None) -> None:
    """Print the section and write it into BENCHMARKS.md (a smoke run: into its own folder)."""
    diffs = [c - a for c, a in zip(latency["chat"], latency["answer"])]
    d, d_se = mean_se(diffs)
    base, _ = mean_se(latency["answer"])
    outside = [(c - cp) - (a - ap) for c, cp, a, ap in zip(latency["chat"], pipeline["chat"],
                                                             latency["answer"], pipeline["answer"])]
    o, o_se = mean_se(outside)
    ratios = [c / a for c, a in zip(rates["chat"], rates["answer"])]
    ratio, ratio_se = mean_se(ratios)
    names = {"answer": "/v1/answer (multipart)", "chat": "/v1/chat/completions"}
    lines = [
        "## OpenAI-compatible API overhead (/v1/chat/completions vs /v1/answer)",
        "",
        f"Machine: {machine()}. Command: `{command_line()}`.",
        "One `pica serve` (packaged Gemma 3 270M, starter index, `--captioner openai:vlm` against a"
        " stand-in vision server in the client process that does not decode images) answers both routes"
        f" in the same run: the same {len(image) // 1024} KB JPEG and the same questions (a plain"
        " question: a direct answer, the same pipeline work). Latency: one request at a time, routes"
        f" alternating, n = {args.pairs} pairs; pipeline = the answer's own `seconds.total`. Throughput:"
        f" {args.repeats} blocks of {args.block} requests per route from {args.clients} threads at once"
        " (the local model answers one at a time), routes in ABBA order by block. The machine was shared:"
        f" 1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end; pairing keeps"
        " that load out of the differences, not out of the absolute figures.",
        "",
        "| route | n | latency ms | pipeline ms | outside the pipeline ms | requests/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for route in ("answer", "chat"):
        lat, lat_se = mean_se(latency[route])
        pipe, pipe_se = mean_se(pipeline[route])
        out, out_se = mean_se([x - y for x, y in zip(latency[route], pipeline[route])])
        rps, rps_se = mean_se(rates[route])
        lines.append(f"| {names[route]} | {len(latency[route])} | {lat:.1f} ± {lat_se:.1f} | {pipe:.1f} ±"
                     f" {pipe_se:.1f} | {out:.1f} ± {out_se:.1f} | {rps:.2f} ± {rps_se:.2f} |")
    lines += [
        "",
        f"Paired latency difference, chat − answer: **{d:+.1f} ± {d_se:.1f} ms** ({d / base:+.1%} ±"
        f" {d_se / base:.1%} of /v1/answer, n = {len(diffs)} pairs); of it outside the pipeline (the"
        f" pipeline's own time varies from answer to answer): **{o:+.1f} ± {o_se:.1f} ms**"
        f" ({o / base:+.2%} ± {o_se / base:.2%}); throughput ratio chat / answer:"
        f" **{ratio:.3f} ± {ratio_se:.3f}** (n = {len(ratios)} block pairs). Target: overhead <= 5%.",
    ]
    print(json.dumps({"latency_ms": latency, "pipeline_ms": pipeline, "rates": rates}))
    publish("chat-overhead", "\n".join(lines), smoke_dir)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
