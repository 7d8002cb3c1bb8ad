"""``results.jsonl``: one line per finished question, read back on resume.

Each line is appended with :class:`~pica.util.fileio.GroupAppender` (every write checked, rolled
back to the last complete line when it fails; the lines of 50 ms share one fsync), so a killed run
loses at most the questions in flight (a power cut: also the last 50 ms of lines) and a full disk
never leaves half a row.

On resume, :func:`read_results` with ``repair=True`` keeps every good row and moves each bad line
(not JSON, not an object, no ``question_id``, a ``score`` that is neither a number nor null, or a
torn last line) into the sidecar
``results.jsonl.bad-<time>``, reporting each as ``file:line: reason`` on stderr. Nothing is deleted.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pica.tasks import scienceqa_results
from pica.tasks.aokvqa import task_fields
from pica.types import Answer, Question
from pica.util.fileio import atomic_write, storage_error

RESULTS_FILE = "results.jsonl"
# Stages a question's time is broken down into: captioning, example retrieval, the LLM's direct
# answer (greedy completions, and the chooser's candidate scoring), multiple-choice scoring.
STAGES = ("caption", "retrieval", "llm", "mc")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def check_row(row: Any) -> str | None:
    """Why ``row`` (a parsed line) is not a results row, or ``None`` when it is one."""
    if not isinstance(row, dict):
        return f"not a JSON object ({type(row).__name__})"
    if not isinstance(row.get("question_id"), str) or not row["question_id"]:
        return "no question_id"
    if "score" not in row:
        return "no score"
    score = row["score"]  # null: a question without gold answers (nothing to score)
    if isinstance(score, bool) or not (score is None or isinstance(score, int | float)):
        return "score is not a number or null"
    return None


def read_results(path: Path, repair: bool = False,
                 warn: Callable[[str], None] | None = _warn) -> list[dict[str, Any]]:
    """Rows of a results file, first occurrence of each question id only; bad lines are skipped.

    Args:
        path: The ``results.jsonl`` file (missing = no rows).
        repair: Move the bad lines (and a torn last line) into ``<name>.bad-<time>`` and rewrite
            the file with the good lines only, before appending resumes.
        warn: Called with ``file:line: reason`` for each bad line (default: stderr); ``None``
            for silence.

    Returns:
        The good rows in file order.

    Raises:
        StorageError: the repair could not be written (the results file is left as it was).
    """
    if not path.is_file():
        return []
    data = path.read_bytes()
    rows, seen, good, bad = [], set(), [], []
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        if not line.endswith(b"\n"):
            bad.append((number, line, "torn last line (the run stopped mid-write); redone"))
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            row, reason = None, "not valid JSON"
        else:
            reason = check_row(row)
        if reason is not None:
            if line.strip():
                bad.append((number, line, reason))
            continue
        good.append(line)
        if row["question_id"] not in seen:
            seen.add(row["question_id"])
            rows.append(row)
    if not bad:
        return rows
    sidecar = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}") if repair else None
    if warn is not None:
        where = f"; moved to {sidecar.name}" if sidecar else "; skipped"
        for number, _, reason in bad:
            warn(f"{path}:{number}: {reason}{where}")
    if repair:
        _move_aside(path, sidecar, b"".join(good), b"".join(_terminated(line) for _, line, _ in bad))
    return rows


def _terminated(line: bytes) -> bytes:
    return line if line.endswith(b"\n") else line + b"\n"


def _move_aside(path: Path, sidecar: Path, good: bytes, bad: bytes) -> None:
    """Append ``bad`` to ``sidecar`` and atomically replace ``path`` with ``good``."""
    try:
        with open(sidecar, "ab") as f:
            f.write(bad)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise storage_error(sidecar, e) from e
    atomic_write(path, lambda tmp: tmp.write_bytes(good))


def result_row(q: Question, a: Answer, task: str = "da") -> dict[str, Any]:
    """One results line: everything needed to score, audit and report the answer.

    ``score`` is the official VQA accuracy (or soft label) for OK-VQA, the official A-OKVQA
    direct-answer score for A-OKVQA, and the multiple-choice outcome for ``task="mc"``; the task
    fields are those of :func:`pica.tasks.aokvqa.task_fields` (of
    :func:`pica.tasks.scienceqa_results.row_fields` for ScienceQA). ``seconds`` is the question's
    total, ``seconds_caption`` / ``_retrieval`` / ``_llm`` / ``_mc`` its :data:`STAGES`.
    """
    return {
        "question_id": q.id, "question": q.question, "image_id": q.image_id,
        "image_path": str(q.image_path) if q.image_path else None, "caption": a.caption,
        "prompt": a.prompts[0] if a.prompts else "", "prompts": a.prompts, "raw": a.raw,
        "logprob": a.logprob, "answer": a.answer,
        "gold": q.answers or q.label, "category": q.category, "question_type": q.question_type,
        "example_ids": a.example_ids, "candidates": a.candidates,
        "seconds": a.seconds.get("total", 0.0),
        **{f"seconds_{stage}": a.seconds.get(stage, 0.0) for stage in STAGES},
        "prompt_tokens": a.prompt_tokens,
        **(scienceqa_results.row_fields(q, a) if task == "scienceqa" else task_fields(q, a, task)),
    }
