"""llama.cpp thread and batch settings for pica's prompts on this machine.

Times greedy answers to the default prompts of the first N dev questions for each combination of
CPU threads and prompt batch size, and with flash attention (each prompt evaluated from an empty
cache, as pica does). A second pass evaluates the prompts alone, to split prompt and answer time.

    python bench/llama_settings.py --n 60
    python bench/llama_settings.py --smoke   # 2 fixture prompts, two settings
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SMOKE_HELP, Data, bench_data, command_line, machine, publish  # noqa: E402
from hf_compare import make_prompts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        args.n = 2
    with bench_data("llama_settings", args.smoke) as data:
        bench(args, data)


def bench(args: argparse.Namespace, data: Data) -> None:
    """Time every setting on the same prompts and write the table."""
    from pica.llm.llama_cpp import LlamaCppBackend

    prompts = [p["prompt"] for p in make_prompts(args.n, {}, data)]
    cores = os.cpu_count() or 1
    configs = [(t, b, False) for t in sorted({1, cores}) for b in (32, 128, 512)]
    configs.append((cores, 512, True))
    if data.smoke_dir:  # the smallest batch and flash attention, one thread: two quick model loads
        configs = [(1, 32, False), (1, 512, True)]
    rows = []
    for threads, n_batch, flash in configs:
        backend = LlamaCppBackend("gemma3-270m", n_ctx=2048, threads=threads, n_batch=n_batch, flash_attn=flash)
        backend.complete(prompts[:1])
        start = time.perf_counter()
        tokens = answer_tokens = 0
        for p in prompts:  # each call starts from a reset cache
            completion = backend.complete([p])[0]
            tokens += completion.prompt_tokens
            answer_tokens += completion.completion_tokens
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        for p in prompts:  # the prompt alone: reset, evaluate, generate nothing
            backend.complete([p], max_tokens=0)
        prompt_seconds = time.perf_counter() - start
        rows.append((threads, n_batch, "on" if flash else "off", seconds / len(prompts), tokens / prompt_seconds,
                     1000 * (seconds - prompt_seconds) / max(answer_tokens, 1)))
        backend.close()
        print(rows[-1], flush=True)
    lines = [
        "## llama.cpp threads, batch size and flash attention",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"Default prompts of the first {len(prompts)} dev questions, each answered from an empty cache."
        " Prompt tokens/s comes from a second pass that evaluates the prompts alone; the rest of the"
        " time, per generated token, is the answer's cost.",
        "",
        "| threads | n_batch | flash attention | s/question | prompt tokens/s | ms per answer token |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {t} | {b} | {fa} | {s:.3f} | {tps:.0f} | {ms:.1f} |" for t, b, fa, s, tps, ms in rows]
    publish("llama_settings", "\n".join(lines), data.smoke_dir)


if __name__ == "__main__":
    main()
