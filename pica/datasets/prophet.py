"""Prophet's stage-1 files (Shao et al., 2023, github.com/MILVLG/prophet): answer candidates and
answer-aware examples, keyed by question id.

- candidates: ``{question_id: [{"answer": str, "confidence": float}, ...]}`` (Prophet's
  ``assets/candidates_*.json``, best first), or pica's JSONL form, one line per question:
  ``{"question_id": ..., "candidates": [{"answer": ..., "confidence": ...}, ...]}``.
- answer-aware examples: ``{question_id: [example question_id, ...]}`` (Prophet's
  ``assets/answer_aware_examples_*.json``, most useful first).

Question ids are compared as strings (``3397615`` and ``"3397615"`` are one id). Prophet's third
file, ``{image_id: caption}``, is read by :func:`pica.datasets.captions.read_captions`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pica.datasets.rows import parse_json, read_text
from pica.errors import InputError

Candidates = list[tuple[str, float]]


def read_candidates(path: str | Path) -> dict[str, Candidates]:
    """Read answer candidates per question id, in file order (best first).

    Args:
        path: Prophet's JSON ``{question_id: [{"answer", "confidence"}, ...]}`` or pica's JSONL
            (``{"question_id", "candidates": [...]}`` per line; ``.jsonl`` or sniffed).

    Returns:
        ``{question_id: [(answer, confidence), ...]}``.

    Raises:
        InputError: missing, empty or malformed file (naming the question or line).
    """
    path, text = read_text(path, "candidates")
    rows: list[tuple[Any, Any, str]] = []
    if path.suffix.lower() == ".jsonl" or _is_jsonl(text):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: not valid JSON ({e.msg}, column {e.colno})") from e
            if not isinstance(row, Mapping) or "question_id" not in row or "candidates" not in row:
                raise InputError(f"{where}: expected an object with 'question_id' and 'candidates'")
            rows.append((row["question_id"], row["candidates"], where))
    else:
        data = parse_json(text, path)
        if not isinstance(data, Mapping):
            raise InputError(f"{path}: expected Prophet's candidates JSON"
                             " {question_id: [{\"answer\": ..., \"confidence\": ...}, ...]}")
        rows = [(qid, value, f"{path} question {qid}") for qid, value in data.items()]
    out: dict[str, Candidates] = {}
    for qid, value, where in rows:
        out[str(qid)] = _candidate_list(value, where)
    if not out:
        raise InputError(f"no candidates found in {path}")
    return out


def _is_jsonl(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0].strip()
    if not first.startswith("{") or not first.endswith("}"):
        return False
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, Mapping) and "question_id" in row and "candidates" in row


def _candidate_list(value: Any, where: str) -> Candidates:
    if not isinstance(value, list):
        raise InputError(f"{where}: candidates must be a list of {{\"answer\", \"confidence\"}} objects")
    out: Candidates = []
    for cand in value:
        if not isinstance(cand, Mapping) or "answer" not in cand or "confidence" not in cand:
            raise InputError(f"{where}: every candidate needs 'answer' and 'confidence'")
        try:
            out.append((str(cand["answer"]), float(cand["confidence"])))
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: confidence {cand['confidence']!r} is not a number") from e
    return out


def read_examples(path: str | Path) -> dict[str, list[str]]:
    """Read answer-aware examples: ``{question_id: [example question_id, ...]}``.

    Raises:
        InputError: missing, empty or malformed file.
    """
    path, text = read_text(path, "examples")
    data = parse_json(text, path)
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected Prophet's examples JSON {{question_id: [example ids]}}")
    out: dict[str, list[str]] = {}
    for qid, ids in data.items():
        if not isinstance(ids, list) or any(isinstance(i, (list, Mapping)) or i is None for i in ids):
            raise InputError(f"{path} question {qid}: expected a list of example question ids")
        out[str(qid)] = [str(i) for i in ids]
    if not out:
        raise InputError(f"no examples found in {path}")
    return out


def write_candidates(path: str | Path, candidates: Mapping[str, Candidates]) -> None:
    """Write candidates in Prophet's JSON format (atomically)."""
    from pica.util.fileio import atomic_write_text

    data = {str(q): [{"answer": a, "confidence": round(float(c), 6)} for a, c in cands]
            for q, cands in candidates.items()}
    atomic_write_text(Path(path), json.dumps(data))


class StageOne:
    """A run's Prophet files, read on first use: candidates and answer-aware examples by question id.

    Args:
        candidates_file: Candidates file (:func:`read_candidates`) or ``None``.
        examples_file: Answer-aware examples file (:func:`read_examples`) or ``None``.
    """

    def __init__(self, candidates_file: str | Path | None, examples_file: str | Path | None) -> None:
        self.candidates_file = candidates_file
        self.examples_file = examples_file
        self._candidates: dict[str, Candidates] | None = None
        self._examples: dict[str, list[str]] | None = None

    @property
    def candidates(self) -> dict[str, Candidates] | None:
        """``{question_id: [(answer, confidence), ...]}``, or ``None`` without a file."""
        if self._candidates is None and self.candidates_file:
            self._candidates = read_candidates(self.candidates_file)
        return self._candidates

    def candidates_of(self, question_id: str) -> Candidates:
        """A question's candidates, best first; ``[]`` for an id the file lacks (an example then
        shows an empty ``Candidates:`` list, the same in every mode)."""
        return (self.candidates or {}).get(str(question_id), [])

    def query_candidates(self, question_id: str) -> Candidates:
        """A query's candidates.

        Raises:
            InputError: the file has no entry for the question.
        """
        found = (self.candidates or {}).get(str(question_id))
        if found is None:
            raise InputError(f"question {question_id} has no entry in candidates file {self.candidates_file}")
        return found

    def examples_of(self, question_id: str) -> list[str]:
        """A question's answer-aware example ids, in file order.

        Raises:
            InputError: the file has no entry for the question.
        """
        if self._examples is None:
            self._examples = read_examples(self.examples_file)
        found = self._examples.get(str(question_id))
        if found is None:
            raise InputError(f"question {question_id} has no entry in examples file {self.examples_file}")
        return found
