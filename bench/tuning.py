"""Choosing the defaults without touching dev: settings compared on a pool tuning split.

The tuning questions are 900 questions of the pool (shuffled with seed 0), answered with examples
from the pool index itself. pica never shows a question examples from its own image (the pipeline
excludes rows with the query's image id), so this is leave-one-image-out and dev stays unseen
until the chosen settings are measured on it (bench/okvqa.py).

    python bench/tuning.py              # every setting below on the 900 tuning questions
    python bench/tuning.py --smoke      # one setting on 2 questions of a small fixture
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REAL, SMOKE_HELP, Data, bench_data, command_line, machine, publish  # noqa: E402
from okvqa import ensure_index, mean_se, per_question, run  # noqa: E402

SETTINGS: dict[str, list[str]] = {
    "pica-16": ["--template", "pica", "--shots", "16", "--weights", "question=1,caption=1"],
    "pica-16 caption 0.5": ["--template", "pica", "--shots", "16", "--weights", "question=1,caption=0.5"],
    "pica-16 question only": ["--template", "pica", "--shots", "16", "--selection", "question"],
    "pica-5 x3 vote": ["--template", "pica", "--shots", "5", "--ensemble", "3", "--choose", "vote",
                       "--weights", "question=1,caption=0.5"],
    "prophet-16 (5 candidates)": ["--template", "prophet", "--shots", "16", "--candidates", "5",
                                  "--weights", "question=1,caption=0.5"],
    "pica-4 caption 0.5": ["--template", "pica", "--shots", "4", "--weights", "question=1,caption=0.5"],
    "lean-16 caption 0.5": ["--template", "lean", "--shots", "16", "--weights", "question=1,caption=0.5"],
    "lean-8 caption 0.5": ["--template", "lean", "--shots", "8", "--weights", "question=1,caption=0.5"],
    "lean-4 caption 0.5": ["--template", "lean", "--shots", "4", "--weights", "question=1,caption=0.5"],
    "lean-4 caption 1": ["--template", "lean", "--shots", "4", "--weights", "question=1,caption=1"],
    "lean-4 caption 0.25": ["--template", "lean", "--shots", "4", "--weights", "question=1,caption=0.25"],
    "lean-2 caption 0.5": ["--template", "lean", "--shots", "2", "--weights", "question=1,caption=0.5"],
}


def run_name(name: str) -> str:
    """The run folder name (under bench/out) of a tuning setting."""
    return "tune-" + name.replace(" ", "_")


def stderr(name: str, data: Data = REAL) -> float:
    """Standard error (in points) of a run's mean score."""
    return mean_se([r["score"] for r in per_question(data.out / run_name(name)).values()])[1]


def tuning_split(n: int, data: Data = REAL) -> Path:
    """The first ``n`` pool questions after a seeded shuffle, written as a dataset file."""
    rows = json.loads(data.pool.read_text())
    random.Random(0).shuffle(rows)
    path = data.out / f"pool-tune-{n}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows[:n]))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=900, help="tuning questions")
    parser.add_argument("--only", nargs="*", choices=sorted(SETTINGS))
    parser.add_argument("--threads", type=int, help="llama.cpp threads of each run (default: all cores)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        args.n, args.threads = 2, args.threads or 1
        args.only = args.only or ["pica-5 x3 vote"]  # an ensemble: three prompts, a vote
    with bench_data("tuning", args.smoke) as data:
        bench(args, data)


def bench(args: argparse.Namespace, data: Data) -> None:
    """Run the settings on the tuning split and write their table."""
    ensure_index(data)
    dataset = tuning_split(args.n, data)
    rows = []
    for name in args.only or list(SETTINGS):
        _, summary = run(run_name(name), SETTINGS[name], None, dataset, data, args.threads)
        rows.append((name, summary))
        print(f"{name}: {summary['accuracy']:.2f}% {summary['seconds_per_question']:.3f} s/q", flush=True)
    lines = [
        "## Tuning on the pool (leave-one-image-out), not on dev",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"{args.n} pool questions (shuffled, seed 0) answered with examples from the pool index; a"
        " question never sees examples of its own image. ± is one standard error of the mean score.",
        "",
        "| setting | flags | accuracy % | s/question | prompt tokens/question |",
        "|---|---|---|---|---|",
    ]
    for name, s in rows:
        lines.append(f"| {name} | `{' '.join(SETTINGS[name])}` | {s['accuracy']:.2f} ± {stderr(name, data):.1f} |"
                     f" {s['seconds_per_question']:.3f} | {s['prompt_tokens_per_question']:.0f} |")
    publish("tuning", "\n".join(lines), data.smoke_dir)


if __name__ == "__main__":
    main()
