"""Prophet's stage 2 with the packaged Gemma, from Prophet-format files made by pica's own stage 1.

Stage 1 (no VQA model): for every OK-VQA dev question and every pool question, the 32 nearest pool
examples by question + caption similarity (the pool index's MiniLM vectors, pica's default
weights, the question's own image left out) give

- candidates: the top 10 of the neighbours' answers with similarity-weighted confidences
  (:func:`pica.retrieval.selection.candidates_from`), written as Prophet's
  ``{question_id: [{"answer", "confidence"}]}`` JSON;
- answer-aware examples: the 32 neighbours, those whose answer is among the top-5 candidates first
  (:func:`pica.retrieval.selection.answer_aware`), as Prophet's ``{question_id: [example ids]}``.

Then `pica eval` on the first N dev questions, each setting its own process: pica's default, and
the Prophet path (the prophet template with the file's candidates, the file's examples, Prophet's
vote). The table also gives the candidates' own accuracy: top-1 (stage 1 alone) and the oracle
(share of questions where any of the 10 candidates scores).

    python bench/prophet.py --okvqa /work/shared/okvqa --index /tmp/pool-copy --limit 400 --threads 1
    python bench/prophet.py --table        # the table from the runs so far (common questions)
    python bench/prophet.py --smoke

The pool index is only read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Data, bench_data, command_line, machine, publish  # noqa: E402
from okvqa import ensure_index, mean_se, paired_difference, per_question, shown  # noqa: E402

K_NEIGHBOURS, K_CANDIDATES, AWARE_TOP = 32, 10, 5
SETTINGS: dict[str, tuple[str, list[str]]] = {
    "default": ("pica's default (PICa prompt, 4 nearest examples, 1 prompt)", []),
    "prophet": ("Prophet path: prophet template + file candidates (k=5), file examples, 4 shots x 1"
                " prompt, --choose prophet", ["--shots", "4", "--ensemble", "1", "--candidates", "5",
                                              "--choose", "prophet"]),
}
REFERENCE = "default"


def stage_one(data: Data, limit: int | None) -> dict[str, Path]:
    """Write the candidates (dev + pool) and answer-aware examples (dev) files; return their paths."""
    from pica.config import DEFAULT_WEIGHTS, Settings
    from pica.datasets import load_questions, read_captions
    from pica.datasets.prophet import write_candidates
    from pica.pipeline import Pipeline
    from pica.retrieval.selection import answer_aware, candidates_from

    pipeline = Pipeline(Settings(index=str(data.index)))
    index, embedder = pipeline.index, pipeline.embedder
    captions = read_captions(data.captions)
    dev = load_questions(dataset=data.dev, limit=limit)
    for q in dev:
        q.caption = captions.get(q.image_id)
    queries = {"question": embedder.embed_texts([q.question for q in dev]),
               "caption": embedder.embed_texts([q.caption or "" for q in dev])}
    dev_hits = index.nearest(queries, K_NEIGHBOURS, DEFAULT_WEIGHTS,
                             exclude=[index.rows_of_image(q.image_id) for q in dev])
    rows = list(range(len(index)))
    pool_vectors = {kind: index.row_vectors(kind, rows) for kind in index.kinds}
    pool_hits = index.nearest(pool_vectors, K_NEIGHBOURS, DEFAULT_WEIGHTS,
                              exclude=[index.rows_of_image(index.example(r).image_id) for r in rows])
    candidates = {q.id: candidates_from(index, hits, K_CANDIDATES) for q, hits in zip(dev, dev_hits)}
    candidates.update({index.example(r).id: candidates_from(index, hits, K_CANDIDATES)
                       for r, hits in zip(rows, pool_hits)})
    examples = {q.id: [index.example(h.row).id for h in answer_aware(index, hits, K_NEIGHBOURS, AWARE_TOP)]
                for q, hits in zip(dev, dev_hits)}
    data.out.mkdir(parents=True, exist_ok=True)
    files = {"candidates": data.out / "prophet_candidates.json", "examples": data.out / "prophet_examples.json"}
    write_candidates(files["candidates"], candidates)
    files["examples"].write_text(json.dumps(examples))
    return files


def oracle(data: Data, files: dict[str, Path], ids: list[str]) -> dict[str, tuple[float, float]]:
    """Top-1 accuracy and oracle (any candidate scores) of the candidates on the questions ``ids``."""
    from pica.answers import score
    from pica.datasets import load_questions
    from pica.datasets.prophet import read_candidates

    cands = read_candidates(files["candidates"])
    gold = {q.id: q for q in load_questions(dataset=data.dev)}

    def scores(qid: str) -> list[float]:
        q = gold[qid]
        return [score(a, q.answers, q.label) for a, _ in cands.get(qid, [])] or [0.0]

    return {"top1": mean_se([scores(i)[0] for i in ids]),
            "oracle": mean_se([float(max(scores(i)) > 0) for i in ids]),
            "oracle5": mean_se([float(max(scores(i)[:5]) > 0) for i in ids]),
            "best": mean_se([max(scores(i)) for i in ids])}


def command(name: str, data: Data, files: dict[str, Path], limit: int | None, threads: int | None
            ) -> tuple[Path, list[str]]:
    """The run folder and `pica eval` command of one setting."""
    out = data.out / f"prophet-{name}"
    extra = (["--candidates-file", str(files["candidates"]), "--examples-file", str(files["examples"])]
             if name == "prophet" else [])
    cmd = ["pica", "eval", str(out), "--dataset", str(data.dev), "--captions", str(data.captions), "--index",
           str(data.index), *SETTINGS[name][1], *extra, "--force-new", "--no-progress"]
    return out, cmd + (["--limit", str(limit)] if limit else []) + (["--threads", str(threads)] if threads else [])


def merged(out: Path) -> dict[str, dict]:
    """Result rows of a run folder and of its shards (``OUT-*``: the same command on slices of
    the dev file, run side by side), by question id."""
    rows: dict[str, dict] = {}
    for folder in [out, *sorted(out.parent.glob(f"{out.name}-*"))]:
        if (folder / "results.jsonl").is_file():
            rows.update(per_question(folder))
    return rows


def bench(args: argparse.Namespace, data: Data) -> None:
    """Stage 1, the runs, and the table."""
    files = {"candidates": data.out / "prophet_candidates.json", "examples": data.out / "prophet_examples.json"}
    if not args.table:
        ensure_index(data)
        files = stage_one(data, args.limit)
        for name in SETTINGS:
            out, cmd = command(name, data, files, args.limit, args.threads)
            subprocess.run([sys.executable, "-m", "pica", *cmd[1:]], check=True, cwd=ROOT)
    results = {name: merged(command(name, data, files, args.limit, args.threads)[0]) for name in SETTINGS}
    ids = [k for k in results[REFERENCE] if all(k in r for r in results.values())]
    n = len(ids)
    lines = [
        "## Prophet's stage 2 with the packaged model (issue 21)",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"{n} questions of `okvqa_val2014_dev.json` (those among the first {args.limit or 'all'} that every"
        " run answered; the Prophet run was split into shards run side by side), VinVL captions, the 2,509-question pool"
        " index, Gemma 3 270M Q4_K_M (llama.cpp). Stage 1 is pica's own (no VQA model): candidates and"
        " answer-aware examples from the 32 nearest pool examples (question + caption similarity, own"
        " image left out), written in Prophet's file formats and read back through `--candidates-file`"
        " / `--examples-file`. Prophet's 20 shots x 5 prompts and k=10 were cut to pica's default 4 shots x 1"
        " prompt and k=5 for CPU time on a shared 2-core machine (4 x 2 with k=10 took 17.6 s/question,"
        " 1,229 prompt tokens); not tuned. The Prophet path thus differs from the default by its prompt,"
        " its candidates and its answer-aware examples only."
        " ± is one standard error (paired per-question difference for the last column).",
        "",
        f"| setting | accuracy % (n={n}) | vs {REFERENCE} (paired) | s/question |",
        "|---|---|---|---|",
    ]
    for name, (description, _) in SETTINGS.items():
        scores = [results[name][k]["score"] for k in ids]
        acc, se = mean_se(scores)
        seconds = [results[name][k]["seconds"] for k in ids]
        if name == REFERENCE:
            diff = "—"
        else:
            d, dse = paired_difference({k: results[name][k] for k in ids}, {k: results[REFERENCE][k] for k in ids})
            diff = f"{d:+.2f} ± {dse:.2f}"
        lines.append(f"| {name}: {description} | {acc:.2f} ± {se:.2f} | {diff} |"
                     f" {sum(seconds) / n:.2f} |")
    figures = oracle(data, files, ids)
    from pica.answers import normalize_answer
    from pica.datasets.prophet import read_candidates

    cands = read_candidates(files["candidates"])
    copied = mean_se([float(bool(cands.get(k)) and results["prophet"][k]["answer"]
                            == normalize_answer(cands[k][0][0])) for k in ids])
    lines += [
        f"| stage 1 alone: the top candidate | {figures['top1'][0]:.2f} ± {figures['top1'][1]:.2f} | | |",
        "",
        f"Candidates' oracle: on {figures['oracle'][0]:.1f} ± {figures['oracle'][1]:.1f} % of the {n} questions"
        f" some of the 10 candidates scores ({figures['oracle5'][0]:.1f} ± {figures['oracle5'][1]:.1f} % for"
        f" the 5 shown); the best of the 10's mean score (Prophet's top-k accuracy) is"
        f" {figures['best'][0]:.2f} ± {figures['best'][1]:.2f}. The Prophet path answered with the top"
        f" candidate on {copied[0]:.1f} ± {copied[1]:.1f} % of the questions. s/question is wall time"
        " per question of each run and does not compare across rows: the runs shared the machine with"
        " other work and with each other (the Prophet run in four shards side by side).",
        "",
        "Commands (after stage 1 wrote the two files into bench/out):",
        "",
        *[f"    {shown(command(name, data, files, args.limit, args.threads)[1])}" for name in SETTINGS],
    ]
    publish("Prophet's stage 2 with the packaged model (issue 21)", "\n".join(lines), data.smoke_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="first N dev questions only")
    parser.add_argument("--threads", type=int, help="llama.cpp threads of each run")
    parser.add_argument("--index", type=Path, help="pool index folder (default indexes/okvqa-pool)")
    parser.add_argument("--okvqa", type=Path, help="folder of the OK-VQA files (default ../shared/okvqa)")
    parser.add_argument("--table", action="store_true",
                        help="only rewrite the table from the runs in bench/out (finished or stopped early)")
    parser.add_argument("--smoke", action="store_true", help="seconds: the test fixture, 2 questions, temp folder")
    args = parser.parse_args()
    if args.smoke:
        args.limit, args.threads = args.limit or 2, args.threads or 1
    with bench_data("prophet", args.smoke) as data:
        if not args.smoke:
            data = Data(args.okvqa or data.okvqa, args.index or data.index, data.out)
        bench(args, data)


if __name__ == "__main__":
    main()
