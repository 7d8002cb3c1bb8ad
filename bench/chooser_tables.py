"""Candidate tables of pool questions for offline chooser experiments (issue 9).

Asks a slice of the calibration sample (``pica index calibrate``'s seeded order of index rows) as
questions, leave-one-image-out, exactly as calibration does, and writes each question's candidate
table (features and VQA target) as one JSON line. Several slices run side by side on a machine's
cores; `bench/chooser_models.py` fits and compares chooser models on the merged tables.

    python bench/chooser_tables.py --index /tmp/okvqa-pool-chooser --start 0 --stop 1250 \
        --out bench/out/chooser_tables/part0.jsonl --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pica.choice.calibrate import collect, sample
from pica.config import make_settings
from pica.pipeline import Pipeline
from pica.util.fileio import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--stop", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--example-order", default="similar", choices=("similar", "answer-aware"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
