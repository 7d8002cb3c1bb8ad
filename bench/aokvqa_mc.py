"""Multiple-choice accuracy of pica's two choosers on an MC benchmark derived from OK-VQA.

A-OKVQA's files are not on this machine, so the benchmark is built from the OK-VQA data in
../shared/okvqa, and is *not* A-OKVQA: for every question the correct choice is its best-scored
answer (LXMERT soft label), and three distractors are the best answers of other questions of the
same OK-VQA category (none of them one of the question's own answers), drawn with a fixed seed;
the four are shuffled with the same generator. Dev questions become the questions, pool
questions the examples (their choices built the same way), both written in A-OKVQA format
(``direct_answers`` approximated from the soft label: each answer repeated ``round(3 * score)``
times, at least once; only the index uses them). Then, as two `pica eval --task mc` processes:

- score: the prompt lists the choices and each choice is scored by its log-prob;
- generate: a free answer under the same prompt, mapped to the nearest choice.

With ``--index plain`` the examples come instead from an index of the *plain* OK-VQA pool
(``okvqa_val2014_pool.json`` itself, no choices: the common case), whose examples show
choices pica makes up (their answer among other examples' answers, see
``pica.llm.prompts.example_choices``). ``--questions pool`` asks the derived pool questions
against that index, leave-one-image-out (pica never shows examples of the question's own image):
the split to choose a scoring rule on; dev is for the final figure. ``--mc-score calibrated``
records the summed log-prob, token count and content-free prior of every choice, so the table
gives every scoring rule (sum, per-token mean, calibrated, calibrated per token) from one run,
each with accuracy ± 1 SE, n, and how often the first listed choice was picked (and was gold).

    python bench/aokvqa_mc.py                  # all 1285 dev questions, both methods
    python bench/aokvqa_mc.py --limit 200 --threads 1   # the first 200 only, on a busy machine
    python bench/aokvqa_mc.py --index plain --questions pool --limit 300 --only score \
        --mc-score calibrated --threads 1      # plain pool index; choose the scoring rule here
    python bench/aokvqa_mc.py --shared /work/shared/okvqa   # data elsewhere (or $PICA_BENCH_SHARED)
    python bench/aokvqa_mc.py --smoke          # seconds, the tests' fixture, a temp folder

Files go to bench/out/aokvqa_mc/, the indexes to indexes/okvqa-mc-pool and
indexes/okvqa-pool-plain, the table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, SMOKE_HELP, command_line, machine, publish, smoke_data, smoke_folder  # noqa: E402

METHODS = {"score": "choices listed in the prompt, each scored by its log-prob",
           "generate": "free answer under the same prompt, mapped to the nearest choice"}
RULES = {"sum": "summed log-prob", "mean": "per-token mean log-prob",
         "calibrated": "summed log-prob minus that under a content-free query (N/A)",
         "calibrated-mean": "calibrated, per token"}


def best_answer(label: dict[str, float]) -> str:
    """The highest-scored non-empty answer (ties: first)."""
    answers = {a: s for a, s in label.items() if a.strip()}
    return max(answers, key=answers.__getitem__) if answers else ""


def derive(rows: list[dict], seed: int, split: str) -> list[dict]:
    """OK-VQA LXMERT rows -> A-OKVQA rows with four choices (see the module docstring).

    Distractors come from the question's OK-VQA category; a category with fewer than three other
    answers (only in small fixtures: never in the OK-VQA files) lends from every category.
    """
    from pica.answers import normalize_answer
    from pica.datasets import normalize_image_id

    by_class: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if best_answer(row["label"]):
            by_class[str(row["class"])].append(best_answer(row["label"]))
    everything = [a for answers in by_class.values() for a in answers]
    rng = random.Random(seed)
    out = []
    for row in rows:
        correct = best_answer(row["label"])
        if not correct:
            continue
        own = {normalize_answer(a) for a in row["label"]}
        pool = sorted({a for a in by_class[str(row["class"])] if normalize_answer(a) not in own})
        if len(pool) < 3:
            pool = sorted({a for a in everything if normalize_answer(a) not in own})
        if len(pool) < 3:
            continue
        choices = [correct, *rng.sample(pool, 3)]
        rng.shuffle(choices)
        direct = [a for a, s in row["label"].items() if a.strip() for _ in range(max(1, round(3 * s)))]
        out.append({
            "split": split, "image_id": int(normalize_image_id(row["img_id"])),
            "question_id": str(row["question_id"]), "question": row["sent"], "choices": choices,
            "correct_choice_idx": choices.index(correct), "direct_answers": direct[:10],
            "difficult_direct_answer": False, "rationales": [], "class": row["class"],
        })
    return out


def write_files(shared: Path, seed: int, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, name in (("dev", "okvqa_val2014_dev.json"), ("pool", "okvqa_val2014_pool.json")):
        rows = derive(json.loads((shared / name).read_text()), seed, split)
        paths[split] = out / f"okvqa_mc_{split}.json"
        paths[split].write_text(json.dumps(rows), encoding="utf-8")
        print(f"{paths[split]}: {len(rows)} questions", flush=True)
    return paths


def ensure_index(index: Path, dataset: Path, captions: Path) -> None:
    if not (index / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "pica", "index", "build", str(index), "--dataset", str(dataset),
                        "--captions", str(captions)], check=True, cwd=ROOT)


def run_name(args, method: str) -> str:
    parts = [method] if args.index == "choices" else ["plain", args.questions, method, args.mc_score]
    return "-".join(parts + ([str(args.limit)] if args.limit else []))


def eval_command(args, method: str, questions: Path, captions: Path, index: Path, out: Path
                 ) -> tuple[Path, list[str]]:
    run = out / run_name(args, method)
    cmd = ["eval", str(run), "--dataset", str(questions), "--captions", str(captions), "--index", str(index),
           "--task", "mc", "--mc-method", method, "--force-new", "--no-progress"]
    if method == "score" and args.mc_score != "sum":
        cmd += ["--mc-score", args.mc_score]
    return run, cmd + (["--limit", str(args.limit)] if args.limit else []) + (
        ["--threads", str(args.threads)] if args.threads else [])


def mean_se(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((x - mean) ** 2 for x in values) / max(1, len(values) - 1)
    return 100 * mean, 100 * (var / len(values)) ** 0.5


def picks(row: dict) -> dict[str, int]:
    """The choice each scoring rule picks for one result row (its first prompt; the rules the
    row's records allow: ``sum`` always, ``mean`` with token counts, ``calibrated*`` with a prior)."""
    mc = row["mc"]
    out = {"as run": int(mc["index"])}
    if not mc.get("scores"):
        return out
    scores, tokens, prior = mc["scores"][0], (mc.get("tokens") or [[]])[0], (mc.get("prior") or [[]])[0]
    ranked = {"sum": scores}
    if tokens:
        ranked["mean"] = [s / max(1, t) for s, t in zip(scores, tokens)]
    if prior:
        ranked["calibrated"] = [s - p for s, p in zip(scores, prior)]
        if tokens:
            ranked["calibrated-mean"] = [(s - p) / max(1, t) for s, p, t in zip(scores, prior, tokens)]
    out.update({rule: max(range(len(values)), key=values.__getitem__) for rule, values in ranked.items()})
    return out


def figures(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per scoring rule: accuracy ± SE, first-choice rate ± SE, and n (percentages)."""
    table: dict[str, dict[str, float]] = {}
    chosen = [picks(r) for r in rows]
    for rule in chosen[0] if chosen else []:
        hits = [float(c[rule] == r["correct_choice_idx"]) for c, r in zip(chosen, rows) if rule in c]
        first = [float(c[rule] == 0) for c in chosen if rule in c]
        acc, se = mean_se(hits)
        fst, fse = mean_se(first)
        table[rule] = {"accuracy": acc, "se": se, "first": fst, "first_se": fse, "n": len(hits)}
    return table


def plain_table(args, runs: dict[str, Path]) -> list[str]:
    """Table lines of the plain-index runs (label -> run folder), on the questions all of them
    answered (a stopped run is compared on its finished questions)."""
    lines = ["| run | scoring rule | MC accuracy % (± 1 SE) | first choice picked % (± 1 SE) |"
             " gold first % | n |", "|---|---|---|---|---|---|"]
    loaded = {label: [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
              for label, run in runs.items() if (run / "results.jsonl").is_file()}
    shared = set.intersection(*({r["question_id"] for r in rows} for rows in loaded.values())) if loaded else set()
    for label, rows in loaded.items():
        rows = [r for r in rows if r["question_id"] in shared]  # the questions every run answered
        gold_first = 100 * sum(r["correct_choice_idx"] == 0 for r in rows) / max(1, len(rows))
        for rule, f in figures(rows).items():
            if rule == "as run" and len(figures(rows)) > 1:
                continue
            name = RULES.get(rule, "as run (summed log-prob)")
            lines.append(f"| {label} | {name} | {f['accuracy']:.2f} ± {f['se']:.2f} |"
                         f" {f['first']:.2f} ± {f['first_se']:.2f} | {gold_first:.2f} | {f['n']} |")
    if "before" in loaded and "after" in loaded:
        lines += ["", *paired(loaded["before"], loaded["after"], shared)]
    return lines


def paired(before: list[dict], after: list[dict], shared: set[str]) -> list[str]:
    """Accuracy differences after - before per scoring rule, with the paired SE."""
    was = {r["question_id"]: float(picks(r)["as run"] == r["correct_choice_idx"]) for r in before}
    rows = [r for r in after if r["question_id"] in shared]
    out = []
    for rule in picks(rows[0]) if rows else []:
        if rule == "as run":
            continue
        diffs = [float(picks(r)[rule] == r["correct_choice_idx"]) - was[r["question_id"]] for r in rows]
        d, se = mean_se(diffs)
        out.append(f"- after ({RULES[rule]}) − before: {d:+.2f} ± {se:.2f} points (paired, n={len(rows)})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("PICA_BENCH_SHARED", SHARED)),
                        help="folder with the OK-VQA files (default ../shared/okvqa or $PICA_BENCH_SHARED)")
    parser.add_argument("--limit", type=int, help="first N questions only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the distractors and their order")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (1 on a machine shared with others)")
    parser.add_argument("--only", nargs="*", choices=sorted(METHODS), help="methods to run")
    parser.add_argument("--index", choices=("choices", "plain"), default="choices",
                        help="examples from the derived pool with its choices (default), or from the"
                        " plain OK-VQA pool without choices")
    parser.add_argument("--questions", choices=("dev", "pool"), default="dev",
                        help="--index plain: ask the derived dev questions, or the derived pool"
                        " questions leave-one-image-out (to choose settings on)")
    parser.add_argument("--mc-score", choices=("sum", "mean", "calibrated"), default="sum",
                        help="pica's --mc-score; calibrated records what every rule needs")
    parser.add_argument("--before", type=Path,
                        help="--index plain: a run folder of the same questions made by older code,"
                        " shown as 'before' (its command and commit are for you to state)")
    parser.add_argument("--table", action="store_true", help="only rewrite the table from finished runs")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        with smoke_folder("aokvqa_mc") as folder:
            data = smoke_data(folder)
            args.limit, args.threads, args.only = 3, 1, ["score"]
            for index, questions, score in (("choices", "dev", "sum"), ("plain", "pool", "calibrated")):
                args.index, args.questions, args.mc_score = index, questions, score
                run(args, data.okvqa, folder / "out", folder / "indexes", folder)
        return
    run(args, args.shared, ROOT / "bench" / "out" / "aokvqa_mc", ROOT / "indexes", None)


def run(args, shared: Path, out: Path, indexes: Path, smoke_dir: Path | None) -> None:
    """Derive the files, build the index, run the evaluations and publish the table."""
    captions = shared / "VinVL_base_val2014.tsv"
    paths = write_files(shared, args.seed, out)
    if args.index == "plain":
        index = indexes / "okvqa-pool-plain"
        ensure_index(index, shared / "okvqa_val2014_pool.json", captions)
        questions = paths[args.questions]
    else:
        index = indexes / "okvqa-mc-pool"
        ensure_index(index, paths["pool"], captions)
        questions = paths["dev"]
    for method in [] if args.table else args.only or list(METHODS):
        folder, cmd = eval_command(args, method, questions, captions, index, out)
        (folder / "results.jsonl").unlink(missing_ok=True)  # measure from scratch
        subprocess.run([sys.executable, "-m", "pica", *cmd], check=True, cwd=ROOT)
    if args.index == "plain":
        publish_plain(args, shared, captions, index, questions, out, smoke_dir)
    else:
        publish_choices(args, shared, captions, index, questions, out, smoke_dir)


def _commands(args, shared: Path, runs: list[tuple[str, list[str]]]) -> list[str]:
    return [f"- {label}: `pica {' '.join(cmd)}`".replace(str(ROOT) + "/", "").replace(str(shared), "../shared/okvqa")
            for label, cmd in runs]


def publish_plain(args, shared, captions, index, questions, out, smoke_dir) -> None:
    folder, cmd = eval_command(args, "score", questions, captions, index, out)
    runs = {**({"before": args.before} if args.before else {}), "after": folder}
    lines = [
        f"## Multiple choice from a plain pool index (no choices), {args.questions} questions"
        + (f", first {args.limit}" if args.limit else ""),
        "",
        "The questions of the derived MC benchmark above (gold uniformly placed), answered with an"
        " index of the *plain* OK-VQA pool (`okvqa_val2014_pool.json`, no choices; the common case):"
        " each example shows choices pica makes up. Before: the example's own gold answers, best"
        " first, taught the model that the first choice is right. After: its answer among three"
        " answers of the prompt's other examples, at a position seeded by the example id"
        " (`pica.llm.prompts.example_choices`)."
        + (" Pool questions are asked leave-one-image-out (the split to choose on)."
           if args.questions == "pool" else " Dev: the final figure; the rule was chosen on the pool.")
        + " Gemma 3 270M Q4_K_M, llama.cpp, 4 shots, VinVL captions, MiniLM text index; every"
        " scoring rule of the after run is computed from one run's recorded log-probs (ratios in"
        " one run). SE: one standard error of the mean over questions.",
        "",
        f"Last: `{command_line()}` — {machine()}.",
        "",
        *plain_table(args, runs),
        "",
        "Exact command (after the script wrote the files and built the index):",
        "",
        *_commands(args, shared, [("after", cmd)]),
    ]
    name = f"aokvqa-mc-plain-{args.questions}" + (f"-{args.limit}" if args.limit else "")
    publish(name, "\n".join(lines), smoke_dir)


def publish_choices(args, shared, captions, index, questions, out, smoke_dir) -> None:
    lines = [
        "## Multiple choice on an MC benchmark derived from OK-VQA (not A-OKVQA)",
        "",
        "A-OKVQA's files are not on this machine. `bench/aokvqa_mc.py` builds an MC benchmark from"
        " OK-VQA in A-OKVQA format: the correct choice of each dev question is its best-scored answer;"
        " the three distractors are best answers of other dev questions of the same OK-VQA category"
        f" (never one of the question's own answers), drawn with seed {args.seed}. The 2,509 pool"
        " questions, given choices the same way, are the examples (text index, MiniLM). VinVL"
        " captions, 4 shots, Gemma 3 270M Q4_K_M through llama.cpp on the CPU; MC accuracy as the"
        " official A-OKVQA evaluation computes it (chosen choice == correct choice).",
        "",
        f"Last: `{command_line()}` — {machine()}.",
        "",
        *([f"A fixed subset: the first {args.limit} of the 1,285 dev questions (the full set takes"
           " ~1.5-2 s per question and method on this shared, loaded 2-core machine; the packaged"
           " model alone answers ~4 questions/s when the machine is idle). `--threads 1` because"
           " llama.cpp's spinning threads slow down badly on oversubscribed cores.", ""]
          if args.limit else []),
        "| method | MC accuracy % (± 1 SE) | n | s/question |",
        "|---|---|---|---|",
        "| chance (1 of 4 choices) | 25.00 | | |",
    ]
    commands = []
    for method, description in METHODS.items():
        folder, cmd = eval_command(args, method, questions, captions, index, out)
        if not (folder / "summary.json").is_file():
            continue
        summary = json.loads((folder / "summary.json").read_text())
        rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
        acc, se = mean_se([r["mc_correct"] for r in rows])
        lines.append(f"| **{method}**: {description} | {acc:.2f} ± {se:.2f} | {len(rows)} |"
                     f" {summary['seconds_per_question']:.3f} |")
        commands.append((method, cmd))
    lines += ["", "Exact commands (after the script wrote the files and built the index):", "",
              *_commands(args, shared, commands)]
    publish("aokvqa-mc" if args.limit is None else f"aokvqa-mc-{args.limit}", "\n".join(lines), smoke_dir)


if __name__ == "__main__":
    main()
