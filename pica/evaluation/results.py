"""``results.jsonl``: one line per finished question, read back on resume.

Each line is written with a single ``write`` on an append-only descriptor and fsynced, so a killed
run loses at most the question in flight.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pica.tasks.aokvqa import task_fields
from pica.types import Answer, Question

RESULTS_FILE = "results.jsonl"
# Stages a question's time is broken down into: captioning, example retrieval, the LLM's direct
# answer (greedy completions, and the chooser's candidate scoring), multiple-choice scoring.
STAGES = ("caption", "retrieval", "llm", "mc")


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
    fields are those of :func:`pica.tasks.aokvqa.task_fields`. ``seconds`` is the question's
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
        "prompt_tokens": a.prompt_tokens, **task_fields(q, a, task),
    }
