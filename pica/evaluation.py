"""Resumable batch evaluation with the official VQA accuracy.

A run folder holds ``run.json`` (the configuration that shapes predictions) and ``results.jsonl``,
which grows by one line per finished question: each line is written with a single ``write`` on an
append-only descriptor and fsynced. A killed run therefore loses at most the question in flight; a
torn last line is cut off on resume, finished questions are skipped, none is ever written twice.
When every question is done the standard outputs are written (atomically): ``predictions.json``
(VQA results format), ``results.parquet``, ``summary.json`` and ``report.html``.

A folder has one writer: :func:`evaluate` and :func:`write_outputs` hold its
:class:`~pica.runlock.RunLock` (``.lock``) while they write, so a second ``pica eval`` or
``pica eval report`` on a folder in use fails at once with a message naming the holder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pica import __version__
from pica.aokvqa_eval import split_name, task_fields, task_summary, write_official_predictions
from pica.config import Settings
from pica.errors import InputError, RunConfigError
from pica.fileio import atomic_write_text
from pica.progress import progress_bar
from pica.runlock import RunLock
from pica.types import Answer, Question

# OK-VQA's knowledge categories: the LXMERT files' ``class`` numbers and the official
# annotations' ``question_type`` words name the same eleven categories.
OKVQA_CATEGORIES = {
    "1": "Vehicles and Transportation", "2": "Brands, Companies and Products",
    "3": "Objects, Material and Clothing", "4": "Sports and Recreation", "5": "Cooking and Food",
    "6": "Geography, History, Language and Culture", "7": "People and Everyday Life",
    "8": "Plants and Animals", "9": "Science and Technology", "10": "Weather and Climate",
    "0": "Other",
}
_CATEGORY_WORDS = dict(zip(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                            "ten"], map(str, range(11))), other="0")


def category_name(code: str) -> str | None:
    """The OK-VQA name of a category code (``"8"`` or ``"eight"``), or None for other codes."""
    key = str(code).strip().lower()
    return OKVQA_CATEGORIES.get(_CATEGORY_WORDS.get(key, key))


def category_label(code: str, name: str | None) -> str:
    """A category for display: ``"10 Weather and Climate"``, or just the code when ``name`` is empty.

    Args:
        code: The category code as it appears in the data (``"10"``).
        name: Its name, e.g. from :func:`category_name` or a summary's ``per_category`` entry.
    """
    return f"{code} {name}" if name else str(code)


RUN_FILE = "run.json"
RESULTS_FILE = "results.jsonl"
OUTPUTS = ("predictions.json", "results.parquet", "summary.json", "report.html")


def run_config(settings: Settings, dataset: dict[str, Any]) -> dict[str, Any]:
    """What a run folder is bound to: prediction-shaping settings plus the dataset identity."""
    return {"settings": settings.fingerprint(), "dataset": dataset}


def make_run_folder(out: Path) -> None:
    """Create the run folder ``out`` (and its parents) unless it exists.

    Raises:
        InputError: ``out`` is an existing file, or the folder cannot be created.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a run folder; pass a folder path (e.g. --out runs/dev)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create run folder {out}: {e.strerror or e}") from e


def open_run(out: Path, config: dict[str, Any], force_new: bool) -> None:
    """Create the run folder or check that an existing one was made with ``config``.

    Call it with the folder's :class:`~pica.runlock.RunLock` held: ``force_new`` moves files.

    Raises:
        InputError: ``out`` is a file or cannot be created.
        RunConfigError: the folder holds a run with another configuration (unless ``force_new``,
            which moves the old results aside as ``results.<time>.jsonl.bak``).
    """
    make_run_folder(out)
    run_file = out / RUN_FILE
    if run_file.is_file():
        try:
            old = json.loads(run_file.read_text(encoding="utf-8"))["config"]
        except (json.JSONDecodeError, KeyError) as e:
            raise RunConfigError(f"{run_file} is corrupt; pass --force-new to start over") from e
        if old != config:
            if not force_new:
                diff = _diff(old, config)
                raise RunConfigError(
                    f"run folder {out} was made with a different configuration ({diff});"
                    " use another --out or pass --force-new to start a new run there"
                )
            stamp = time.strftime("%Y%m%d-%H%M%S")
            if (out / RESULTS_FILE).exists():
                os.replace(out / RESULTS_FILE, out / f"results.{stamp}.jsonl.bak")
            for name in OUTPUTS:
                (out / name).unlink(missing_ok=True)
            for old_file in out.glob("predictions_*-*.json"):
                old_file.unlink()
        else:
            return
    atomic_write_text(run_file, json.dumps({"config": config, "pica_version": __version__,
                                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                                           indent=2) + "\n")


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    parts = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _diff(a, b, f"{prefix}{key}.")
            if inner:
                parts.append(inner)
        elif a != b:
            parts.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return "; ".join(parts[:4]) + ("; ..." if len(parts) > 4 else "")


def read_results(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of a results file, first occurrence of each question id only.

    A torn final line (no newline: the process died mid-write) is ignored, and cut off the file
    when ``repair`` is set, before appending resumes.
    """
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    rows, seen = [], set()
    good = 0
    for line in data[:end].splitlines(keepends=True):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # corruption: keep what came before, drop the rest
        good += len(line)
        if row["question_id"] not in seen:
            seen.add(row["question_id"])
            rows.append(row)
    if repair and good < len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
    return rows


def result_row(q: Question, a: Answer, task: str = "da") -> dict[str, Any]:
    """One results line: everything needed to score, audit and report the answer.

    ``score`` is the official VQA accuracy (or soft label) for OK-VQA, the official A-OKVQA
    direct-answer score for A-OKVQA, and the multiple-choice outcome for ``task="mc"``; the task
    fields are those of :func:`pica.aokvqa_eval.task_fields`.
    """
    return {
        "question_id": q.id, "question": q.question, "image_id": q.image_id,
        "image_path": str(q.image_path) if q.image_path else None, "caption": a.caption,
        "prompt": a.prompts[0] if a.prompts else "", "prompts": a.prompts, "raw": a.raw,
        "logprob": a.logprob, "answer": a.answer,
        "gold": q.answers or q.label, "category": q.category, "question_type": q.question_type,
        "example_ids": a.example_ids, "candidates": a.candidates,
        "seconds": a.seconds.get("total", 0.0), "seconds_llm": a.seconds.get("llm", 0.0),
        "prompt_tokens": a.prompt_tokens, **task_fields(q, a, task),
    }


def evaluate(
    settings: Settings,
    questions: Sequence[Question],
    out: str | Path,
    *,
    dataset: dict[str, Any],
    force_new: bool = False,
    progress: bool = True,
    pipeline=None,
    split: str | None = None,
) -> dict[str, Any]:
    """Evaluate (or resume evaluating) ``questions`` into the run folder ``out``.

    Args:
        settings: The answering settings.
        questions: Questions with gold answers or labels, in dataset order.
        out: Run folder.
        dataset: Dataset identity for the run config (paths, split), so runs on other data
            are refused.
        force_new: Start over in a folder made with another configuration.
        progress: Show a progress bar with ETA and running accuracy.
        pipeline: A ready :class:`~pica.pipeline.Pipeline` (else built from ``settings``); its
            task is set to the run's.
        split: Split in the names of the official A-OKVQA prediction files (default: from the
            dataset file name, see :func:`pica.aokvqa_eval.split_name`).

    Returns:
        The summary (also written to ``summary.json``).

    Raises:
        RunInUseError: another process is writing to ``out`` (its lock is held for the whole run).
        InputError / RunConfigError / BackendError as the stages do.
    """
    from pica.multiple_choice import resolve_task

    if not questions:
        raise InputError("no questions to evaluate: the dataset is empty")
    settings = dataclasses.replace(settings, task=resolve_task(settings.task, questions))
    if pipeline is not None and pipeline.settings.task != settings.task:
        pipeline.settings = dataclasses.replace(pipeline.settings, task=settings.task)
    if any(q.scoring == "aokvqa" for q in questions):
        dataset = {**dataset, "split_name": split or split_name(dataset)}
    from pica.pipeline import Pipeline

    out = Path(out)
    make_run_folder(out)
    with RunLock(out):
        pipeline = pipeline or Pipeline(settings)
        config = run_config(settings, dataset)
        # The resolved answer choice: --choose auto depends on the choosers the index holds.
        config["choice"] = {"method": pipeline.choice["method"], "chooser_sha256": pipeline.choice["sha256"]}
        open_run(out, config, force_new)
        _run_questions(settings, questions, out, progress, pipeline)
        return _write_outputs(out, questions_order=[q.id for q in questions])


def _run_questions(settings: Settings, questions: Sequence[Question], out: Path, progress: bool,
                   pipeline) -> None:
    """Answer the questions ``results.jsonl`` lacks, appending one fsynced line per answer."""
    from pica.pipeline import Pipeline

    results_path = out / RESULTS_FILE
    done = {row["question_id"]: row for row in read_results(results_path, repair=True)}
    todo = [q for q in questions if q.id not in done]
    pipeline = pipeline or Pipeline(settings)
    pipeline.check(todo)
    total_score = sum(done[q.id]["score"] for q in questions if q.id in done)
    task = settings.task
    finished = len(questions) - len(todo)
    fd = os.open(results_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        with progress_bar(total=len(questions), initial=finished, desc="eval", unit="q",
                          enabled=progress) as bar:
            for q, answer in zip(todo, pipeline.answer_stream(todo)):
                row = result_row(q, answer, task)
                os.write(fd, (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
                os.fsync(fd)
                total_score += row["score"]
                finished += 1
                bar.set_postfix(acc=f"{100 * total_score / finished:.1f}")
                bar.update(1)
    finally:
        os.close(fd)


def summarize(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """Accuracy overall, per category and per question type; speed; the configuration.

    The accuracies average the rows' ``score`` over the rows that count (A-OKVQA's difficult
    questions are left out of the direct-answer score); A-OKVQA runs add ``task``, ``da`` and
    ``mc`` (see :func:`pica.aokvqa_eval.task_summary`).
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


def write_outputs(out: str | Path, questions_order: Sequence[str] | None = None) -> dict[str, Any]:
    """Write predictions.json, results.parquet, summary.json and report.html from results.jsonl
    (and, for A-OKVQA runs, ``predictions_{split}-da.json`` / ``predictions_{split}-mc.json``).

    Takes the folder's lock: a running ``pica eval`` writes these outputs itself when it ends, and
    two writers would race on the files, so a folder in use is refused rather than waited for.

    Raises:
        InputError: the folder holds no run or no results.
        RunInUseError: a ``pica eval`` is running in the folder.
    """
    out = Path(out)
    if not (out / RUN_FILE).is_file():
        raise InputError(f"{out} is not a pica run folder ({RUN_FILE} missing)")
    with RunLock(out, hint="wait for it to finish: it writes the report itself when done"):
        return _write_outputs(out, questions_order)


def _write_outputs(out: Path, questions_order: Sequence[str] | None) -> dict[str, Any]:
    """:func:`write_outputs` for a caller that holds the folder's lock."""
    import pandas as pd

    from pica.report import write_report

    rows = read_results(out / RESULTS_FILE)
    if not rows:
        raise InputError(f"run folder {out} has no results yet")
    if questions_order is not None:
        position = {qid: i for i, qid in enumerate(questions_order)}
        rows = sorted((r for r in rows if r["question_id"] in position),
                      key=lambda r: position[r["question_id"]])
    config = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))["config"]
    summary = summarize(rows, config)
    predictions = [{"question_id": _vqa_id(r["question_id"]), "answer": r["answer"]} for r in rows]
    atomic_write_text(out / "predictions.json", json.dumps(predictions) + "\n")
    write_official_predictions(out, rows, config.get("dataset") or {})
    frame = pd.DataFrame(rows)
    for column in ("gold", "example_ids", "prompts", "candidates", "choices", "mc"):
        if column in frame:
            frame[column] = [json.dumps(v, ensure_ascii=False) for v in frame[column]]
    tmp = out / ".results.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, out / "results.parquet")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_report(frame, summary, out / "report.html")
    return summary


def _vqa_id(qid: str) -> int | str:
    return int(qid) if qid.isdigit() else qid
