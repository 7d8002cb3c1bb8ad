"""The standard outputs of a finished run, written from ``results.jsonl``: ``predictions.json``
(VQA results format), ``results.parquet``, ``summary.json``, ``report.html`` and, for A-OKVQA,
the official prediction files."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pica.errors import InputError
from pica.evaluation.report import write_report
from pica.evaluation.results import RESULTS_FILE, read_results
from pica.evaluation.runlock import RunLock
from pica.evaluation.summary import summarize
from pica.tasks.aokvqa import write_official_predictions
from pica.tasks.scienceqa_results import write_results_file
from pica.util.fileio import atomic_write, atomic_write_text

RUN_FILE = "run.json"
OUTPUTS = ("predictions.json", "results.parquet", "summary.json", "report.html")


def write_outputs(out: str | Path, questions_order: Sequence[str] | None = None) -> dict[str, Any]:
    """Write predictions.json, results.parquet, summary.json and report.html from results.jsonl
    (and, for A-OKVQA runs, ``predictions_{split}-da.json`` / ``predictions_{split}-mc.json``; for
    ScienceQA runs, ``scienceqa_{split}.json``).

    Takes the folder's lock: a running ``pica eval`` writes these outputs itself when it ends, and
    two writers would race on the files, so a folder in use is refused rather than waited for.

    Raises:
        InputError: the folder holds no run or no results.
        RunInUseError: a ``pica eval`` is running in the folder.
        StorageError: an output could not be written (full disk); no temporary file is left and
            the outputs written before keep their previous content.
    """
    out = Path(out)
    if not (out / RUN_FILE).is_file():
        raise InputError(f"{out} is not a pica run folder ({RUN_FILE} missing)")
    with RunLock(out, hint="wait for it to finish: it writes the report itself when done"):
        return _write_outputs(out, questions_order)


def _write_outputs(out: Path, questions_order: Sequence[str] | None) -> dict[str, Any]:
    """:func:`write_outputs` for a caller that holds the folder's lock."""
    import pandas as pd

    rows = read_results(out / RESULTS_FILE)
    if not rows:
        raise InputError(f"run folder {out} has no results yet")
    if questions_order is not None:
        position = {qid: i for i, qid in enumerate(questions_order)}
        rows = sorted((r for r in rows if r["question_id"] in position),
                      key=lambda r: position[r["question_id"]])
    run = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    config = run["config"]
    summary = summarize(rows, config, choice=run.get("choice"), run=run)
    predictions = [{"question_id": _vqa_id(r["question_id"]), "answer": r["answer"]} for r in rows]
    atomic_write_text(out / "predictions.json", json.dumps(predictions) + "\n")
    write_official_predictions(out, rows, config.get("dataset") or {})
    write_results_file(out, rows, config.get("dataset") or {})
    frame = pd.DataFrame(rows)
    for column in ("gold", "example_ids", "prompts", "candidates", "choices", "mc", "columns"):
        if column in frame:
            frame[column] = [json.dumps(v, ensure_ascii=False) for v in frame[column]]
    atomic_write(out / "results.parquet", lambda tmp: frame.to_parquet(tmp, index=False))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_report(frame, summary, out / "report.html")
    return summary


def _vqa_id(qid: str) -> int | str:
    return int(qid) if qid.isdigit() else qid
