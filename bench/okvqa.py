"""OK-VQA dev accuracy and speed of named `pica eval` settings, side by side.

Each setting runs as its own `pica eval` process (so peak memory is that run's) on
../shared/okvqa/okvqa_val2014_dev.json with PICa's VinVL captions and the pool index
(built first if missing). Results go to bench/out/<name>/ and a table to BENCHMARKS.md.

    python bench/okvqa.py                     # every setting, all 1285 dev questions
    python bench/okvqa.py --only default --limit 300
    python bench/okvqa.py --smoke             # two settings, 3 questions of a small fixture

The table lists every setting that has a finished run in bench/out (from this or an earlier
invocation), so settings can be re-run one at a time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REAL, ROOT, SHARED, SMOKE_HELP, Data, bench_data, command_line, machine, publish  # noqa: E402

# name -> (description, extra `pica eval` flags). The PICa-style baselines pin the settings the
# defaults used to have, so the table stays comparable when defaults move.
BASELINE = ["--template", "pica", "--shots", "16", "--candidates", "0", "--weights", "question=1,caption=1"]
SETTINGS: dict[str, tuple[str, list[str]]] = {
    "random": ("PICa prompt, 16 random examples", [*BASELINE, "--selection", "random"]),
    "question": ("PICa prompt, 16 nearest by question (MiniLM)", [*BASELINE, "--selection", "question"]),
    "caption+question": ("PICa prompt, 16 nearest by question + caption (MiniLM; the text stand-in for"
                         " PICa's image + question)", [*BASELINE, "--selection", "caption+question"]),
    "pica-8": ("PICa prompt, 8 nearest by question + caption (caption weight 0.5)",
               ["--template", "pica", "--shots", "8", "--candidates", "0", "--weights", "question=1,caption=0.5"]),
    "default": ("pica defaults (see README): PICa prompt, 4 nearest by question + caption (caption"
                " weight 0.5)", []),
}


REFERENCE = "caption+question"  # the straightforward PICa 16-shot setting the others are compared with


def per_question(out: Path) -> dict[str, dict]:
    """question id -> result line of a finished run."""
    lines = (out / "results.jsonl").read_text().splitlines()
    return {row["question_id"]: row for row in map(json.loads, lines)}


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean of per-question scores (0-1) and its standard error, both in points."""
    mean = sum(values) / len(values)
    var = sum((x - mean) ** 2 for x in values) / (len(values) - 1)
    return 100 * mean, 100 * (var / len(values)) ** 0.5


def paired_difference(a: dict[str, dict], b: dict[str, dict]) -> tuple[float, float]:
    """Mean per-question score difference a - b over shared questions, and its standard error (points)."""
    return mean_se([a[k]["score"] - b[k]["score"] for k in a if k in b])


def ensure_index(data: Data = REAL) -> None:
    """Build the pool index (MiniLM, VinVL captions) unless it exists."""
    if not (data.index / "manifest.json").is_file():
        subprocess.run([sys.executable, "-m", "pica", "index", "build", str(data.index), "--dataset",
                        str(data.pool), "--captions", str(data.captions)], check=True)


def command(name: str, flags: list[str], limit: int | None, dataset: Path | None = None,
            data: Data = REAL, threads: int | None = None) -> tuple[Path, list[str]]:
    """The run folder and `pica eval` command of one setting (on dev unless ``dataset``)."""
    out = data.out / name if limit is None else data.out / f"{name}-{limit}"
    cmd = ["pica", "eval", str(out), "--dataset", str(dataset or data.dev), "--captions", str(data.captions),
           "--index", str(data.index), *flags, "--force-new", "--no-progress"]
    return out, cmd + (["--limit", str(limit)] if limit else []) + (["--threads", str(threads)] if threads else [])


def shown(cmd: list[str]) -> str:
    """A command as a user would type it from the repository root."""
    def short(arg: str) -> str:
        if arg.startswith(str(SHARED.parent)):
            return "../shared/" + str(Path(arg).relative_to(SHARED.parent))
        return str(Path(arg).relative_to(ROOT)) if arg.startswith(str(ROOT)) else arg

    return " ".join(shlex.quote(short(a)) for a in cmd)


def run(name: str, flags: list[str], limit: int | None, dataset: Path | None = None,
        data: Data = REAL, threads: int | None = None) -> tuple[str, dict]:
    """Run one setting as its own `pica eval` process; return the command shown and the summary."""
    out, cmd = command(name, flags, limit, dataset, data, threads)
    (out / "results.jsonl").unlink(missing_ok=True)  # measure from scratch, never a resumed run
    subprocess.run([sys.executable, "-m", "pica", *cmd[1:]], check=True, cwd=ROOT)
    return shown(cmd), json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SETTINGS), help="settings to run")
    parser.add_argument("--limit", type=int, help="first N dev questions only")
    parser.add_argument("--table", action="store_true", help="only rewrite the table from finished runs")
    parser.add_argument("--threads", type=int, help="llama.cpp threads of each run (default: all cores)")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if args.smoke:  # the reference and the default on 2 questions: the paired columns are filled
        args.only, args.limit, args.threads = args.only or [REFERENCE, "default"], args.limit or 2, args.threads or 1
    with bench_data("okvqa", args.smoke) as data:
        bench(args, data)


def bench(args: argparse.Namespace, data: Data) -> None:
    """Run the settings asked for and write the table of every finished one."""
    ensure_index(data)
    for name in [] if args.table else args.only or list(SETTINGS):
        _, summary = run(name, SETTINGS[name][1], args.limit, data=data, threads=args.threads)
        print(f"{name}: {summary['accuracy']:.2f}% {summary['seconds_per_question']:.3f} s/q", flush=True)
    rows = []
    for name, (description, flags) in SETTINGS.items():
        out, cmd = command(name, flags, args.limit, data=data, threads=args.threads)
        if (out / "summary.json").is_file():
            rows.append((name, description, shown(cmd), json.loads((out / "summary.json").read_text()), out))
    n = rows[0][3]["n"]
    results = {name: per_question(out) for name, *_, out in rows}
    summaries = {name: s for name, _, _, s, _ in rows}
    lines = [
        "## OK-VQA dev: example selection and settings",
        "",
        f"`python bench/okvqa.py` runs every setting; `--only NAME ...` re-runs some and `--table` rewrites"
        f" this table from the finished runs in bench/out (last: `{command_line()}`) — {machine()}.",
        "",
        f"{n} questions of `okvqa_val2014_dev.json` (soft-label accuracy, as the official VQA metric"
        " reduces to on LXMERT labels), VinVL captions, examples from the 2,509-question pool index,"
        " Gemma 3 270M Q4_K_M through llama.cpp on the CPU. Seconds per question are wall time of the"
        " whole pipeline (retrieval + prompt + LLM); prompt tokens/s counts prompt tokens over LLM time.",
        "",
        f"| setting | accuracy % | vs {REFERENCE} (paired, ± 1 SE) | s/question (mean / median) |"
        f" speed vs {REFERENCE} | prompt tokens/question | prompt tokens/s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, description, _, s, _ in rows:
        seconds = sorted(r["seconds"] for r in results[name].values())
        delta, speed = "", ""
        if REFERENCE in results and name != REFERENCE:
            d, se = paired_difference(results[name], results[REFERENCE])
            delta = f"{d:+.2f} ± {se:.2f}"
            speed = f"{summaries[REFERENCE]['seconds_per_question'] / s['seconds_per_question']:.2f}x"
        lines.append(f"| **{name}**: {description} | {s['accuracy']:.2f} | {delta} |"
                     f" {s['seconds_per_question']:.3f} / {seconds[len(seconds) // 2]:.3f} | {speed} |"
                     f" {s['prompt_tokens_per_question']:.0f} | {s['prompt_tokens_per_second'] or 0:.0f} |"
                     f" {s['peak_rss_mb']:.0f} |")
    lines += ["", "Exact commands:", ""]
    lines += [f"- {name}: `{cmd}`" for name, _, cmd, *_ in rows]
    publish("okvqa" if args.limit is None else f"okvqa-{args.limit}", "\n".join(lines), data.smoke_dir)


if __name__ == "__main__":
    main()
