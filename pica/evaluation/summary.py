"""The summary of a run: accuracy (± 1 SE) overall, per category and per question type; speed per
stage; the answer choice in use."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pica import __version__
from pica.answers import mean_se
from pica.config import STARTER_INDEX
from pica.evaluation.categories import category_name
from pica.evaluation.results import STAGES
from pica.retrieval.store import STARTER_WARNING
from pica.tasks.aokvqa import task_summary
from pica.tasks.scienceqa_results import column_summary
from pica.util.memory import peak_rss_mb


def scored(row: Mapping[str, Any]) -> bool:
    """Whether a result row has a score that counts toward the accuracy: it has gold answers (a
    row of a run without annotations has ``score`` ``None``; rows of older runs had ``0.0`` and
    empty ``gold``, so those are recognised by their gold) and is not left out (A-OKVQA's
    difficult questions in the direct-answer score)."""
    return row.get("score") is not None and row.get("counted", True) and _has_gold(row)


def _has_gold(row: Mapping[str, Any]) -> bool:
    return bool(row.get("gold")) or row.get("mc_correct") is not None


def summarize(rows: Sequence[dict[str, Any]], config: dict[str, Any],
              choice: Mapping[str, Any] | None = None,
              run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Accuracy overall, per category and per question type; speed; the answer choice; the
    configuration; what was evaluated (from ``run``, the run folder's ``run.json``).

    ``dataset`` names the question source (its file name), ``questions_total`` the questions it
    holds before ``--limit`` (``limit``: the limit, or ``None``), ``examples`` the example pool
    (:func:`pica.retrieval.store.describe_examples`; ``starter`` true for the 96 hand-written
    starter examples).

    The accuracies average the rows' ``score`` over the rows that count (:func:`scored`), each
    with ``se``, one standard error of that mean (percent); ``n`` is the number of scored rows and
    ``questions`` the number answered, ``errors`` those recorded as error rows (a prompt that
    cannot fit the context; scored as wrong answers). A run without gold answers has ``accuracy`` and ``se``
    ``None``, ``n`` 0 and ``annotations`` false. A-OKVQA runs add ``task``, ``da`` and ``mc``
    (see :func:`pica.tasks.aokvqa.task_summary`); ScienceQA runs ``scienceqa``, the paper's
    columns NAT..G7-12 and Avg (:func:`pica.tasks.scienceqa_results.column_summary`).
    ``seconds_per_stage`` holds the mean seconds of each stage per question
    (:data:`pica.evaluation.results.STAGES`), ``seconds_first_question``
    the first question's total (model loading falls there).
    """
    def acc(group: Sequence[dict[str, Any]]) -> dict[str, Any]:
        accuracy, se = mean_se([r["score"] for r in group])
        return {"accuracy": accuracy, "se": se, "n": len(group)}

    by_cat: dict[str, list] = defaultdict(list)
    by_type: dict[str, list] = defaultdict(list)
    all_rows, rows = rows, [r for r in rows if scored(r)]
    for r in rows:
        if r.get("category") is not None:
            by_cat[str(r["category"])].append(r)
        if r.get("question_type"):
            by_type[str(r["question_type"])].append(r)
    # The LLM time behind prompt_tokens: the direct answer's, or multiple choice's alone.
    llm_seconds = sum(r.get("seconds_llm") or r.get("seconds_mc", 0.0) for r in all_rows)
    n_all = len(all_rows)
    annotated = any(r.get("score") is not None and _has_gold(r) for r in all_rows)
    run = run or {}
    return {
        **acc(rows),
        "questions": n_all,
        "errors": sum(1 for r in all_rows if r.get("error")),
        "questions_total": run.get("questions_total"),
        "limit": run.get("limit"),
        "dataset": dataset_name(config.get("dataset") or {}),
        "examples": run.get("examples") or _examples_of(config),
        "annotations": annotated,
        **task_summary(all_rows),
        **column_summary(all_rows),
        "per_category": {k: _named(k, acc(v))
                         for k, v in sorted(by_cat.items(), key=lambda kv: _natural(kv[0]))},
        "per_question_type": {k: acc(v) for k, v in sorted(by_type.items())},
        "seconds_per_question": round(sum(r["seconds"] for r in all_rows) / n_all, 4),
        "seconds_per_stage": {stage: round(sum(r.get(f"seconds_{stage}", 0.0) for r in all_rows) / n_all, 4)
                              for stage in STAGES},
        "seconds_first_question": round(all_rows[0]["seconds"], 4),
        "prompt_tokens_per_second": round(sum(r["prompt_tokens"] for r in all_rows) / llm_seconds, 1)
        if llm_seconds else None,
        "prompt_tokens_per_question": round(sum(r["prompt_tokens"] for r in all_rows) / n_all, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **({"choice": dict(choice)} if choice else {}),
        "config": config,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "pica_version": __version__,
    }


def dataset_name(identity: Mapping[str, Any]) -> str | None:
    """The question source of a run's dataset identity as a short name: the file or folder name
    (``okvqa_val2014_dev.json``), an HF dataset with its split."""
    for key in ("dataset", "questions", "aokvqa", "hf_dataset"):
        if identity.get(key):
            name = str(identity[key]).rstrip("/").rsplit("/", 1)[-1]
            return f"{name} ({identity['split']})" if key == "hf_dataset" and identity.get("split") else name
    return None


def _examples_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The example pool of a run folder made before run.json recorded it, from its settings."""
    index = (config.get("settings") or {}).get("index")
    starter = index == STARTER_INDEX
    line = ("examples: " + STARTER_WARNING.format(count=96) if starter
            else "examples: none (zero-shot: --index none)" if index in (None, "none")
            else f"examples: index {index}")
    return {"index": index, "path": None, "count": None, "starter": starter, "line": line}


def _named(code: str, stats: dict[str, Any]) -> dict[str, Any]:
    """Category stats with the OK-VQA category name when the code is one of OK-VQA's."""
    name = category_name(code)
    return {**stats, "name": name} if name else stats


def _natural(key: str) -> tuple:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)
