"""Questions/s of `pica eval` against an OpenAI-compatible server, by --concurrency.

A stub server on 127.0.0.1 answers every ``/v1/completions`` request after a fixed delay, with at
most ``--slots`` requests served at once (like ``llama-server --parallel N`` or a GPU engine's batch
limit); the others wait in its queue. So the server's own limit is ``slots / delay`` requests/s,
and pica's overhead is what the measured rate falls short of ``min(concurrency, slots) / delay``.
The evaluation is the real one (starter index, MiniLM retrieval, prompts, resumable results file
fsynced per answer); the server also counts the TCP connections it accepted, which shows
connection reuse.

    python bench/concurrency.py
    python bench/concurrency.py --smoke   # 20 ms server, concurrency 4, 4 questions per server
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import SMOKE_HELP, command_line, machine, publish, smoke_folder  # noqa: E402

ANSWER = {"object": "text_completion", "model": "stub",
          "choices": [{"index": 0, "text": " baseball", "finish_reason": "stop",
                       "logprobs": {"tokens": [" baseball"], "token_logprobs": [-0.5], "text_offset": [0]}}],
          "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101}}


class StubServer:
    """OpenAI-style completions after ``delay`` seconds, ``slots`` at a time (HTTP/1.1 keep-alive)."""

    def __init__(self, delay: float, slots: int) -> None:
        self.delay, self.connections, self.requests = delay, 0, 0
        self._slots = threading.Semaphore(slots)
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with stub._lock:
                    stub.connections += 1

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stub._slots:
                    time.sleep(stub.delay)
                with stub._lock:
                    stub.requests += 1
                data = json.dumps(ANSWER).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def questions(n: int):
    from pica.types import Question

    topics = [("a young boy putting on a baseball glove", "What sport is the boy going to play?"),
              ("a red double decker bus on a city street", "In which city are these buses common?"),
              ("a plate with a slice of pepperoni pizza", "Which country is this dish from?"),
              ("a surfer riding a big wave in the ocean", "What is this person doing?")]
    return [Question(id=str(i), question=topics[i % 4][1], caption=f"{topics[i % 4][0]} {i}",
                     answers=["baseball"] * 10) for i in range(n)]


def measure(server: StubServer, concurrency: int, n: int) -> dict:
    from pica.config import Settings
    from pica.evaluation import evaluate

    settings = Settings(llm="openai:stub", api_base=server.base_url, concurrency=concurrency)
    server.connections = server.requests = 0
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        evaluate(settings, questions(n), out, dataset={"bench": "concurrency"}, progress=False)
        seconds = time.perf_counter() - start
    return {"concurrency": concurrency, "n": n, "q_per_s": n / seconds, "connections": server.connections,
            "requests": server.requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, default=0.25, help="seconds per request at the server")
    parser.add_argument("--slots", type=int, default=8, help="requests the server serves at once")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=3.0, help="about how long each setting runs")
    parser.add_argument("--min-questions", type=int, default=20, help="questions of each setting at least")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if not args.smoke:
        return bench(args)
    args.delay, args.slots, args.concurrency, args.seconds, args.min_questions = 0.02, 2, [4], 0.02, 4
    with smoke_folder("concurrency") as folder:
        bench(args, folder)


def bench(args: argparse.Namespace, smoke_dir: Path | None = None) -> None:
    """Every server and concurrency; the table."""
    from pica.retrieval.build import build_starter
    from pica.retrieval.store import resolve_index

    resolve_index("starter", build_starter)  # built once, before the clock
    rows = []
    for slots, label in ((args.slots, f"{args.slots} slots"), (max(args.concurrency) * 4, "unbounded")):
        server = StubServer(args.delay, slots)
        measure(server, 1, 4)  # warm-up: index, embedder, client
        for c in args.concurrency:
            n = max(args.min_questions, int(args.seconds * min(c, slots) / args.delay))
            row = {"server": label, "limit": slots / args.delay, **measure(server, c, n)}
            rows.append(row)
            print(f"{label:10} c={c:3}  {row['q_per_s']:7.1f} q/s  (server limit {row['limit']:.0f}/s,"
                  f" {row['connections']} connections for {row['requests']} requests)", flush=True)
        server.close()
    lines = ["| server | --concurrency | questions | questions/s | ideal min(c, slots)/delay | % of ideal |"
             " TCP connections |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        ideal = min(r["concurrency"], r["limit"] * args.delay) / args.delay
        lines.append(f"| {r['server']} | {r['concurrency']} | {r['n']} | {r['q_per_s']:.1f} | {ideal:.0f} |"
                     f" {100 * r['q_per_s'] / ideal:.0f}% | {r['connections']} |")
    body = (f"## LLM server kept full: questions/s by --concurrency\n\n"
            f"`{command_line()}` — {machine()}.\n\n"
            f"`pica eval` (starter index, MiniLM retrieval, 4 shots, results fsynced per answer) against a stub"
            f" OpenAI-compatible server on 127.0.0.1 that answers each request after {args.delay * 1000:.0f} ms,"
            f" serving at most {args.slots} requests at once (*{args.slots} slots*, like `llama-server"
            f" --parallel {args.slots}`) or all of them (*unbounded*). *ideal* is what a pica with no overhead"
            " would reach; TCP connections counts the connections the server accepted (pooled keep-alive"
            " connections are reused across requests).\n\n" + "\n".join(lines))
    if args.no_write:
        print(body)
    else:
        publish("concurrency", body, smoke_dir)


if __name__ == "__main__":
    main()
