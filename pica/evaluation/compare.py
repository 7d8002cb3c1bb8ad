"""Paired comparison of run folders (``pica compare RUN_A RUN_B [RUN_C ...]``; the first is the
baseline).

Questions are matched by id; only those every run answered are compared, and each run's others
are counted as left out. Two runs on the same questions make correlated errors, so the difference
of two accuracies is judged on the per-question differences: for every question scored in both,
``d = score_B - score_A`` (a VQA soft score or 1/0), and

- the **paired difference** is the mean of ``d`` (points),
- its **paired SE** is ``sd(d) / sqrt(n)``, with the sample standard deviation (``ddof = 1``),
- the **95% interval** is ``difference ± 1.96 SE`` (normal approximation),
- B **wins** a question when its score is higher, **loses** when lower, else a **tie**.

The same is done per group of questions: OK-VQA categories, A-OKVQA's direct-answer (DA) and
multiple-choice (MC) scores, ScienceQA's table columns (rows that carry ``columns``) and question
types. Speed is compared per stage as the ratio of mean seconds per question, ``R = mean(t_B) /
mean(t_A)`` over the shared questions, with the paired (delta-method) SE of a ratio of means,
``sd(t_B - R t_A) / (sqrt(n) mean(t_A))``.

Run folders of any pica version are read (``results.jsonl`` alone is enough), never written; a
folder whose ``pica eval`` is still running (its lock held, see :func:`~pica.evaluation.runlock.is_held`)
or that has no ``summary.json`` yet is compared on the questions answered so far, and said to be.
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pica.answers import mean_se
from pica.errors import InputError
from pica.evaluation.categories import category_label, category_name
from pica.evaluation.outputs import RUN_FILE
from pica.evaluation.results import RESULTS_FILE, STAGES, read_results
from pica.evaluation.runlock import is_held
from pica.evaluation.summary import scored

Z95 = 1.959963984540054  # the normal distribution's 97.5% quantile
TIE = 1e-9  # scores closer than this are a tie
MIN_SECONDS = 1e-3  # a stage under 1 ms per question took no measurable time (no ratio to it)
SUMMARY_FILE = "summary.json"
# ScienceQA's table columns, in the paper's order (tools/evaluate_acc.py of lupantech/ScienceQA).
SCIENCEQA_COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12")
_TASK_LABELS = {"DA": "DA (direct answer)", "MC": "MC (multiple choice)"}


@dataclass
class Run:
    """One run folder as read for a comparison.

    Attributes:
        path: The folder.
        label: ``A``, ``B``, ... in the order given (``A`` is the baseline).
        rows: Result rows by question id, in file order (first occurrence of each id).
        status: ``finished`` (``summary.json`` written for every row, no writer), ``in progress``
            (a ``pica eval`` holds the folder) or ``not finished`` (stopped before its outputs
            were written).
        settings: The prediction-shaping settings of ``run.json`` (empty for older runs).
        questions_total: Questions in the dataset before ``--limit`` / ``--shard``, when recorded.
        limit: The run's ``--limit``, when recorded.
        bad_lines: Lines of ``results.jsonl`` that are not result rows (skipped).
    """

    path: Path
    label: str
    rows: dict[str, dict[str, Any]]
    status: str
    settings: dict[str, Any] = field(default_factory=dict)
    questions_total: int | None = None
    limit: int | None = None
    bad_lines: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The folder as given."""
        return str(self.path)

    @property
    def task(self) -> str | None:
        """The task of the rows (``da``, ``mc``, ``both``, ``scienceqa``; ``/``-joined when
        mixed), ``None`` for rows without one (OK-VQA runs of older pica versions)."""
        tasks = sorted({str(r["task"]) for r in self.rows.values() if r.get("task")})
        return "/".join(tasks) or None


@dataclass
class Comparison:
    """The result of :func:`compare_runs`: the runs, the shared question ids (baseline file
    order), per-run figures, one paired comparison per run against the baseline, notes."""

    runs: list[Run]
    shared: list[str]
    run_stats: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    differences: dict[str, list[Any]]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``pica compare --json``): ``questions`` (shared), ``runs``, ``pairs``,
        ``differences`` (settings that differ: one value per run) and ``notes``."""
        return {"questions": len(self.shared), "runs": self.run_stats, "pairs": self.pairs,
                "differences": self.differences, "notes": self.notes}


def load_run(path: str | Path, label: str = "A") -> Run:
    """Read a run folder (or its ``results.jsonl``) without changing anything in it.

    Raises:
        InputError: no such folder, no ``results.jsonl`` in it, or no result rows yet.
    """
    path = Path(path)
    folder = path.parent if path.is_file() and path.name == RESULTS_FILE else path
    if not folder.is_dir():
        raise InputError(f"{path} is not a run folder (no such folder)")
    results = folder / RESULTS_FILE
    if not results.is_file():
        raise InputError(f"{folder} is not a pica run folder ({RESULTS_FILE} missing)")
    bad: list[str] = []
    rows = read_results(results, repair=False, warn=bad.append)
    if not rows:
        raise InputError(f"run folder {folder} has no results yet")
    run_json, summary = _read_json(folder / RUN_FILE), _read_json(folder / SUMMARY_FILE)
    # A summary written for fewer rows than there are now: resumed (with a larger --limit) and stopped.
    written = summary is not None and summary.get("questions", len(rows)) == len(rows)
    status = "in progress" if is_held(folder) else "finished" if written else "not finished"
    config = (run_json or {}).get("config") or (summary or {}).get("config") or {}
    settings = config.get("settings") if isinstance(config, Mapping) else None
    return Run(path=folder, label=label, rows={r["question_id"]: r for r in rows}, status=status,
               settings=dict(settings) if isinstance(settings, Mapping) else {},
               questions_total=_recorded("questions_total", summary, run_json),
               limit=_recorded("limit", summary, run_json), bad_lines=bad)


def compare_runs(paths: Sequence[str | Path]) -> Comparison:
    """Compare run folders question by question; the first is the baseline.

    Args:
        paths: Two or more run folders (or their ``results.jsonl`` files).

    Returns:
        The :class:`Comparison` (see the module docstring for what is computed and how).

    Raises:
        InputError: fewer than two runs, one given twice, a folder that is not a run, runs that
            share no question, or a question whose gold answers (or text) differ between runs
            (different datasets).
    """
    if len(paths) < 2:
        raise InputError("give two or more run folders: pica compare RUN_A RUN_B [RUN_C ...]"
                         " (the first is the baseline)")
    if len(paths) > len(string.ascii_uppercase):
        raise InputError(f"compare at most {len(string.ascii_uppercase)} runs at once, got {len(paths)}")
    runs = [load_run(p, string.ascii_uppercase[i]) for i, p in enumerate(paths)]
    seen: dict[Path, Run] = {}
    for run in runs:
        key = run.path.resolve()
        if key in seen:
            raise InputError(f"run folder {run.path} is given twice ({seen[key].label} and {run.label})")
        seen[key] = run
    shared = [qid for qid in runs[0].rows if all(qid in r.rows for r in runs[1:])]
    if not shared:
        counts = ", ".join(f"{r.label} {r.path} has {len(r.rows)}" for r in runs)
        raise InputError(f"the runs share no question id ({counts} questions); compare runs on the"
                         " same dataset")
    _check_same_questions(runs, shared)
    return Comparison(runs=runs, shared=shared,
                      run_stats=[_run_stats(r, shared) for r in runs],
                      pairs=[_pair(runs[0], r, shared) for r in runs[1:]],
                      differences=_differences(runs), notes=_notes(runs, shared))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Paired comparison of two runs' scores on the same questions (in [0, 1], same order).

    Returns:
        ``n``, ``a_accuracy`` and ``b_accuracy`` (percent), ``difference`` (mean of ``b - a``,
        points), ``se`` (sample sd of ``b - a`` over sqrt(n), points; ``None`` for n < 2),
        ``ci95`` (``[low, high]``, difference ± 1.96 SE; ``None`` without an SE), ``b_wins``,
        ``a_wins`` and ``ties``; numbers rounded to 2 decimals.
    """
    if len(a) != len(b):
        raise ValueError("paired scores need the same questions")
    n = len(a)
    d = [y - x for x, y in zip(a, b, strict=True)]
    mean = sum(d) / n if n else None
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n) if n > 1 else None
    return {
        "n": n,
        "a_accuracy": mean_se(a)[0],
        "b_accuracy": mean_se(b)[0],
        "difference": None if mean is None else round(100 * mean, 2),
        "se": None if se is None else round(100 * se, 2),
        "ci95": None if se is None else [round(100 * (mean - Z95 * se), 2),
                                         round(100 * (mean + Z95 * se), 2)],
        "b_wins": sum(x > TIE for x in d),
        "a_wins": sum(x < -TIE for x in d),
        "ties": sum(abs(x) <= TIE for x in d),
    }


def time_ratio(a: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
    """Ratio of mean seconds per question, ``mean(b) / mean(a)``, over the same questions, with
    its paired (delta-method) SE ``sd(b - R a) / (sqrt(n) mean(a))``; ``None`` when ``a`` took no
    measurable time (under :data:`MIN_SECONDS` per question: the ratio would be noise)."""
    n = len(a)
    mean_a, mean_b = (sum(a) / n, sum(b) / n) if n else (0.0, 0.0)
    if mean_a < MIN_SECONDS:
        return None
    ratio = mean_b / mean_a
    resid = [y - ratio * x for x, y in zip(a, b, strict=True)]
    se = math.sqrt(sum(r * r for r in resid) / (n - 1) / n) / mean_a if n > 1 else None
    return {"a": round(mean_a, 4), "b": round(mean_b, 4), "ratio": round(ratio, 3),
            "se": None if se is None else round(se, 3)}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _recorded(key: str, *records: Mapping[str, Any] | None) -> int | None:
    """``key`` from the first record that has it as a number (``questions_total``, ``limit``)."""
    for record in records:
        value = (record or {}).get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _gold_key(row: Mapping[str, Any]) -> str | None:
    """The gold answers of a row in one canonical text (``None`` without gold)."""
    gold = row.get("gold")
    if isinstance(gold, list):
        gold = sorted(map(str, gold))
    choice = row.get("correct_choice_idx")
    if not gold and choice is None:
        return None
    return json.dumps([gold, choice], sort_keys=True, ensure_ascii=False)


def _check_same_questions(runs: Sequence[Run], shared: Sequence[str]) -> None:
    base = runs[0]
    for qid in shared:
        a = base.rows[qid]
        gold_a, text_a = _gold_key(a), a.get("question")
        for run in runs[1:]:
            b = run.rows[qid]
            gold_b, text_b = _gold_key(b), b.get("question")
            if gold_a is not None and gold_b is not None and gold_a != gold_b:
                what = "gold answers"
            elif isinstance(text_a, str) and isinstance(text_b, str) and text_a != text_b:
                what = "question text"
            else:
                continue
            raise InputError(f"question {qid} has different {what} in {base.label} {base.path} and"
                             f" {run.label} {run.path}: the runs are on different datasets")


def counts(row: Mapping[str, Any]) -> bool:
    """Whether a row's ``score`` enters the comparison: as in the summary
    (:func:`~pica.evaluation.summary.scored`), and a ScienceQA row with a score whatever its gold
    field looks like."""
    if row.get("task") == "scienceqa":
        return isinstance(row.get("score"), int | float) and bool(row.get("counted", True))
    return scored(row)


def _run_stats(run: Run, shared: Sequence[str]) -> dict[str, Any]:
    rows = [run.rows[q] for q in shared]
    accuracy, se = mean_se([r["score"] for r in rows if counts(r)])
    stages = {stage: _mean([r.get(f"seconds_{stage}") or 0.0 for r in rows]) for stage in STAGES
              if any(f"seconds_{stage}" in r for r in rows)}
    return {
        "run": run.name, "label": run.label, "accuracy": accuracy, "se": se,
        "n": sum(counts(r) for r in rows), "seconds": _mean([_seconds(r) for r in rows]),
        "seconds_per_stage": stages, "questions": len(run.rows), "left_out": len(run.rows) - len(shared),
        "status": run.status, "task": run.task, "questions_total": run.questions_total,
        "limit": run.limit,
    }


def _seconds(row: Mapping[str, Any]) -> float:
    value = row.get("seconds")
    return float(value) if isinstance(value, int | float) else 0.0


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _pair(a: Run, b: Run, shared: Sequence[str]) -> dict[str, Any]:
    """Run ``b`` against the baseline ``a``: overall, per group, speed, and the flipped questions."""
    both = [q for q in shared if counts(a.rows[q]) and counts(b.rows[q])]
    score_a = {q: float(a.rows[q]["score"]) for q in both}
    score_b = {q: float(b.rows[q]["score"]) for q in both}
    overall = paired_difference([score_a[q] for q in both], [score_b[q] for q in both])
    flipped = [{"question_id": q, "a_score": score_a[q], "b_score": score_b[q]}
               for q in both if abs(score_b[q] - score_a[q]) > TIE]
    return {"a": a.name, "b": b.name, "a_label": a.label, "b_label": b.label, **overall,
            "categories": _groups(a, b, shared, both, score_a, score_b),
            "speed": _speed(a, b, shared), "flipped": flipped}


def _groups(a: Run, b: Run, shared: Sequence[str], both: Sequence[str],
            score_a: Mapping[str, float], score_b: Mapping[str, float]) -> list[dict[str, Any]]:
    """Paired differences per group: A-OKVQA DA and MC (when both were scored), ScienceQA columns,
    categories, question types; each with ``kind``, ``key`` and ``label``."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    da = [(q, a.rows[q].get("da_score"), b.rows[q].get("da_score")) for q in shared
          if not a.rows[q].get("difficult")]
    mc = [(q, a.rows[q].get("mc_correct"), b.rows[q].get("mc_correct")) for q in shared]
    da = [(x, y) for _, x, y in da if isinstance(x, int | float) and isinstance(y, int | float)]
    mc = [(x, y) for _, x, y in mc if isinstance(x, int | float) and isinstance(y, int | float)]
    if da and mc:  # with only one of them, it is the overall score
        groups[("task", "DA")], groups[("task", "MC")] = da, mc
    for q in both:
        pair = (score_a[q], score_b[q])
        row = a.rows[q]
        columns = row.get("columns")
        for column in columns if isinstance(columns, list) else ():
            groups.setdefault(("column", str(column)), []).append(pair)
        if row.get("category") is not None:
            groups.setdefault(("category", str(row["category"])), []).append(pair)
        if row.get("question_type"):
            groups.setdefault(("question_type", str(row["question_type"])), []).append(pair)
    out = []
    for (kind, key), pairs in sorted(groups.items(), key=lambda item: _group_order(*item[0])):
        out.append({"kind": kind, "key": key, "label": _group_label(kind, key),
                    **paired_difference([x for x, _ in pairs], [y for _, y in pairs])})
    return out


def _group_order(kind: str, key: str) -> tuple:
    rank = {"task": 0, "column": 1, "category": 2, "question_type": 3}[kind]
    if kind == "column" and key in SCIENCEQA_COLUMNS:
        return rank, 0, SCIENCEQA_COLUMNS.index(key), ""
    if key.isdigit():
        return rank, 1, int(key), ""
    return rank, 2, 0, key.lower()


def _group_label(kind: str, key: str) -> str:
    if kind == "task":
        return _TASK_LABELS.get(key, key)
    if kind == "category":
        return category_label(key, category_name(key))
    if kind == "question_type":
        return f"type: {key}"
    return key


def _speed(a: Run, b: Run, shared: Sequence[str]) -> list[dict[str, Any]]:
    """Mean seconds per question of A and B per stage (and in total), with the ratio B/A and its
    SE; stages neither run spent measurable time in (:data:`MIN_SECONDS`) are left out."""
    out = []
    for stage in ("total", *STAGES):
        key = "seconds" if stage == "total" else f"seconds_{stage}"
        times_a = [_number(a.rows[q].get(key)) for q in shared]
        times_b = [_number(b.rows[q].get(key)) for q in shared]
        if max(sum(times_a), sum(times_b)) < MIN_SECONDS * max(1, len(shared)):
            continue
        ratio = time_ratio(times_a, times_b)
        out.append({"stage": stage, **(ratio or {"a": _mean(times_a), "b": _mean(times_b),
                                                  "ratio": None, "se": None})})
    return out


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _differences(runs: Sequence[Run]) -> dict[str, list[Any]]:
    """The settings whose values differ between the runs that record settings (one value per run;
    ``None`` where a run does not record it; runs without ``run.json`` are not compared)."""
    recorded = [r for r in runs if r.settings]
    keys = sorted({k for r in recorded for k in r.settings})
    return {k: [r.settings.get(k) for r in runs] for k in keys
            if len({json.dumps(r.settings.get(k), sort_keys=True, default=str) for r in recorded}) > 1}


def _notes(runs: Sequence[Run], shared: Sequence[str]) -> list[str]:
    notes = []
    for run in runs:
        left_out = len(run.rows) - len(shared)
        if left_out:
            notes.append(f"{run.label} {run.path}: {left_out} of {len(run.rows)} questions left out"
                         " (not answered by every run)")
        if run.status != "finished":
            why = ("pica eval is still running in it" if run.status == "in progress"
                   else "no summary.json for these answers: stopped before the end, or an older pica")
            notes.append(f"{run.label} {run.path}: {run.status} ({why}); its {len(run.rows)} questions"
                         " answered so far are used")
        if run.bad_lines:
            notes.append(f"{run.label} {run.path}: {len(run.bad_lines)} bad line(s) in {RESULTS_FILE}"
                         " skipped (pica eval moves them aside on resume)")
    for run in runs[1:]:
        if not any(counts(runs[0].rows[q]) and counts(run.rows[q]) for q in shared):
            notes.append(f"{run.label} against A: no shared question is scored in both (no gold answers),"
                         " so no difference is given; speed is still compared")
    if len({r.task == "mc" for r in runs}) > 1:  # an MC-only run's headline is MC, the others' DA
        tasks = ", ".join(f"{r.label} {r.task or 'da'}" for r in runs)
        notes.append(f"the runs answer different tasks ({tasks}): their headline scores measure"
                     " different things; compare the DA and MC rows")
    return notes
