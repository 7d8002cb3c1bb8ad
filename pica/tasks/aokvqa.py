"""A-OKVQA evaluation: task fields of result rows, DA and MC accuracy, official prediction files.

Scoring follows ``evaluation/eval_predictions.py`` of github.com/allenai/aokvqa:

- **DA** (direct answer): ``min(1, matches / 3)`` over the 10 ``direct_answers``
  (:func:`pica.answers.aokvqa_direct_accuracy`), averaged over the questions *not* marked
  ``difficult_direct_answer``; the difficult ones are counted and reported beside the score.
- **MC** (multiple choice): the fraction of questions whose predicted choice equals
  ``choices[correct_choice_idx]``, over all questions.

The official prediction files map question ids to answers, ``{question_id: answer}``:
``predictions_{split}-da.json`` (the direct answers) and ``predictions_{split}-mc.json`` (the
chosen choices' texts), as ``eval_predictions.py`` reads them; when both ran, also the
leaderboard's unified ``predictions_{split}.json``, ``{question_id: {"multiple_choice": ...,
"direct_answer": ...}}`` (as ``prepare_predictions.py`` builds it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pica.answers import aokvqa_direct_accuracy, mean_se, score
from pica.types import Answer, Question
from pica.util.fileio import atomic_write_text

_AOKVQA_NAME = re.compile(r"aokvqa_v\d+p\d+_(.+)", re.IGNORECASE)


def task_fields(q: Question, a: Answer, task: str) -> dict[str, Any]:
    """The task columns of one result row, and its primary ``score``.

    Args:
        q: The question (with its gold answers, choices and difficulty).
        a: Its answer; ``a.mc`` holds the multiple-choice outcome for ``mc``/``both``.
        task: ``da``, ``mc`` or ``both``.

    Returns:
        ``task``, ``score`` (the DA score when the task has a direct answer, else the MC outcome;
        ``None`` when the question has no gold answers or correct choice), ``counted`` (whether
        ``score`` enters the headline accuracy: not for DA on difficult questions), ``rationale``
        (when written), and for A-OKVQA questions ``da_score``,
        ``difficult``, ``choices``, ``correct_choice_idx``, ``chosen``, ``chosen_idx``,
        ``mc_correct``, ``mc_method``, ``mc``.
    """
    has_da = task in ("da", "both")
    aokvqa = q.scoring == "aokvqa"
    da = None
    if has_da and (q.answers or (q.label and not aokvqa)):  # no gold (e.g. a test split): no score
        da = aokvqa_direct_accuracy(a.answer, q.answers) if aokvqa else score(a.answer, q.answers, q.label)
    fields: dict[str, Any] = {"task": task}
    if a.rationale:
        fields["rationale"] = a.rationale
    mc_correct = None
    if a.mc is not None:
        chosen_idx = a.mc["index"]
        if q.correct_choice_idx is not None:
            mc_correct = float(chosen_idx == q.correct_choice_idx)
        fields.update(chosen=a.mc["chosen"], chosen_idx=chosen_idx, mc_correct=mc_correct,
                      mc_method=a.mc["method"], mc=a.mc)
        if not a.rationale and a.mc.get("rationale"):
            fields["rationale"] = a.mc["rationale"]
    if aokvqa:
        fields.update(da_score=da, difficult=q.difficult, choices=q.choices,
                      correct_choice_idx=q.correct_choice_idx)
    primary = da if has_da else mc_correct
    fields["score"] = primary  # None: no gold answers to score against
    fields["counted"] = primary is not None and not (has_da and aokvqa and q.difficult)
    return fields


def task_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """DA and MC accuracy (percent) of result rows, for ``summary.json``.

    Returns:
        ``{"task": ..., "da": {"accuracy", "se", "n", "difficult_left_out"}, "mc": {"accuracy",
        "se", "n"}}`` (percent, ``se`` one standard error of the mean) with only the parts the rows
        have (``da`` counts only rows with gold answers); ``{}`` for rows without task fields (older runs).
    """
    tasks = {r.get("task") for r in rows} - {None}
    if not tasks:
        return {}
    out: dict[str, Any] = {"task": "/".join(sorted(tasks))}
    da_rows = [r for r in rows if r.get("task") in ("da", "both")]
    if da_rows and any("da_score" in r for r in da_rows):
        scored = [r for r in da_rows if r.get("da_score") is not None]
        kept = [r for r in scored if not r.get("difficult")]
        out["da"] = {**_stats([r["da_score"] for r in kept]),
                     "difficult_left_out": len(scored) - len(kept)}
    mc_rows = [r for r in rows if r.get("mc_correct") is not None]
    if mc_rows:
        out["mc"] = _stats([r["mc_correct"] for r in mc_rows])
    return out


def _stats(values: Sequence[float]) -> dict[str, Any]:
    accuracy, se = mean_se(values)
    return {"accuracy": accuracy, "se": se, "n": len(values)}


def split_name(dataset: Mapping[str, Any]) -> str:
    """The split of the official prediction file names, from a run's dataset identity:
    ``split_name`` if given, else an HF dataset's split, else the file name
    (``aokvqa_v1p0_val.json`` -> ``val``; any other ``name.json`` -> ``name``)."""
    if dataset.get("split_name"):
        return str(dataset["split_name"])
    if dataset.get("hf_dataset") and dataset.get("split"):
        return str(dataset["split"])
    source = dataset.get("aokvqa") or dataset.get("dataset") or dataset.get("hf_dataset") or "dataset"
    stem = Path(str(source)).name.split(".")[0]
    match = _AOKVQA_NAME.fullmatch(stem)
    return match.group(1) if match else stem


def official_predictions(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """``{"da": {qid: answer}, "mc": {qid: chosen choice}}`` for the A-OKVQA rows (parts without
    rows are left out)."""
    da = {str(r["question_id"]): r["answer"] for r in rows
          if "da_score" in r and r.get("task") in ("da", "both")}
    mc = {str(r["question_id"]): r["chosen"] for r in rows
          if r.get("chosen") is not None and r.get("task") != "scienceqa"}
    return {name: preds for name, preds in (("da", da), ("mc", mc)) if preds}


def write_official_predictions(out: Path, rows: Sequence[Mapping[str, Any]],
                               dataset: Mapping[str, Any]) -> list[Path]:
    """Write ``predictions_{split}-da.json`` and/or ``predictions_{split}-mc.json`` into ``out``,
    and, when both tasks ran, the leaderboard's unified ``predictions_{split}.json``
    (``{question_id: {"multiple_choice": choice, "direct_answer": answer}}``, what
    ``prepare_predictions.py`` of github.com/allenai/aokvqa makes from the two files).

    Returns:
        The files written (none for runs without A-OKVQA rows).
    """
    split = split_name(dataset)
    written = []
    parts = official_predictions(rows)
    for name, preds in parts.items():
        path = out / f"predictions_{split}-{name}.json"
        atomic_write_text(path, json.dumps(preds, ensure_ascii=False) + "\n")
        written.append(path)
    if "da" in parts and "mc" in parts:
        unified = {qid: {"multiple_choice": parts["mc"][qid], "direct_answer": parts["da"][qid]}
                   for qid in parts["mc"] if qid in parts["da"]}
        path = out / f"predictions_{split}.json"
        atomic_write_text(path, json.dumps(unified, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def choice_marks(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A result row's choices for display, each marked ``chosen`` and/or ``correct``; ``[]``
    without choices. ``row`` may come from ``results.parquet`` (choices as JSON text, NaN cells)."""
    choices = row.get("choices")
    if isinstance(choices, str):
        try:
            choices = json.loads(choices)
        except ValueError:
            return []
    if not isinstance(choices, list) or not choices:
        return []
    marks = [(mark, _index(row.get(key))) for mark, key in (("chosen", "chosen_idx"),
                                                             ("correct", "correct_choice_idx"))]
    return [(str(c), " ".join(mark for mark, idx in marks if idx == i)) for i, c in enumerate(choices)]


def _index(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else int(number)
