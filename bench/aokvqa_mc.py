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

    python bench/aokvqa_mc.py                  # all 1285 dev questions, both methods
    python bench/aokvqa_mc.py --limit 200 --threads 1   # the first 200 only, on a busy machine
    python bench/aokvqa_mc.py --shared /work/shared/okvqa   # data elsewhere (or $PICA_BENCH_SHARED)
    python bench/aokvqa_mc.py --smoke          # 2 questions of a small fixture, in a temporary folder

Files go to bench/out/aokvqa_mc/, the index to indexes/okvqa-mc-pool, the table to BENCHMARKS.md.
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
from common import REAL, ROOT, SHARED, SMOKE_HELP, Data, bench_data, command_line, machine, publish  # noqa: E402

METHODS = {"score": "choices listed in the prompt, each scored by its log-prob",
           "generate": "free answer under the same prompt, mapped to the nearest choice"}


def best_answer(label: dict[str, float]) -> str:
    """The highest-scored non-empty answer (ties: first)."""
    answers = {a: s for a, s in label.items() if a.strip()}
    return max(answers, key=answers.__getitem__) if answers else ""


def derive(rows: list[dict], seed: int, split: str) -> list[dict]:
    """OK-VQA LXMERT rows -> A-OKVQA rows with four choices (see the module docstring)."""
    from pica.answers import normalize_answer
    from pica.datasets import normalize_image_id

    by_class: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if best_answer(row["label"]):
            by_class[str(row["class"])].append(best_answer(row["label"]))
    rng = random.Random(seed)
    out = []
    for row in rows:
        correct = best_answer(row["label"])
        if not correct:
            continue
        own = {normalize_answer(a) for a in row["label"]}
        pool = sorted({a for a in by_class[str(row["class"])] if normalize_answer(a) not in own})
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


def out_folder(data: Data) -> Path:
    """Where the MC files and runs go (bench/out/aokvqa_mc)."""
    return data.out / "aokvqa_mc"


def index_folder(data: Data) -> Path:
    """The MC pool index, next to the pool index (indexes/okvqa-mc-pool)."""
    return data.index.parent / "okvqa-mc-pool"


def write_files(shared: Path, seed: int, data: Data) -> dict[str, Path]:
    out = out_folder(data)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, name in (("dev", "okvqa_val2014_dev.json"), ("pool", "okvqa_val2014_pool.json")):
        rows = derive(json.loads((shared / name).read_text()), seed, split)
        paths[split] = out / f"okvqa_mc_{split}.json"
        paths[split].write_text(json.dumps(rows), encoding="utf-8")
        print(f"{paths[split]}: {len(rows)} questions", flush=True)
    return paths


def ensure_index(pool: Path, captions: Path, data: Data) -> None:
    index = index_folder(data)
    if not (index / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "pica", "index", "build", str(index), "--dataset", str(pool),
                        "--captions", str(captions)], check=True, cwd=ROOT)


def eval_command(method: str, dev: Path, captions: Path, limit: int | None,
                 threads: int | None, data: Data = REAL) -> tuple[Path, list[str]]:
    out = out_folder(data) / (method if limit is None else f"{method}-{limit}")
    cmd = ["eval", "--dataset", str(dev), "--captions", str(captions), "--index", str(index_folder(data)),
           "--task", "mc", "--mc-method", method, "--out", str(out), "--force-new", "--no-progress"]
    return out, cmd + (["--limit", str(limit)] if limit else []) + (["--threads", str(threads)] if threads else [])


def mean_se(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((x - mean) ** 2 for x in values) / max(1, len(values) - 1)
    return 100 * mean, 100 * (var / len(values)) ** 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("PICA_BENCH_SHARED", SHARED)),
                        help="folder with the OK-VQA files (default ../shared/okvqa or $PICA_BENCH_SHARED)")
    parser.add_argument("--limit", type=int, help="first N dev questions only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the distractors and their order")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (1 on a machine shared with others)")
    parser.add_argument("--only", nargs="*", choices=sorted(METHODS), help="methods to run")
    parser.add_argument("--table", action="store_true", help="only rewrite the table from finished runs")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        args.limit, args.threads = args.limit or 2, args.threads or 1
    with bench_data("aokvqa_mc", args.smoke) as data:
        if args.smoke:
            args.shared = data.okvqa
            one_category(data)
        bench(args, data)


def one_category(data: Data) -> None:
    """Put every fixture question in one OK-VQA category: the fixture's categories have two topics
    each, too few for three distractors."""
    for path in (data.dev, data.pool):
        rows = json.loads(path.read_text())
        path.write_text(json.dumps([{**row, "class": 0} for row in rows]))


def bench(args: argparse.Namespace, data: Data) -> None:
    """Write the MC files, build their index, run the methods and write the table."""
    captions = args.shared / "VinVL_base_val2014.tsv"
    paths = write_files(args.shared, args.seed, data)
    ensure_index(paths["pool"], captions, data)
    for method in [] if args.table else args.only or list(METHODS):
        out, cmd = eval_command(method, paths["dev"], captions, args.limit, args.threads, data)
        (out / "results.jsonl").unlink(missing_ok=True)  # measure from scratch
        subprocess.run([sys.executable, "-m", "pica", *cmd], check=True, cwd=ROOT)
    lines = [
        "## Multiple choice on an MC benchmark derived from OK-VQA (not A-OKVQA)"
        + (f": first {args.limit} dev questions" if args.limit else ": all 1,285 dev questions"),
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
        out, cmd = eval_command(method, paths["dev"], captions, args.limit, args.threads, data)
        if not (out / "summary.json").is_file():
            continue
        summary = json.loads((out / "summary.json").read_text())
        rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        acc, se = mean_se([r["mc_correct"] for r in rows])
        lines.append(f"| **{method}**: {description} | {acc:.2f} ± {se:.2f} | {len(rows)} |"
                     f" {summary['seconds_per_question']:.3f} |")
        shown = f"- {method}: `pica {' '.join(cmd)}`".replace(str(ROOT) + "/", "")
        commands.append(shown if data.smoke_dir else shown.replace(str(args.shared), "../shared/okvqa"))
    lines += ["", "Exact commands (after the script wrote the files and built the index):", "", *commands]
    publish("aokvqa-mc" if args.limit is None else f"aokvqa-mc-{args.limit}", "\n".join(lines), data.smoke_dir)


if __name__ == "__main__":
    main()
