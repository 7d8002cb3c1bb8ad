"""Learned answer chooser vs greedy decoding on OK-VQA dev, in one run on one machine.

The chooser is fitted on the pool index only (`pica index calibrate`, leave-one-image-out) and
never sees dev. Settings, each its own `pica eval` process on the same dev questions:

- default: greedy decoding with pica's default prompt (`--choose logprob`, plain PICa choice);
- chooser: the same prompt, answer picked by the calibrated chooser (`--choose learned`);
- chooser+aware: chooser with answer-aware examples (`--example-order answer-aware`);
- pica-16: PICa prompt with 16 nearest examples (question + caption, weight 1), greedy.

    python bench/chooser.py --shared /work/shared --index /tmp/okvqa-pool --limit 600
    python bench/chooser.py --table        # rewrite the table from finished runs
    python bench/chooser.py --smoke        # default and chooser on 2 questions of a small fixture

The shared folder (holding okvqa/) is `--shared` or `$PICA_SHARED` (default ../shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT as BENCH_OUT  # noqa: E402
from common import ROOT, SMOKE_HELP, bench_data, command_line, machine, publish  # noqa: E402
from okvqa import mean_se, paired_difference, per_question  # noqa: E402

OUT = BENCH_OUT / "chooser"
SETTINGS: dict[str, tuple[str, list[str]]] = {
    "default": ("greedy decoding, pica's default prompt (4 nearest examples)", ["--choose", "logprob"]),
    "chooser": ("same prompt; learned chooser over greedy + top-8 answers of the 32 nearest",
                ["--choose", "learned"]),
    "chooser+aware": ("chooser, answer-aware examples", ["--choose", "learned", "--example-order", "answer-aware"]),
    "pica-16": ("PICa prompt, 16 nearest by question + caption, greedy",
                ["--template", "pica", "--shots", "16", "--weights", "question=1,caption=1", "--choose", "logprob"]),
}
REFERENCE = "default"
# --smoke: fewer shots and candidates for every run, the calibration and the timing (seconds, not minutes).
SMOKE_SETTINGS = {"shots": 1, "candidate_answers": 2, "candidate_neighbours": 4}


def smoke_flags(smoke: bool) -> list[str]:
    """The CLI flags of :data:`SMOKE_SETTINGS` for a smoke run, else none."""
    return [a for k, v in SMOKE_SETTINGS.items() for a in (f"--{k.replace('_', '-')}", str(v))] if smoke else []


def paths(shared: Path) -> dict[str, Path]:
    """The OK-VQA files under the shared folder."""
    okvqa = shared / "okvqa"
    return {"dev": okvqa / "okvqa_val2014_dev.json", "pool": okvqa / "okvqa_val2014_pool.json",
            "captions": okvqa / "VinVL_base_val2014.tsv"}


def eval_command(name: str, files: dict[str, Path], index: Path, limit: int | None, threads: int,
                 out: Path = OUT, smoke: bool = False) -> list[str]:
    """The `pica eval` command of one setting (its run folder under ``out``)."""
    cmd = ["pica", "eval", str(out / name), "--dataset", str(files["dev"]), "--captions", str(files["captions"]),
           "--index", str(index), *smoke_flags(smoke), *SETTINGS[name][1],
           "--threads", str(threads), "--force-new", "--no-progress"]
    return cmd + (["--limit", str(limit)] if limit else [])


def run(cmd: list[str]) -> None:
    """Run a pica command from the repository root with this interpreter."""
    subprocess.run([sys.executable, "-m", "pica", *cmd[1:]], check=True, cwd=ROOT)


def table(index: Path, out: Path = OUT) -> str:
    """The BENCHMARKS.md section from the runs' results.jsonl (finished or stopped early: every
    row is compared on the first N dev questions that all listed runs answered)."""
    rows = {name: per_question(out / name) for name in SETTINGS if (out / name / "results.jsonl").is_file()}
    rows = {name: res for name, res in rows.items() if res}
    commands = {name: json.loads((out / name / "command.json").read_text()) for name in rows
                if (out / name / "command.json").is_file()}
    common = [k for k in rows.get(REFERENCE, {}) if all(k in res for res in rows.values())]
    lines = [
        "## Learned answer chooser (issue 9)",
        "",
        f"`{command_line()}` — {machine()}.",
        "",
        f"{'All' if len(common) == 1285 else 'The first'} {len(common)} questions of `okvqa_val2014_dev.json`"
        " (every row on the same questions), VinVL captions, the 2,509-question pool index, Gemma 3 270M"
        " Q4_K_M (llama.cpp). The chooser was fitted on the pool only (calibration below); nothing was"
        " chosen on dev. ± is one standard error of the paired per-question difference. **The s/question"
        " column does not compare across rows**: the rows ran at different times with 1 thread each, some"
        " side by side and some under load from other work; the time ratio to trust is the alternating"
        " one-process measurement below.",
        "",
        f"| setting | accuracy % | vs {REFERENCE} (paired, ± 1 SE) | s/question | × {REFERENCE} time |"
        " prompt tokens/question |",
        "|---|---|---|---|---|---|",
    ]
    ref = {k: rows[REFERENCE][k] for k in common} if REFERENCE in rows else {}
    for name, res in rows.items():
        mine = {k: res[k] for k in common}
        acc = mean_se([r["score"] for r in mine.values()])[0]
        secs = sum(r["seconds"] for r in mine.values()) / len(mine)
        tokens = sum(r["prompt_tokens"] for r in mine.values()) / len(mine)
        delta, ratio = "", ""
        if ref and name != REFERENCE:
            d, se = paired_difference(mine, ref)
            delta = f"{d:+.2f} ± {se:.2f}"
            ratio = f"{secs / (sum(r['seconds'] for r in ref.values()) / len(ref)):.2f}×"
        lines.append(f"| **{name}**: {SETTINGS[name][0]} | {acc:.2f} | {delta} | {secs:.3f} | {ratio} | {tokens:.0f} |")
    if "chooser" in rows:
        res = rows["chooser"]
        greedy = {k: {"score": _score(next((c["answer"] for c in r["candidates"] if c.get("greedy")), ""), r["gold"])}
                  for k, r in res.items()}
        d, se = paired_difference({k: res[k] for k in greedy}, greedy)
        oracle = mean_se([max([_score(c["answer"], r["gold"]) for c in r["candidates"]] or [0.0])
                          for r in res.values()])[0]
        same = sum(rows[REFERENCE][k]["answer"] == next((c["answer"] for c in res[k]["candidates"]
                                                         if c.get("greedy")), "") for k in common) if ref else 0
        lines += ["", f"Within the chooser run alone ({len(res)} questions): its greedy candidate scores"
                  f" {mean_se([g['score'] for g in greedy.values()])[0]:.2f}%, the chooser"
                  f" {mean_se([r['score'] for r in res.values()])[0]:.2f}% (paired {d:+.2f} ± {se:.2f});"
                  f" oracle over its candidates {oracle:.2f}%. The greedy candidate equals the default run's"
                  f" answer on {same} of {len(common)} shared questions."]
    for file in sorted(index.glob("choosers/*.json")):
        data = json.loads(file.read_text())
        t = data["training"]
        cv = ", ".join(f"{k} {v}%" for k, v in t.get("cv_accuracy", {}).items())
        lines += ["", f"Calibration (`{file.name}`, `pica index calibrate --n {t['questions']}`):"
                  f" {t['questions']} pool questions, leave-one-image-out, {t['seconds_per_question']} s/question"
                  f" ({t['seconds'] / 60:.0f} min); held back {t.get('heldout_questions')}:"
                  f" greedy {t.get('heldout_greedy_accuracy')}%, chooser {t.get('heldout_chooser_accuracy')}%"
                  f" (paired SE {t.get('heldout_difference_se')}), oracle {t.get('heldout_oracle_accuracy')}%."
                  f" Model `{data.get('model')}` kept by 5-fold CV on all {t['questions']} ({cv})."]
    if (out / "timing.txt").is_file():
        lines += ["", (out / "timing.txt").read_text().strip()]
    lines += ["", "Exact commands:", ""] + [f"- {name}: `{' '.join(cmd)}`" for name, cmd in commands.items()]
    return "\n".join(lines)


def timing(files: dict[str, Path], index: Path, n: int, threads: int, smoke: bool = False) -> str:
    """Wall time per question of default vs chooser in ONE process, alternating question by
    question (same model object, same load on a shared machine), on the first ``n`` dev questions."""
    import time

    from pica.config import Settings
    from pica.datasets import load_questions
    from pica.llm.llama_cpp import LlamaCppBackend
    from pica.pipeline import Pipeline

    questions = load_questions(dataset=files["dev"], limit=n)
    backend = LlamaCppBackend("gemma3-270m", threads=threads)
    common = {"index": str(index), "captioner": str(files["captions"]), "threads": threads,
              **(SMOKE_SETTINGS if smoke else {})}
    default = Pipeline(Settings(choose="logprob", **common), backend=backend)
    # The same model, index, embedder and captions object in both pipelines.
    chooser = Pipeline(Settings(choose="learned", **common), backend=backend, index=default.index,
                       embedder=default.embedder, captioner=default.captioner)
    pipes = {"default": default, "chooser": chooser}
    seconds = {name: 0.0 for name in pipes}
    for pipe in pipes.values():  # warm-up, not timed
        pipe.answer(questions[0])
    for q in questions:
        for name, pipe in pipes.items():
            t0 = time.perf_counter()
            pipe.answer(q)
            seconds[name] += time.perf_counter() - t0
    d, c = seconds["default"] / n, seconds["chooser"] / n
    return (f"Timing in one process, alternating settings question by question on the first {n} dev"
            f" questions (`python bench/chooser.py --timing {n} ...`): default {d:.3f} s/question, chooser"
            f" {c:.3f} s/question, **{c / d:.2f}×**.")


def _score(answer: str, gold) -> float:
    from pica.answers import score

    return score(answer, gold, None) if isinstance(gold, list) else score(answer, (), gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("PICA_SHARED", ROOT.parent / "shared")))
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "okvqa-pool")
    parser.add_argument("--only", nargs="*", choices=sorted(SETTINGS))
    parser.add_argument("--limit", type=int, help="first N dev questions only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calibrate-n", type=int, help="calibration questions (default: pica's)")
    parser.add_argument("--table", action="store_true", help="only rewrite the table")
    parser.add_argument("--timing", type=int, help="only time default vs chooser, alternating, on N questions")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args()
    if not args.smoke:
        return bench(args, OUT)
    with bench_data("chooser", True) as data:
        # Runs on 2 questions, calibration on 20 (its minimum), then the timing of 1 and the table,
        # all with SMOKE_SETTINGS.
        args.shared, args.index = data.okvqa.parent, data.index
        args.only, args.limit, args.calibrate_n = args.only or ["default", "chooser"], args.limit or 2, 20
        bench(args, data.out / "chooser", data.smoke_dir)


def bench(args: argparse.Namespace, out: Path, smoke_dir: Path | None = None) -> None:
    """The timing (``--timing``), or the runs (unless ``--table``) and the table. A smoke run
    also times 1 question after its runs, for the table."""
    files = paths(args.shared)
    if args.timing:
        return write_timing(timing(files, args.index, args.timing, args.threads), out)
    if not args.table:
        if not (args.index / "manifest.json").is_file():
            run(["pica", "index", "build", str(args.index), "--dataset", str(files["pool"]),
                 "--captions", str(files["captions"])])
        names = args.only or list(SETTINGS)
        if any(n.startswith("chooser") for n in names) and not list(args.index.glob("choosers/*.json")):
            n = ["--n", str(args.calibrate_n)] if args.calibrate_n else []
            # A smoke run fits logistic only: cross-validating boosted trees takes longer than asking.
            n += [*smoke_flags(True), "--model", "logistic", "--threads", str(args.threads), "--no-progress"] \
                if smoke_dir else []
            run(["pica", "index", "calibrate", str(args.index), *n, "--captioner", str(files["captions"])])
        for name in names:
            cmd = eval_command(name, files, args.index, args.limit, args.threads, out, smoke_dir is not None)
            (out / name).mkdir(parents=True, exist_ok=True)
            (out / name / "results.jsonl").unlink(missing_ok=True)
            (out / name / "command.json").write_text(json.dumps(cmd))
            run(cmd)
        if smoke_dir:
            write_timing(timing(files, args.index, 1, args.threads, smoke=True), out)
    publish("chooser", table(args.index, out), smoke_dir)


def write_timing(line: str, out: Path) -> None:
    """Print the timing line and keep it for the table (``out/timing.txt``)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "timing.txt").write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
