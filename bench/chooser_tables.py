"""Candidate tables of pool questions for offline chooser experiments (issue 9).

Asks a slice of the calibration sample (``pica index calibrate``'s seeded order of index rows) as
questions, leave-one-image-out, exactly as calibration does, and writes each question's candidate
table (features and VQA target) as one JSON line. Several slices run side by side on a machine's
cores; `bench/chooser_models.py` fits and compares chooser models on the merged tables.

    python bench/chooser_tables.py --index /tmp/okvqa-pool-chooser --start 0 --stop 1250 \
        --out bench/out/chooser_tables/part0.jsonl --threads 1
    python bench/chooser_tables.py --index /tmp/22-pool --start 0 --stop 1000 --threads 1 \
        --out end0.jsonl --other-scoring answer+end --other-out other0.jsonl   # issue 22's pairs
    python bench/chooser_tables.py --smoke    # 3 questions of a small fixture index
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SMOKE_HELP, smoke_data, smoke_folder  # noqa: E402

from pica.choice import candidates  # noqa: E402
from pica.choice.calibrate import collect, sample  # noqa: E402
from pica.choice.candidates import SCORINGS, logprob_features, scored_end  # noqa: E402
from pica.config import make_settings  # noqa: E402
from pica.pipeline import Pipeline  # noqa: E402
from pica.util.fileio import atomic_write_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--example-order", default="similar", choices=("similar", "answer-aware"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--other-scoring", choices=SCORINGS,
                        help="also score each candidate this way (its answer's tokens alone, or with the"
                             " template's end of answer) and write those tables to --other-out, paired"
                             " (the same questions, prompts and candidates; only the log-prob features differ)")
    parser.add_argument("--other-out", type=Path)
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        with smoke_folder("chooser_tables") as folder:
            args.index, args.stop, args.out = str(fixture_index(folder)), 3, folder / "tables" / "part0.jsonl"
            args.other_scoring, args.other_out = "answer+end", folder / "tables" / "other0.jsonl"
            return write_tables(args)
    for name in ("index", "stop", "out"):
        if getattr(args, name) is None:
            parser.error(f"--{name} is required")
    if (args.other_scoring is None) != (args.other_out is None):
        parser.error("--other-scoring and --other-out go together")
    return write_tables(args)


def fixture_index(folder: Path) -> Path:
    """The pool index of the tests' OK-VQA fixture (30 questions, MiniLM), built in ``folder``."""
    from pica.datasets import load_questions, read_captions
    from pica.retrieval.build import build_index

    data = smoke_data(folder)
    return build_index(data.index, load_questions(dataset=data.pool), captions=read_captions(data.captions),
                       progress=False)


def write_tables(args: argparse.Namespace) -> int:
    """Ask rows ``start:stop`` of the calibration sample and write their candidate tables (and,
    with ``--other-scoring``, the same tables with the candidates scored the other way)."""
    pipeline = Pipeline(make_settings({"index": args.index, "threads": args.threads,
                                        "example_order": args.example_order}, None))
    rows = sample(pipeline, len(pipeline.index), args.seed)[args.start:args.stop]
    other: list = []  # (summed log-prob, tokens) per candidate scored the other way, per question
    if args.other_scoring:
        _also_score(pipeline, args.other_scoring, other)
    lines, other_lines = [], []
    for chunk in range(0, len(rows), 100):  # checkpoint every 100 questions
        tables, images = collect(pipeline, rows[chunk:chunk + 100], progress=True)
        for row, table, image in zip(rows[chunk:chunk + 100], tables, images):
            lines.append(_line(row, image, table))
            if args.other_scoring:
                scored = other.pop(0)
                for cand, lp in zip(table, logprob_features(scored, len(table))):
                    cand["features"].update({k: round(v, 6) for k, v in lp.items()})
                other_lines.append(_line(row, image, table))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, "\n".join(lines) + "\n")
        if args.other_scoring:
            args.other_out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.other_out, "\n".join(other_lines) + "\n")
    candidates = sum(len(json.loads(line)["candidates"]) for line in lines)
    print(f"{len(lines)} candidate tables ({candidates} candidates) -> {args.out}"
          + (f" and, scored as {args.other_scoring}, -> {args.other_out}" if args.other_scoring else ""),
          flush=True)
    return 0


def _line(row: int, image: str, table: list[dict]) -> str:
    return json.dumps({"row": row, "image": image, "candidates": [
        {"answer": c["answer"], "features": c["features"], "target": c["target"]} for c in table]})


def _also_score(pipeline: Pipeline, scoring: str, into: list) -> None:
    """Make every candidate table of ``pipeline`` also score its candidates as ``scoring``
    (:data:`pica.choice.candidates.SCORINGS`) and append those scores to ``into``. The other
    scoring runs after the pipeline's own, from the same cache (the prompt's alone)."""
    text = scored_end(pipeline.template.example, scoring)
    own = candidates.score_all

    def score_both(backend, prompt, cands, end_used):
        scored = own(backend, prompt, cands, end_used)
        into.append(own(backend, prompt, cands, text))
        return scored

    candidates.score_all = score_both


if __name__ == "__main__":
    sys.exit(main())
