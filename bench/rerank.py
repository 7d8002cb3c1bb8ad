"""Does re-ranking the neighbours' answers by their log-prob under the prompt beat greedy decoding?

For each tuning question (pool, leave-one-image-out, as in bench/tuning.py) pica builds its default
prompt and decodes greedily; then the greedy answer and the top-M answers of the nearest examples
(Prophet-style candidates with similarity-weighted confidences) are each scored by the LLM as
log P(" answer" + end-of-answer | prompt), reusing the prompt's KV cache. Candidates are chosen by
log-prob + lambda * log(confidence + eps) for a grid of lambda, and compared with greedy decoding.

    python bench/rerank.py --n 300
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, machine, update_section  # noqa: E402
from okvqa import CAPTIONS, INDEX, ensure_index  # noqa: E402
from tuning import tuning_split  # noqa: E402

LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0)


def main() -> None:
    from pica.answers import normalize_answer, soft_score
    from pica.config import Settings
    from pica.datasets import load_questions
    from pica.evaluation import _attach_cached_captions
    from pica.pipeline import Pipeline
    from pica.selection import candidates_from

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--m", type=int, default=5, help="candidates from the neighbours")
    parser.add_argument("--k", type=int, default=32, help="neighbours the candidates come from")
    args = parser.parse_args()
    ensure_index()
    questions = load_questions(dataset=tuning_split(900), limit=args.n)
    settings = Settings(captioner=str(CAPTIONS), index=str(INDEX))
    pipeline = Pipeline(settings)
    _attach_cached_captions(pipeline, questions)
    backend = pipeline.backend
    tail = pipeline.template.example.split("{answer}", 1)[1]
    end = tail[: len(tail) - len(tail.lstrip("\n"))] or "\n"
    records, t_gen, t_score = [], 0.0, 0.0
    for start in range(0, len(questions), 16):
        for item in pipeline._prepare(questions[start:start + 16]):
            # Retrieval for candidates reaches further than the prompt's examples.
            hits = pipeline.index.nearest(
                {"question": pipeline.embedder.embed_texts([item.question.question]),
                 "caption": pipeline.embedder.embed_texts([item.caption])}, args.k, settings.weights,
                [pipeline._rows_by_image.get(str(item.question.image_id), [])])[0]
            t0 = time.perf_counter()
            prompt = pipeline.build_prompts(item.question, item.caption, item.hits)[0].text
            backend.reset_cache()
            greedy = normalize_answer(backend.complete([prompt], max_tokens=settings.max_tokens)[0].text)
            t1 = time.perf_counter()
            cands = dict(candidates_from(pipeline.index, hits, args.m))
            options = [o for o in dict.fromkeys([greedy, *cands]) if o]
            logprobs = backend.score(prompt, [" " + o + end for o in options])
            t_gen, t_score = t_gen + t1 - t0, t_score + time.perf_counter() - t1
            label = item.question.label
            records.append({"greedy": soft_score(greedy, label), "options": options, "logprobs": logprobs,
                            "conf": [cands.get(o, 0.0) for o in options],
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
    update_section("rerank", "\n".join(lines))
    print("\n".join(lines))
    (Path(__file__).resolve().parent / "out" / "rerank.json").write_text(json.dumps(records))


if __name__ == "__main__":
    main()
