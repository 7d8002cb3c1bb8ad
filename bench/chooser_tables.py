"""Candidate tables of pool questions for offline chooser experiments (issue 9).

Asks a slice of the calibration sample (``pica index calibrate``'s seeded order of index rows) as
questions, leave-one-image-out, exactly as calibration does, and writes each question's candidate
table (features and VQA target) as one JSON line. Several slices run side by side on a machine's
cores; `bench/chooser_models.py` fits and compares chooser models on the merged tables.

    python bench/chooser_tables.py --index /tmp/okvqa-pool-chooser --start 0 --stop 1250 \
        --out bench/out/chooser_tables/part0.jsonl --threads 1
    python bench/chooser_tables.py --smoke    # 3 questions of a small fixture index
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SMOKE_HELP, smoke_data, smoke_folder  # noqa: E402

from pica.choice.calibrate import collect, sample  # noqa: E402
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
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        with smoke_folder("chooser_tables") as folder:
            args.index, args.stop, args.out = str(fixture_index(folder)), 3, folder / "tables" / "part0.jsonl"
            return write_tables(args)
    for name in ("index", "stop", "out"):
        if getattr(args, name) is None:
            parser.error(f"--{name} is required")
    return write_tables(args)


def fixture_index(folder: Path) -> Path:
    """The pool index of the tests' OK-VQA fixture (30 questions, MiniLM), built in ``folder``."""
    from pica.datasets import load_questions, read_captions
    from pica.retrieval.build import build_index

    data = smoke_data(folder)
    return build_index(data.index, load_questions(dataset=data.pool), captions=read_captions(data.captions),
                       progress=False)


def write_tables(args: argparse.Namespace) -> int:
    """Ask rows ``start:stop`` of the calibration sample and write their candidate tables."""
    pipeline = Pipeline(make_settings({"index": args.index, "threads": args.threads,
                                        "example_order": args.example_order}, None))
    rows = sample(pipeline, len(pipeline.index), args.seed)[args.start:args.stop]
    lines = []
    for chunk in range(0, len(rows), 100):  # checkpoint every 100 questions
        tables, images = collect(pipeline, rows[chunk:chunk + 100], progress=True)
        for row, table, image in zip(rows[chunk:chunk + 100], tables, images):
            lines.append(json.dumps({"row": row, "image": image, "candidates": [
                {"answer": c["answer"], "features": c["features"], "target": c["target"]} for c in table]}))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, "\n".join(lines) + "\n")
    candidates = sum(len(json.loads(line)["candidates"]) for line in lines)
    print(f"{len(lines)} candidate tables ({candidates} candidates) -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
