"""Resumable batch evaluation with the official VQA accuracy.

A run folder holds ``run.json`` (the configuration that shapes predictions) and ``results.jsonl``,
which grows by one line per finished question: each line is appended with a checked write (the
lines written within 50 ms share one fsync, group commit), and a write that fails (full disk) is
rolled back to the last complete line and stops the run with :class:`~pica.errors.StorageError`. A
killed run therefore loses at most the questions in flight (a power cut: also the lines of the
last 50 ms, not yet fsynced); on resume bad lines (a torn last line, corruption) are reported and
moved aside into ``results.jsonl.bad-<time>`` (see :mod:`pica.evaluation.results`), finished
questions are skipped, none is ever written twice.
When every question is done the standard outputs are written (atomically): ``predictions.json``
(VQA results format), ``results.parquet``, ``summary.json`` and ``report.html``.

A folder has one writer: :func:`evaluate` and :func:`write_outputs` hold its
:class:`~pica.evaluation.runlock.RunLock` (``.lock``) while they write, so a second ``pica eval`` or
``pica eval report`` on a folder in use fails at once with a message naming the holder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pica import __version__
from pica.config import Settings
from pica.datasets.identity import describe, identity_key
from pica.errors import ContextOverflowError, InputError, RunConfigError
from pica.evaluation.outputs import OUTPUTS, RUN_FILE, _write_outputs
from pica.evaluation.results import RESULTS_FILE, read_results, result_row
from pica.evaluation.runlock import RunLock
from pica.evaluation.summary import scored
from pica.pipeline import Pipeline
from pica.tasks.aokvqa import split_name
from pica.tasks.base import resolve_task
from pica.types import Answer, Question
from pica.util.fileio import GroupAppender, atomic_write_text, storage_error
from pica.util.progress import progress_bar


def run_config(settings: Settings, dataset: dict[str, Any]) -> dict[str, Any]:
    """What a run folder is bound to: prediction-shaping settings plus the dataset identity."""
    return {"settings": settings.fingerprint(), "dataset": dataset}


def make_run_folder(out: Path) -> None:
    """Create the run folder ``out`` (and its parents) unless it exists.

    Raises:
        InputError: ``out`` is an existing file, or the folder cannot be created.
        StorageError: no space (or an I/O error) to create it.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"run folder {out} is a file; pass a folder path (e.g. runs/dev)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM):
            raise storage_error(out, e) from e  # full, read-only or failing storage: exit 74
        raise InputError(f"cannot create run folder {out}: {e.strerror or e}") from e


def open_run(out: Path, config: dict[str, Any], force_new: bool,
             choice: dict[str, Any] | None = None, facts: dict[str, Any] | None = None) -> None:
    """Create the run folder or check that an existing one was made with ``config``.

    ``run.json`` is written once, when anything in it changes: a new run, a folder of an older
    pica gaining its digests, the answer choice in use (``choice``: its file and measured gain,
    for ``summary.json`` and the report; not part of the config a resume compares, which holds the
    resolved method and the chooser's sha256) or the run's ``facts`` (``questions_total``,
    ``limit``, ``examples``: what the report headline says; not compared either). A resumed
    folder keeps when and by which pica it was made. A folder is claimed only once it holds a
    result: one whose run failed before its first answer takes any configuration.

    Call it with the folder's :class:`~pica.evaluation.runlock.RunLock` held: ``force_new`` moves files.

    Raises:
        InputError: ``out`` is a file or cannot be created.
        RunConfigError: the folder holds a run with another configuration or on another dataset
            (compared by content, see :func:`_mismatch`), unless ``force_new``, which moves the
            old results aside as ``results.<time>.jsonl.bak``.
    """
    make_run_folder(out)
    run_file = out / RUN_FILE
    facts = facts or {}
    claimed = _holds_results(out)
    if run_file.is_file():
        try:
            record = json.loads(run_file.read_text(encoding="utf-8"))
            old = record["config"]
            if not isinstance(old, dict):
                raise TypeError("config is not an object")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            if claimed:
                raise RunConfigError(f"{run_file} is corrupt; pass --force-new to start over") from e
            old = None  # no result depends on it: written afresh below
        problem = _mismatch(out, old, config) if old is not None else "unreadable"
        if problem is None:
            # A folder of an older pica: record the digests now, keeping when it was made.
            upgrade = "content" not in (old.get("dataset") or {}) and "content" in config.get("dataset", {})
            changed = any(record.get(key) != value for key, value in facts.items())
            if upgrade or changed or (choice is not None and record.get("choice") != choice):
                record = {**record, **facts, **({"config": config} if upgrade else {})}
                _write_run_file(run_file, record, choice)
            return
        if claimed and not force_new:
            raise RunConfigError(f"{problem}; use another run folder or pass --force-new to start"
                                 " a new run there")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if claimed:
            os.replace(out / RESULTS_FILE, out / f"results.{stamp}.jsonl.bak")
        for name in OUTPUTS:
            (out / name).unlink(missing_ok=True)
        for old_file in [*out.glob("predictions_*.json"), *out.glob("scienceqa_*.json")]:
            old_file.unlink()
    _write_run_file(run_file, {"config": config, **facts, "pica_version": __version__,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, choice)


def _holds_results(out: Path) -> bool:
    """Whether the run folder holds any result (a non-empty ``results.jsonl``)."""
    try:
        return (out / RESULTS_FILE).stat().st_size > 0
    except FileNotFoundError:
        return False


def _write_run_file(run_file: Path, record: dict[str, Any], choice: dict[str, Any] | None) -> None:
    """Write ``run.json``: ``record`` with the answer ``choice`` in use (when given)."""
    atomic_write_text(run_file, json.dumps({**record, **({"choice": choice} if choice is not None else {})},
                                           indent=2) + "\n")


def _mismatch(out: Path, old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why a run folder made with ``old`` cannot take a run with ``new`` (``None``: it can).

    Datasets are compared by content (:func:`pica.datasets.identity_key`); a folder of an older
    pica without digests compares by path text, as it did. Path settings (captions, index, model
    and template files) match when they name the same file or folder, however spelled.
    """
    old = _spelled_as(old, new)
    old_data, new_data = old.get("dataset") or {}, new.get("dataset") or {}
    if "content" in old_data:
        same_data = identity_key(old_data) == identity_key(new_data)
    else:
        same_data = old_data == {k: v for k, v in new_data.items() if k not in ("content", "captions")}
    rest_old = {k: v for k, v in old.items() if k != "dataset"}
    rest_new = {k: v for k, v in new.items() if k != "dataset"}
    problems = []
    if not same_data:
        problems.append(f"run folder {out} holds results for another dataset: {describe(old_data)}"
                        f" there, {describe(new_data)} now")
    if rest_old != rest_new:
        where = "" if problems else f"run folder {out} "
        problems.append(f"{where}was made with a different configuration ({_diff(rest_old, rest_new)})")
    return "; and ".join(problems) or None


# Settings that may name a file or folder (each can also be a name or a hub id).
PATH_SETTINGS = ("captioner", "index", "embedder", "llm", "template", "mmproj", "candidates_file",
                 "examples_file")


def _spelled_as(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with each path setting that names the same file or folder as ``new``'s (a relative
    path then, an absolute one now) spelled as in ``new``; a captions file that is the dataset's
    captions matches by its recorded digest (so from another working directory too)."""
    settings, now = dict(old.get("settings") or {}), new.get("settings") or {}
    for key in PATH_SETTINGS:
        a, b = settings.get(key), now.get(key)
        if isinstance(a, str) and isinstance(b, str) and a != b and (
                _same_file(a, b) or (key == "captioner" and _same_captions(old, new, a, b))):
            settings[key] = b
    return {**old, "settings": settings} if "settings" in old else old


def _same_captions(old: dict[str, Any], new: dict[str, Any], a: str, b: str) -> bool:
    """Whether captioners ``a`` (then) and ``b`` (now) are each run's dataset captions file with
    the same content digest."""
    then, now = old.get("dataset") or {}, new.get("dataset") or {}
    digest = (then.get("content") or {}).get("captions")
    return (digest is not None and then.get("captions") == a and now.get("captions") == b
            and (now.get("content") or {}).get("captions") == digest)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(os.path.expanduser(a), os.path.expanduser(b))
    except (OSError, ValueError):  # missing, unreadable, not a path (NUL)
        return False


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


def evaluate(
    settings: Settings,
    questions: Sequence[Question],
    out: str | Path,
    *,
    dataset: dict[str, Any],
    force_new: bool = False,
    progress: bool = True,
    pipeline: Pipeline | None = None,
    split: str | None = None,
    questions_total: int | None = None,
    limit: int | None = None,
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
        pipeline: A ready :class:`~pica.pipeline.Pipeline` built from ``settings`` (else one is
            built); it is used as it is: the run's task is passed to it per call.
        split: Split in the names of the official A-OKVQA prediction files (default: from the
            dataset file name, see :func:`pica.tasks.aokvqa.split_name`).
        questions_total: Questions in the dataset (split) before ``limit``, recorded as
            ``questions_total`` in run.json and summary.json (default: the ``total`` of a
            :class:`~pica.datasets.QuestionList`, else ``len(questions)``).
        limit: The ``--limit`` the questions were cut to (``None``: all), recorded as ``limit``.

    Returns:
        The summary (also written to ``summary.json``).

    Raises:
        RunInUseError: another process is writing to ``out`` (its lock is held for the whole run).
        ValueError: ``pipeline`` was built from other settings.
        InputError / RunConfigError / BackendError as the stages do.
    """
    if not questions:
        raise InputError("no questions to evaluate: the dataset is empty")
    task = resolve_task(settings.task, questions)
    if pipeline is not None and (dataclasses.replace(pipeline.settings, task=task)
                                 != dataclasses.replace(settings, task=task)):
        raise ValueError("evaluate: the pipeline was built from other settings than the run's")
    settings = dataclasses.replace(settings, task=task)
    if any(q.scoring == "aokvqa" for q in questions):
        dataset = {**dataset, "split_name": split or split_name(dataset)}
    out = Path(out)
    make_run_folder(out)
    with RunLock(out):
        pipeline = pipeline or Pipeline(settings)
        config = run_config(settings, dataset)
        # The resolved answer choice: --choose auto depends on the choosers the index holds.
        config["choice"] = {"method": pipeline.choice["method"], "chooser_sha256": pipeline.choice["sha256"]}
        if questions_total is None:
            questions_total = getattr(questions, "total", len(questions))
        facts = {"questions_total": questions_total, "limit": limit, "examples": examples_info(pipeline)}
        open_run(out, config, force_new, choice=pipeline.choice_info, facts=facts)
        _run_questions(pipeline, task, questions, out, progress)
        return _write_outputs(out, questions_order=[q.id for q in questions])


def examples_info(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline's example pool (:func:`pica.retrieval.store.describe_examples`)."""
    from pica.retrieval.store import describe_examples

    index = None if pipeline.settings.shots == 0 else pipeline.index
    return describe_examples(pipeline.settings.index, index.path if index is not None else None,
                             len(index) if index is not None else None)


def _run_questions(pipeline: Pipeline, task: str, questions: Sequence[Question], out: Path,
                   progress: bool) -> None:
    """Answer the questions ``results.jsonl`` lacks, appending one checked line per answer (the
    lines written within 50 ms share one fsync: :class:`~pica.util.fileio.GroupAppender`).

    Raises:
        StorageError: a line could not be written (full disk...); the file ends with the last
            complete line, so the same command resumes once space is back.
    """
    results_path = out / RESULTS_FILE
    done = {row["question_id"]: row for row in read_results(results_path, repair=True)}
    todo = [q for q in questions if q.id not in done]
    pipeline.check(todo)
    finished_rows = [done[q.id] for q in questions if q.id in done]
    total_score = sum(r["score"] for r in finished_rows if scored(r))
    n_scored = sum(1 for r in finished_rows if scored(r))
    finished = len(questions) - len(todo)
    results = GroupAppender(results_path)
    try:
        with progress_bar(total=len(questions), initial=finished, desc="eval", unit="q",
                          enabled=progress) as bar:
            for row in _rows(pipeline, todo, task):
                results.append((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
                if scored(row):
                    total_score += row["score"]
                    n_scored += 1
                finished += 1
                if n_scored:
                    bar.set_postfix(acc=f"{100 * total_score / n_scored:.2f}")
                bar.update(1)
    finally:
        results.close()
        if finished == len(questions) - len(todo):  # nothing answered: leave no empty file behind
            with contextlib.suppress(OSError):
                if results_path.stat().st_size == 0:
                    results_path.unlink()


def _rows(pipeline: Pipeline, todo: Sequence[Question], task: str):
    """The result row of each question, in order. A question whose prompt cannot fit
    the LLM context gets an error row (its ``error`` said on stderr with its id; scored as a
    wrong answer, counted in the summary's ``errors``) and the run goes on after it: answers come in
    input order, so the failed question is the next one not yet yielded."""
    remaining = list(todo)
    while remaining:
        done = 0
        try:
            for q, answer in zip(remaining, pipeline.answer_stream(remaining, task=task)):
                done += 1
                yield result_row(q, answer, task)
            return
        except ContextOverflowError as e:
            q = remaining[done]
            print(f"warning: question {q.id}: {e}; recorded as an error row", file=sys.stderr)
            empty = Answer(question_id=q.id, question=q.question, answer="", raw="",
                           caption=q.caption or "", logprob=None, prompts=[], example_ids=[])
            yield {**result_row(q, empty, task), "error": str(e)}
            remaining = remaining[done + 1:]
