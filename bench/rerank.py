"""Does re-ranking the neighbours' answers by their log-prob under the prompt beat greedy decoding?

For each tuning question (pool, leave-one-image-out, as in bench/tuning.py) pica builds its default
prompt and decodes greedily; then the greedy answer and the top-M answers of the nearest examples
(Prophet-style candidates with similarity-weighted confidences) are each scored by the LLM as
log P(" answer" + end-of-answer | prompt), reusing the prompt's KV cache. Candidates are chosen by
log-prob + lambda * log(confidence + eps) for a grid of lambda, and compared with greedy decoding.

    python bench/rerank.py --n 300
    python bench/rerank.py --smoke     # 3 questions of a small fixture
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SMOKE_HELP, Data, bench_data, command_line, machine, publish  # noqa: E402
from okvqa import ensure_index  # noqa: E402
from tuning import tuning_split  # noqa: E402

LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--m", type=int, default=5, help="candidates from the neighbours")
    parser.add_argument("--k", type=int, default=32, help="neighbours the candidates come from")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: all cores)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        args.n, args.k, args.threads = 3, 8, args.threads or 1
    with bench_data("rerank", args.smoke) as data:
        bench(args, data)


def bench(args: argparse.Namespace, data: Data) -> None:
    """Greedy answers, candidate log-probs and the re-ranking table."""
    from pica.answers import soft_score
    from pica.choice.candidates import answer_end
    from pica.config import Settings
    from pica.datasets import load_questions
    from pica.pipeline import Pipeline
    from pica.retrieval.selection import candidates_from

    ensure_index(data)
    questions = load_questions(dataset=tuning_split(900, data), limit=args.n)
    # Cached VinVL captions; the K candidate neighbours are fetched with the prompts' examples
    # (leave-one-image-out); answers are chosen here, never by a chooser of the index.
    settings = Settings(captioner=str(data.captions), index=str(data.index), candidate_neighbours=args.k,
                        choose="logprob", threads=args.threads)
    pipeline = Pipeline(settings)
    backend = pipeline.backend
    end = answer_end(pipeline.template.example)
    records, t_gen, t_score = [], 0.0, 0.0
    for start in range(0, len(questions), 16):
        for item in pipeline.prepare(questions[start:start + 16], neighbours=True):
            t0 = time.perf_counter()
            greedy = pipeline.greedy(item)  # the prompt, then greedy decoding from a reset cache
            prompt, answer = greedy.prompts[0].text, greedy.answers[0]  # normalized
            t1 = time.perf_counter()
            cands = dict(candidates_from(pipeline.index, item.neighbours[:args.k], args.m))
            options = [o for o in dict.fromkeys([answer, *cands]) if o]
            # Right after greedy decoding of the same prompt: the prompt's KV cache is reused.
            logprobs = [lp for lp, _ in backend.score_candidates(prompt, [" " + o + end for o in options])]
            t_gen, t_score = t_gen + t1 - t0, t_score + time.perf_counter() - t1
            label = item.question.label
            records.append({"greedy": soft_score(answer, label), "options": options,
                            "logprobs": logprobs, "conf": [cands.get(o, 0.0) for o in options],
                            "scores": [soft_score(o, label) for o in options],
                            "top1": soft_score(next(iter(cands), ""), label)})
    n = len(records)

    def rerank(lam: float, eps: float = 0.05) -> float:
        total = 0.0
        for r in records:
            if not r["options"]:
                continue
            best = max(range(len(r["options"])),
                       key=lambda i: r["logprobs"][i] + lam * math.log(r["conf"][i] + eps))
            total += r["scores"][best]
        return 100 * total / n

    greedy = 100 * sum(r["greedy"] for r in records) / n
    oracle = 100 * sum(max(r["scores"], default=0.0) for r in records) / n
    lines = [
        "## Re-ranking candidate answers by log-prob (tried, not adopted)",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"{n} pool tuning questions, pica's default prompt; candidates = greedy answer + top {args.m}"
        f" answers of the {args.k} nearest examples.",
        "",
        "| choice | accuracy % |",
        "|---|---|",
        f"| greedy decoding (pica) | {greedy:.2f} |",
        f"| top neighbour answer (no LLM) | {100 * sum(r['top1'] for r in records) / n:.2f} |",
    ]
    lines += [f"| re-rank: log-prob + {lam} x log(confidence + 0.05) | {rerank(lam):.2f} |" for lam in LAMBDAS]
    lines += [
        f"| oracle: best of the candidates | {oracle:.2f} |",
        "",
        f"Greedy decoding took {1000 * t_gen / n:.0f} ms/question; scoring the candidates added"
        f" {1000 * t_score / n:.0f} ms/question (prompt cached).",
    ]
    publish("rerank", "\n".join(lines), data.smoke_dir)
    data.out.mkdir(parents=True, exist_ok=True)
    (data.out / "rerank.json").write_text(json.dumps(records))


if __name__ == "__main__":
    main()
