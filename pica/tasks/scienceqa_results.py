"""ScienceQA's scoring: result-row fields, the paper's table columns and its results file.

The columns are those of ``tools/evaluate_acc.py`` of github.com/lupantech/ScienceQA: NAT, SOC,
LAN by subject (natural, social, language science); TXT: the problem has a hint; IMG: it has an
image; NO: neither; G1-6 and G7-12 by grade; Avg: every problem. A problem's score is 1 when the
predicted option is its answer, else 0.

The results file is ``scienceqa_{split}.json`` as ``models/run_gpt3.py`` saves it: ``acc``
(percent), ``correct``, ``count``, ``results`` ``{pid: predicted index}`` and ``outputs``
``{pid: generated text}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pica.answers import mean_se
from pica.types import Answer, Question
from pica.util.fileio import atomic_write_text

COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12")
SUBJECTS = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}
_LOW_GRADES = {f"grade{i}" for i in range(1, 7)}
_HIGH_GRADES = {f"grade{i}" for i in range(7, 13)}


def problem_columns(meta: Mapping[str, Any]) -> list[str]:
    """The table columns a problem counts in, in :data:`COLUMNS` order (Avg, which holds every
    problem, is not listed)."""
    found = set()
    if meta.get("subject") in SUBJECTS:
        found.add(SUBJECTS[meta["subject"]])
    if meta.get("hint"):
        found.add("TXT")
    if meta.get("image"):
        found.add("IMG")
    if not meta.get("hint") and not meta.get("image"):
        found.add("NO")
    grade = meta.get("grade")
    if grade in _LOW_GRADES:
        found.add("G1-6")
    elif grade in _HIGH_GRADES:
        found.add("G7-12")
    return [c for c in COLUMNS if c in found]


def row_fields(q: Question, a: Answer) -> dict[str, Any]:
    """The task fields of a ScienceQA result row: ``task`` ``scienceqa``, ``score`` (1.0/0.0),
    ``counted``, ``columns``, ``choices``, ``correct_choice_idx``, ``chosen``, ``chosen_idx``,
    ``mc_method``, ``mc`` (how the answer was read: ``parsed``, ``fallback``, scores),
    ``rationale`` and the gold ``solution``."""
    mc = a.mc or {}
    index = mc.get("index")
    score = None if q.correct_choice_idx is None or index is None else float(index == q.correct_choice_idx)
    return {"task": "scienceqa", "score": score, "counted": score is not None,
            "columns": problem_columns(q.meta), "choices": q.choices,
            "correct_choice_idx": q.correct_choice_idx, "chosen": mc.get("chosen"),
            "chosen_idx": index, "mc_method": mc.get("method"), "mc": mc,
            "rationale": a.rationale, "solution": q.meta.get("solution", "")}


def column_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"scienceqa": {"NAT": {"accuracy", "se", "n"}, ..., "Avg": {...}}}`` (percent, ± 1 SE)
    of the ScienceQA rows with a score; ``{}`` when there are none."""
    rows = [r for r in rows if r.get("task") == "scienceqa" and r.get("score") is not None]
    if not rows:
        return {}
    table = {}
    for column in (*COLUMNS, "Avg"):
        scores = [r["score"] for r in rows if column == "Avg" or column in (r.get("columns") or [])]
        accuracy, se = mean_se(scores)
        table[column] = {"accuracy": accuracy, "se": se, "n": len(scores)}
    return {"scienceqa": table}


def results_file(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ScienceQA repository's results object for the rows: ``acc``, ``correct``, ``count``,
    ``results``, ``outputs``."""
    rows = [r for r in rows if r.get("task") == "scienceqa"]
    correct = sum(1 for r in rows if r.get("score") == 1.0)
    count = len(rows)
    return {"acc": 100 * correct / count if count else 0.0, "correct": correct, "count": count,
            "results": {str(r["question_id"]): int(r["chosen_idx"]) for r in rows},
            "outputs": {str(r["question_id"]): r.get("raw") or "" for r in rows}}


def write_results_file(out: Path, rows: Sequence[Mapping[str, Any]],
                       dataset: Mapping[str, Any]) -> Path | None:
    """Write ``scienceqa_{split}.json`` into ``out`` (none without ScienceQA rows)."""
    if not any(r.get("task") == "scienceqa" for r in rows):
        return None
    path = out / f"scienceqa_{dataset.get('split') or 'test'}.json"
    atomic_write_text(path, json.dumps(results_file(rows), indent=2, ensure_ascii=False) + "\n")
    return path
