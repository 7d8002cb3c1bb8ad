"""The summary of a run: accuracy overall, per category and per question type; speed."""

from __future__ import annotations

import resource
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pica import __version__
from pica.evaluation.categories import category_name
from pica.tasks.aokvqa import task_summary


def summarize(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """Accuracy overall, per category and per question type; speed; the configuration.

    The accuracies average the rows' ``score`` over the rows that count (A-OKVQA's difficult
    questions are left out of the direct-answer score); A-OKVQA runs add ``task``, ``da`` and
    ``mc`` (see :func:`pica.tasks.aokvqa.task_summary`).
    """
    def acc(group: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"accuracy": round(100 * sum(r["score"] for r in group) / len(group), 2) if group else None,
                "n": len(group)}

    by_cat: dict[str, list] = defaultdict(list)
    by_type: dict[str, list] = defaultdict(list)
    all_rows, rows = rows, [r for r in rows if r.get("counted", True)]
    for r in rows:
        if r.get("category") is not None:
            by_cat[str(r["category"])].append(r)
        if r.get("question_type"):
            by_type[str(r["question_type"])].append(r)
    llm_seconds = sum(r.get("seconds_llm", 0.0) for r in all_rows)
    n_all = len(all_rows)
    return {
        **acc(rows),
        **task_summary(all_rows),
        "per_category": {k: _named(k, acc(v))
                         for k, v in sorted(by_cat.items(), key=lambda kv: _natural(kv[0]))},
        "per_question_type": {k: acc(v) for k, v in sorted(by_type.items())},
        "seconds_per_question": round(sum(r["seconds"] for r in all_rows) / n_all, 4),
        "prompt_tokens_per_second": round(sum(r["prompt_tokens"] for r in all_rows) / llm_seconds, 1)
        if llm_seconds else None,
        "prompt_tokens_per_question": round(sum(r["prompt_tokens"] for r in all_rows) / n_all, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "config": config,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "pica_version": __version__,
    }


def _named(code: str, stats: dict[str, Any]) -> dict[str, Any]:
    """Category stats with the OK-VQA category name when the code is one of OK-VQA's."""
    name = category_name(code)
    return {**stats, "name": name} if name else stats


def _natural(key: str) -> tuple:
    return (0, int(key), "") if key.isdigit() else (1, 0, key)
