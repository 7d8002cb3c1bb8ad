"""ScienceQA with the packaged Gemma 3 270M: QCM-A against QCM-ALE, and how QCM-A's options are scored.

On the shared sample (../shared/scienceqa: the first 50 problems of train and of val, the
released captions), train's 50 are the examples (``pica index build --scienceqa ... --split
train``) and val's 50 the measure (``pica eval --scienceqa ... --split val``); nothing is tuned on
val. Three `pica eval` runs, each a separate process with the same index and shots:

- ``QCM-A generate``: the paper's answer-only format; the answer is read from "The answer is X."
  (an unparseable output falls back to pica's scoring of the options, counted in the table);
- ``QCM-ALE generate``: the paper's chain-of-thought format (answer, then lecture and explanation);
- ``QCM-A score``: no generation; every option's " The answer is X." is scored after the same
  prompt with ``--mc-score calibrated``, which records each option's summed log-prob and its
  log-prob under the content-free prompt (question and context N/A), so the table gives both
  rules, ``sum`` and ``calibrated``, from one run on the same problems (a paired comparison).

Each row: accuracy ± 1 SE, n, how many answers were parsed from the output, and seconds per
problem; chance is the mean of 1 / (number of options) over the problems. Differences against
QCM-A generate are paired (same problems). The three runs go at once, as separate processes with
one llama.cpp thread each (``--threads``), so seconds per problem are each run's own wall time on
a machine the three (and whatever else runs there) share.

    python bench/scienceqa.py                  # the shared sample (50 + 50), 2 shots
    python bench/scienceqa.py --limit 20       # the first 20 val problems only (a busy machine)
    python bench/scienceqa.py --ale-limit 20   # all 50 for QCM-A, the first 20 for QCM-ALE
    python bench/scienceqa.py --smoke          # seconds: the tests' fixture, a temp folder

Files go to bench/out/scienceqa/, the table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SMOKE_HELP, command_line, machine, publish, smoke_folder  # noqa: E402

SHARED = ROOT.parent / "shared" / "scienceqa"
RUNS = {"QCM-A generate": ("QCM-A", "generate", "auto"),
        "QCM-ALE generate": ("QCM-ALE", "generate", "auto"),
        "QCM-A score": ("QCM-A", "score", "calibrated")}


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and one standard error, in percent."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return 100 * mean, 100 * (var / n) ** 0.5


def build_index(data: Path, index: Path) -> None:
    """The train split as examples (once)."""
    if index.exists():
        return
    subprocess.run([sys.executable, "-m", "pica", "index", "build", str(index), "--scienceqa",
                    str(data / "problems.json"), "--split", "train", "--captions",
                    str(data / "captions.json")], check=True, cwd=ROOT)


def start_eval(args, data: Path, index: Path, out: Path, fmt: str, method: str,
               score: str, limit: int | None) -> subprocess.Popen:
    """One `pica eval` process, started (a run folder resumes where it stopped)."""
    command = [sys.executable, "-m", "pica", "eval", str(out), "--scienceqa", str(data / "problems.json"),
               "--split", "val", "--captions", str(data / "captions.json"), "--index", str(index),
               "--prompt-format", fmt, "--mc-method", method, "--mc-score", score,
               "--shots", str(args.shots), "--n-ctx", str(args.n_ctx), "--no-progress"]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if limit:
        command += ["--limit", str(limit)]
    return subprocess.Popen(command, cwd=ROOT)


def rows_of(out: Path) -> list[dict]:
    """A run's result rows."""
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def rule_scores(rows: list[dict], rule: str) -> list[float]:
    """Each row's score had the options been ranked by ``rule`` (``sum`` or ``calibrated``)."""
    out = []
    for r in rows:
        scores, prior = r["mc"]["scores"], r["mc"]["prior"]
        ranking = scores if rule == "sum" else [s - p for s, p in zip(scores, prior)]
        pick = max(range(len(ranking)), key=ranking.__getitem__)
        out.append(float(pick == r["correct_choice_idx"]))
    return out


def table(results: dict[str, list[dict]]) -> list[str]:
    """The markdown table: every setting's accuracy, paired difference, parsing and speed."""
    base_rows = results["QCM-A generate"]
    order = [r["question_id"] for r in base_rows]
    chance = sum(1 / len(r["choices"]) for r in base_rows) / len(base_rows)
    settings = {
        "QCM-A generate": [r["score"] for r in base_rows],
        "QCM-ALE generate": [r["score"] for r in results["QCM-ALE generate"]],
        "QCM-A score, sum": rule_scores(results["QCM-A score"], "sum"),
        "QCM-A score, calibrated": rule_scores(results["QCM-A score"], "calibrated"),
    }
    source = {"QCM-A generate": base_rows, "QCM-ALE generate": results["QCM-ALE generate"],
              "QCM-A score, sum": results["QCM-A score"], "QCM-A score, calibrated": results["QCM-A score"]}
    short = results["QCM-ALE generate"]
    chance_short = sum(1 / len(r["choices"]) for r in short) / len(short)
    lines = [f"Chance (mean of 1 / options): **{100 * chance:.2f}%** over the {len(base_rows)} problems,"
             f" {100 * chance_short:.2f}% over the {len(short)} of QCM-ALE.", "",
             "| setting | accuracy % ± 1 SE | n | vs QCM-A generate (paired) | parsed \"The answer is X.\" |"
             " s / problem |",
             "|---|---|---|---|---|---|"]
    by_id = {name: dict(zip([r["question_id"] for r in source[name]], values))
             for name, values in settings.items()}
    for name, values in settings.items():
        acc, se = mean_se(values)
        common = [q for q in order if q in by_id[name]]
        d, dse = mean_se([by_id[name][q] - by_id["QCM-A generate"][q] for q in common])
        rows = source[name]
        parsed = sum(1 for r in rows if r["mc"].get("parsed"))
        generated = sum(1 for r in rows if r["mc"].get("method") == "generate")
        speed = sum(r["seconds"] for r in rows) / len(rows)
        lines.append(f"| {name} | {acc:.2f} ± {se:.2f} | {len(values)} |"
                     f" {'-' if name == 'QCM-A generate' else f'{d:+.2f} ± {dse:.2f} (n={len(common)})'} |"
                     f" {f'{parsed}/{generated}' if generated else '- (scored)'} | {speed:.2f} |")
    d, dse = mean_se([x - y for x, y in zip(settings["QCM-A score, sum"], settings["QCM-A score, calibrated"])])
    lines += ["", f"Scoring QCM-A's options, sum minus calibrated (paired, n={len(base_rows)}): {d:+.2f} ± {dse:.2f}."]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=SHARED, help="ScienceQA sample folder.")
    parser.add_argument("--shots", type=int, default=2, help="Examples per prompt (the paper: 2).")
    parser.add_argument("--n-ctx", type=int, default=4096, help="Context window of the model.")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads of each run.")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N val problems.")
    parser.add_argument("--ale-limit", type=int, default=None,
                        help="Only the first N val problems for QCM-ALE (the slow one; default --limit).")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:
        with smoke_folder("scienceqa") as folder:
            sys.path.insert(0, str(ROOT / "tests"))
            from scienceqa_fixture import write_scienceqa_fixture

            write_scienceqa_fixture(folder / "scienceqa", train=6, val=2)
            args.shots, args.n_ctx, args.threads, args.limit = 1, 2048, 1, 2
            measure(args, folder / "scienceqa", folder / "index", folder / "out", folder)
        return
    out = ROOT / "bench" / "out" / "scienceqa"
    measure(args, args.shared, out / "index", out, None)


def measure(args, data: Path, index: Path, out: Path, smoke_dir: Path | None) -> None:
    """Build the index, run the three evaluations, publish the table."""
    start = time.perf_counter()
    build_index(data, index)
    # The three runs at once, one llama.cpp thread each (a shared machine: see the module docstring).
    folders = {name: out / name.replace(" ", "-") for name in RUNS}
    running = [start_eval(args, data, index, folders[name], *how,
                          args.ale_limit if name == "QCM-ALE generate" and args.ale_limit else args.limit)
               for name, how in RUNS.items()]
    if any(p.wait() != 0 for p in running):
        raise SystemExit("a pica eval run failed")
    results = {name: rows_of(folder) for name, folder in folders.items()}
    body = "\n".join([
        "## ScienceQA: QCM-A vs QCM-ALE, and scoring QCM-A's options (packaged Gemma 3 270M)", "",
        f"`{command_line()}` — {machine()}; train's problems are the examples, val's the measure"
        f" ({args.shots} shots, n_ctx {args.n_ctx}); {time.perf_counter() - start:.0f} s in all.", "",
        *table(results), ""])
    publish("scienceqa", body, smoke_dir)


if __name__ == "__main__":
    main()
