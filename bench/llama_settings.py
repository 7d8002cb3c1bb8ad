"""llama.cpp thread and batch settings for pica's prompts on this machine.

Times greedy answers to the default prompts of the first N dev questions for each combination of
CPU threads and prompt batch size (each prompt evaluated from an empty cache, as pica does).

    python bench/llama_settings.py --n 60
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, machine, update_section  # noqa: E402
from hf_compare import make_prompts  # noqa: E402


def main() -> None:
    from pica.backends.llama_cpp import LlamaCppBackend

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60)
    args = parser.parse_args()
    prompts = [p["prompt"] for p in make_prompts(args.n, [])]
    rows = []
    for threads in sorted({1, os.cpu_count() or 1}):
        for n_batch in (32, 128, 512):
            backend = LlamaCppBackend("gemma3-270m", n_ctx=2048, threads=threads, n_batch=n_batch)
            backend.complete(prompts[:1])
            start = time.perf_counter()
            tokens = 0
            for p in prompts:
                backend.reset_cache()
                tokens += backend.complete([p])[0].prompt_tokens
            seconds = time.perf_counter() - start
            rows.append((threads, n_batch, seconds / len(prompts), tokens / seconds))
            backend.close()
            print(rows[-1], flush=True)
    lines = [
        "## llama.cpp threads and batch size",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"Default prompts of the first {len(prompts)} dev questions, each answered from an empty cache.",
        "",
        "| threads | n_batch | s/question | tokens/s (prompt) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {t} | {b} | {s:.3f} | {tps:.0f} |" for t, b, s, tps in rows]
    update_section("llama_settings", "\n".join(lines))


if __name__ == "__main__":
    main()
