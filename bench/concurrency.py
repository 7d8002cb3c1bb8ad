"""pica's own CPU per question and questions/s against a served LLM, by --concurrency, idle and busy.

A stub OpenAI-compatible server runs **in its own process** (``--stub``): it answers every
``/v1/completions`` request after ``--delay`` seconds, at most ``--slots`` at once (like
``llama-server --parallel N`` or a GPU engine's batch limit). ``pica eval`` runs as a subprocess
the way a user runs it (OK-VQA dev, the pool index with MiniLM text vectors, cached VinVL
captions, ``--llm openai:stub --concurrency C``), twice per measurement: ``--short`` and
``--short + --questions`` questions. The figures are marginal (long run minus short run), so
start-up (imports, loading the index and the encoder) is not counted:

- *CPU ms/question*: the pica process's own user + system CPU time (``os.wait4``'s resource
  usage of that child; the stub's CPU is in another process and not counted);
- *questions/s*: the long run's questions over the time from its first request's arrival at the
  server to its last answer (so start-up and the outputs written at the end are not counted).

Each measurement is repeated ``--repeats`` times, alternating the pica versions given with
``--pica LABEL=ROOT`` (e.g. a checkout of the code before a change) so their ratio is paired;
with ``--busy`` the same runs again while two busy-loop processes keep the cores busy. Then the
MiniLM encoder's GFLOP/s on the same questions and captions (32 texts per call, as a chunk of 16
questions asks) next to a plain float32 matmul of the very same shapes (the machine's limit).

    python bench/concurrency.py --busy
    python bench/concurrency.py --smoke   # fixture data, 20 ms server, 2 + 4 questions
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import ROOT, SMOKE_HELP, Data, bench_data, command_line, machine, publish  # noqa: E402

ANSWER = {"object": "text_completion", "model": "stub",
          "choices": [{"index": 0, "text": " baseball", "finish_reason": "stop",
                       "logprobs": {"tokens": [" baseball"], "token_logprobs": [-0.5], "text_offset": [0]}}],
          "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101}}


def serve_stub(delay: float, slots: int) -> None:
    """The stub server (this process): prints its base URL, serves until killed."""
    gate, lock = threading.Semaphore(slots), threading.Lock()
    data = json.dumps(ANSWER).encode()
    stats = {"requests": 0, "first": None, "last": None}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # /stats: requests, first arrival, last answer (then reset)
            with lock:
                body = json.dumps(stats).encode()
                stats.update(requests=0, first=None, last=None)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                stats["first"] = stats["first"] or time.time()
            with gate:
                time.sleep(delay)
            with lock:
                stats["requests"] += 1
                stats["last"] = time.time()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.request_queue_size = 256
    print(f"http://127.0.0.1:{httpd.server_address[1]}/v1", flush=True)
    httpd.serve_forever()


class Stub:
    """The stub server in its own process."""

    def __init__(self, delay: float, slots: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--stub", "--delay", str(delay),
                                      "--slots", str(slots)], stdout=subprocess.PIPE, text=True)
        self.base_url = self.proc.stdout.readline().strip()

    def stats(self) -> dict:
        """Requests since the last call, when the first arrived and the last was answered."""
        from urllib.request import urlopen

        with urlopen(self.base_url + "/stats", timeout=60) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Busy:
    """Two busy-loop processes (a machine busy with other work), started and ended by pid."""

    def __init__(self, n: int = 2) -> None:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


ANSWERS: dict[Path, dict] = {}  # the last run's (example ids, answer) by question id, per pica root


def run_eval(root: Path, data: Data, stub: Stub, concurrency: int, limit: int) -> tuple[float, float]:
    """One ``pica eval`` subprocess with the code under ``root``: (its CPU seconds, the seconds from
    its first request's arrival at the server to its last answer)."""
    stub.stats()  # reset
    base_url = stub.base_url
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory(prefix="pica-bench-run-") as out:
        cmd = [sys.executable, "-m", "pica", "eval", out, "--dataset", str(data.dev), "--captions", str(data.captions),
               "--index", str(data.index), "--llm", "openai:stub", "--api-base", base_url,
               "--concurrency", str(concurrency), "--limit", str(limit), "--force-new",
               "--no-progress"]
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        served = stub.stats()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"pica eval failed ({proc.returncode}): {' '.join(cmd)}\n{err[-2000:]}")
        rows = [json.loads(line) for line in (Path(out) / "results.jsonl").read_text().splitlines()]
        if len(rows) != limit:
            raise SystemExit(f"pica eval wrote {len(rows)} rows, not {limit}")
    ANSWERS[root] = {r["question_id"]: (r["example_ids"], r["answer"]) for r in rows}
    if served["requests"] < limit:
        raise SystemExit(f"the stub served {served['requests']} requests for {limit} questions")
    return usage.ru_utime + usage.ru_stime, served["last"] - served["first"]


def marginal(root: Path, data: Data, stub: Stub, concurrency: int, short: int, extra: int) -> dict:
    """CPU ms per question of ``extra`` questions beyond a ``short`` run, and questions/s of the
    long run while it answered (its first request to its last answer: start-up and the outputs
    written at the end are not counted)."""
    cpu_short, _ = run_eval(root, data, stub, concurrency, short)
    cpu_long, served = run_eval(root, data, stub, concurrency, short + extra)
    return {"cpu_ms": 1000 * (cpu_long - cpu_short) / extra, "q_per_s": (short + extra) / max(served, 1e-9)}


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, (var / n) ** 0.5


def fmt(values: list[float], digits: int = 1) -> str:
    mean, se = mean_se(values)
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def encoder_speed(data: Data, n: int, chunk: int = 16, repeats: int = 3) -> dict:
    """The MiniLM encoder's GFLOP/s on ``n`` dev questions + captions (2 x ``chunk`` texts per
    call, a fresh cache), and a plain float32 matmul's on the same product shapes."""
    import numpy as np

    from pica.datasets import load_questions
    from pica.datasets.captions import find_caption, read_captions
    from pica.retrieval.embedders import make_embedder
    from pica.util.threads import bound_threads

    bound_threads(1)
    qs = load_questions(dataset=data.dev, limit=n)
    captions = read_captions(data.captions)
    texts = [[*(q.question for q in qs[i:i + chunk]),
              *(find_caption(captions, q.id, q.image_id) or "" for q in qs[i:i + chunk])]
             for i in range(0, len(qs), chunk)]
    model = make_embedder("sentence-transformers:all-MiniLM-L6-v2").model
    d, inner, layers = model.dim, int(model.config["intermediate_size"]), model.layers
    shapes, flops = [], 0.0
    for batch in texts:
        lengths = [len(e.ids) for e in model.tokenizer.encode_batch(batch)]
        tokens, longest = sum(lengths), max(lengths)
        for k, m in ((d, 3 * d), (d, d), (d, inner), (inner, d)):
            shapes.append((tokens, k, m))
            flops += 2.0 * tokens * k * m * layers
        flops += 4.0 * len(lengths) * longest * longest * d * layers  # scores and context
    best_encode = best_matmul = float("inf")
    operands = [(np.random.rand(t, k).astype(np.float32), np.random.rand(k, m).astype(np.float32))
                for t, k, m in shapes]
    for _ in range(repeats):
        model._cache.clear()
        start = time.process_time()
        for batch in texts:
            model.encode(batch)
        best_encode = min(best_encode, time.process_time() - start)
        start = time.process_time()
        for _layer in range(layers):
            for a, b in operands:
                a @ b
        best_matmul = min(best_matmul, time.process_time() - start)
    dense = sum(2.0 * t * k * m for t, k, m in shapes) * layers
    return {"questions": len(qs), "texts": sum(len(b) for b in texts), "encode_gflops": flops / best_encode / 1e9,
            "matmul_gflops": dense / best_matmul / 1e9, "encode_ms_per_question": 1000 * best_encode / len(qs)}


def ensure_index(data: Data) -> None:
    """Build the pool index (MiniLM text vectors, VinVL captions) unless it exists."""
    if not (data.index / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "pica", "index", "build", str(data.index), "--dataset",
                        str(data.pool), "--captions", str(data.captions)], check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per request at the server")
    parser.add_argument("--slots", type=int, default=64, help="requests the server serves at once")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--questions", type=int, default=400, help="questions the figures are marginal over")
    parser.add_argument("--short", type=int, default=50, help="questions of the short run (start-up)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (n of the ± SE)")
    parser.add_argument("--busy", action="store_true", help="measure again with two busy-loop processes")
    parser.add_argument("--pica", action="append", default=[], metavar="LABEL=ROOT",
                        help="a pica checkout to measure (repeatable; default: this one)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--stub", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.stub:
        return serve_stub(args.delay, args.slots)
    if args.smoke:
        args.delay, args.slots, args.concurrency, args.questions, args.short = 0.02, 4, [4], 4, 2
        args.repeats, args.busy = 1, True
    with bench_data("concurrency", args.smoke) as data:
        bench(args, data)


def bench(args: argparse.Namespace, data: Data) -> None:
    """Every pica, concurrency and machine state; the encoder's speed; the section."""
    ensure_index(data)
    versions = [tuple(p.split("=", 1)) for p in args.pica] or [("this checkout", str(ROOT))]
    states = ["idle", "busy"] if args.busy else ["idle"]
    stub = Stub(args.delay, args.slots)
    results: dict[tuple, list[dict]] = {}
    try:
        run_eval(Path(versions[0][1]), data, stub, 1, 1)  # warm the file cache
        for _ in range(args.repeats):
            for state in states:
                busy = Busy() if state == "busy" else None
                try:
                    for c in args.concurrency:
                        for label, root in versions:
                            row = marginal(Path(root), data, stub, c, args.short, args.questions)
                            results.setdefault((label, c, state), []).append(row)
                            print(f"{label} c={c} {state}: {row['cpu_ms']:.1f} ms CPU/question,"
                                  f" {row['q_per_s']:.1f} q/s", flush=True)
                finally:
                    if busy:
                        busy.close()
    finally:
        stub.close()
    speed = encoder_speed(data, args.short + args.questions)
    print(f"encoder: {speed['encode_gflops']:.1f} GFLOP/s, matmul {speed['matmul_gflops']:.1f} GFLOP/s", flush=True)
    stub = Stub(0.0, args.slots)
    try:
        speed["client_ms"] = client_cost(stub, max(args.concurrency), 20 if args.smoke else 300, args.repeats)
    finally:
        stub.close()
    print(f"openai client: {fmt(speed['client_ms'])} ms CPU per request", flush=True)
    publish("concurrency", section(args, versions, states, results, speed), data.smoke_dir) if not args.no_write \
        else print(section(args, versions, states, results, speed))


def client_cost(stub: Stub, concurrency: int, n: int, repeats: int) -> list[float]:
    """CPU ms per request of pica's OpenAI backend (the ``openai`` client and its HTTP library) in this
    process, ``n`` one-prompt completions per repeat from ``concurrency`` threads against the stub in
    its own process answering at once: the share of pica's per-question CPU that is the client's."""
    from concurrent.futures import ThreadPoolExecutor

    from pica.llm.openai_compat import OpenAICompatBackend

    backend = OpenAICompatBackend("stub", api_base=stub.base_url, concurrency=concurrency)

    def one(i: int) -> None:
        backend.complete([f"Question {i}: what is in the picture?\nAnswer:"], max_tokens=5)

    for i in range(concurrency):  # connections and imports warm
        one(i)
    costs = []
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(repeats):
            start = time.process_time()
            list(pool.map(one, range(n)))
            costs.append(1000 * (time.process_time() - start) / n)
    return costs


def section(args, versions, states, results, speed) -> str:
    """The BENCHMARKS.md section."""
    lines = ["| pica | --concurrency | machine | n | pica CPU ms/question | questions/s |", "|---|---|---|---|---|---|"]
    for c in args.concurrency:
        for state in states:
            for label, _ in versions:
                rows = results[(label, c, state)]
                lines.append(f"| {label} | {c} | {state} | {len(rows)} | {fmt([r['cpu_ms'] for r in rows])} |"
                             f" {fmt([r['q_per_s'] for r in rows])} |")
    ratios = []
    if len(versions) == 2:
        (old, _), (new, _) = versions
        for c in args.concurrency:
            for state in states:
                a, b = results[(old, c, state)], results[(new, c, state)]
                cpu = [x["cpu_ms"] / y["cpu_ms"] for x, y in zip(a, b)]
                qps = [y["q_per_s"] / x["q_per_s"] for x, y in zip(a, b)]
                ratios.append(f"- c={c}, {state}: {new} uses {fmt(cpu, 2)}× less CPU per question and answers"
                              f" {fmt(qps, 2)}× the questions/s of {old} (paired, n={len(cpu)})")
    if len(versions) == 2:
        a, b = (ANSWERS[Path(root)] for _, root in versions)
        same = sum(a[k] == b.get(k) for k in a)
        ratios.append(f"- the same nearest examples (ids in prompt order) and answers for {same} of {len(a)}"
                      " questions in both versions' last run")
    return (f"## pica's own CPU per question against a served LLM, idle and busy\n\n"
            f"`{command_line()}` — {machine()}.\n\n"
            f"`pica eval` on OK-VQA dev (pool index, MiniLM text vectors, cached VinVL captions) against a stub"
            f" OpenAI-compatible server in its own process answering after {args.delay * 1000:.0f} ms with"
            f" {args.slots} slots. CPU per question is marginal over {args.questions} questions (a"
            f" {args.short + args.questions}-question run minus a {args.short}-question one, each a `pica eval`"
            " subprocess), the pica process's own (user + system, `os.wait4`); questions/s are the long run's"
            " questions over the time from its first request's arrival at the server to its last answer; *busy*: two busy-loop processes run meanwhile;"
            " ± is one standard error over the n repeats. The machine is shared with other jobs, so compare"
            " rows of one run (versions alternate within each repeat).\n\n" + "\n".join(lines)
            + ("\n\n" + "\n".join(ratios) if ratios else "")
            + f"\n\nMiniLM encoder, one thread, {speed['questions']} questions + captions ({speed['texts']} texts,"
            f" 32 per call, fresh cache, best of 3): **{speed['encode_gflops']:.1f} GFLOP/s**"
            f" ({speed['encode_ms_per_question']:.2f} ms CPU per question) vs **{speed['matmul_gflops']:.1f}"
            f" GFLOP/s** for plain float32 matmuls of the same shapes"
            f" ({speed['matmul_gflops'] / speed['encode_gflops']:.2f}× apart). pica's OpenAI backend (the"
            f" `openai` client and its HTTP library) in one process, {max(args.concurrency)} threads against the"
            f" stub answering at once: **{fmt(speed['client_ms'])} ms CPU per request** (n={len(speed['client_ms'])}"
            " blocks); the rest of a question's CPU is pica's own bookkeeping (prompts, rows, JSON, retrieval"
            " outside the encoder).")


if __name__ == "__main__":
    main()
