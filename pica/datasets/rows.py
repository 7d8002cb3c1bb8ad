"""Building blocks shared by the dataset and caption readers.

- :func:`normalize_image_id`: the one form in which image ids are compared (``"297147"``).
- :class:`QuestionList`: what every question reader returns.
- :func:`read_text` / :func:`read_json`: read a file, or fail with an error naming the file and
  the position of the problem.
- :func:`question_from_row` / :func:`check_questions`: any supported row shape (LXMERT, VQA,
  A-OKVQA, HF ``datasets``) to a :class:`~pica.types.Question`, and the checks on the result.

- :func:`example_answer`: the answer a question shows when it is an in-context example.
- :class:`DatasetSource`: the interface of a registered question source (``--dataset``,
  ``--questions``, ``--aokvqa``, ``--hf-dataset`` ...).

The readers themselves live beside this module in :mod:`pica.datasets`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pica.answers import normalize_answer
from pica.errors import InputError
from pica.types import Question, normalize_image_id


class QuestionList(list[Question]):
    """A list of questions that also records where they came from.

    Attributes:
        source: The file, folder or dataset name the questions were read from.
        skipped: Ids of questions dropped because their image file was missing
            (``skip_missing=True``); empty otherwise.
        total: Questions in the source (the dataset or split) before ``limit``: "10 of 1,285".
    """

    def __init__(self, items: Iterable[Question] = (), *, source: str = "",
                 skipped: Iterable[str] = (), total: int | None = None) -> None:
        super().__init__(items)
        self.source = source
        self.skipped = list(skipped)
        self.total = len(self) if total is None else total


# ---------------------------------------------------------------------------------------------
# File helpers


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    if not path.is_file():
        raise InputError(f"{what} path is a folder, expected a file: {path}")
    return path


def read_text(path: str | Path, what: str) -> tuple[Path, str]:
    """``(path, text)`` of a UTF-8 file; ``what`` names the file in errors.

    Raises:
        InputError: The file is missing, a folder, not UTF-8 text, or empty.
    """
    path = _existing_file(path, what)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from e
    if not text.strip():
        raise InputError(f"{what} file is empty: {path}")
    return path, text


def parse_json(text: str, path: Path) -> Any:
    """Parse JSON ``text`` read from ``path``.

    Raises:
        InputError: Invalid JSON, with the line and column of the error.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e


def read_json(path: str | Path, what: str) -> tuple[Path, Any]:
    """``(path, parsed JSON)`` of a file (see :func:`read_text` and :func:`parse_json`)."""
    path, text = read_text(path, what)
    return path, parse_json(text, path)


# ---------------------------------------------------------------------------------------------
# Rows -> Question


def _first(row: Mapping[str, Any], keys: Sequence[str]) -> Any:
    return next((row[k] for k in keys if row.get(k) is not None), None)


def _parse_answers(value: Any, where: str) -> tuple[list[str], list[str]]:
    """``(answers, raw_answers)`` from strings, dicts with ``answer``, or an HF dict of lists."""
    if value is None:
        return [], []
    if isinstance(value, Mapping) and isinstance(value.get("answer"), list):
        raw = value.get("raw_answer")
        value = [{"answer": a, **({"raw_answer": raw[i]} if isinstance(raw, list) else {})}
                 for i, a in enumerate(value["answer"])]
    if not isinstance(value, list):
        raise InputError(f"{where}: answers must be a list, got {type(value).__name__}")
    if all(isinstance(a, Mapping) for a in value):
        if not all("answer" in a for a in value):
            raise InputError(f"{where}: every answer object needs an 'answer' field")
        answers = [str(a["answer"]) for a in value]
        has_raw = value and all(a.get("raw_answer") is not None for a in value)
        return answers, [str(a["raw_answer"]) for a in value] if has_raw else []
    if any(isinstance(a, (Mapping, list)) for a in value):
        raise InputError(f"{where}: answers must be strings or objects with an 'answer' field")
    return [str(a) for a in value if a is not None], []


def _parse_label(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: 'label' must be an object {{answer: score}}")
    try:
        # HF stores varying dict keys as one struct: absent answers come back as None.
        return {str(k): float(v) for k, v in value.items() if v is not None}
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: label scores must be numbers") from e


def question_from_row(row: Any, index: int, where: str) -> Question:
    """Build a Question from any supported row shape; ``where`` names the row in errors.

    Fields are found by name: question (``question``/``sent``), id (``question_id``/``id``, else
    ``index``), image id (``image_id``/``img_id``), answers (``answers``/``direct_answers``), soft
    ``label``, category (``category``/``class``, else ``question_type``).

    Raises:
        InputError: Not an object, no question text, malformed answers or label.
    """
    if not isinstance(row, Mapping):
        raise InputError(f"{where}: expected an object, got {type(row).__name__}")
    text = _first(row, ("question", "sent"))
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: no question text (field 'question' or 'sent');"
                         f" found keys: {', '.join(map(str, row)) or 'none'}")
    qid = _first(row, ("question_id", "id"))
    image_id = _first(row, ("image_id", "img_id"))
    answers, raw_answers = _parse_answers(_first(row, ("answers", "direct_answers")), where)
    question_type = row.get("question_type")
    category = _first(row, ("category", "class"))
    category = category if category is not None else question_type
    choices, correct = _parse_choices(row, where)
    return Question(
        id=str(index) if qid is None else str(qid),
        question=text.strip(),
        image_id=None if image_id in (None, "") else normalize_image_id(image_id),
        answers=answers,
        raw_answers=raw_answers,
        label=_parse_label(row.get("label"), where),
        category=None if category is None else str(category),
        question_type=None if question_type is None else str(question_type),
        choices=choices,
        correct_choice_idx=correct,
        difficult=bool(row.get("difficult_direct_answer") or False),
        rationales=_strings(row.get("rationales"), "rationales", where),
        scoring="aokvqa" if any(k in row for k in AOKVQA_FIELDS) else "vqa",
    )


# Fields that only A-OKVQA rows carry; a row with any of them is scored the A-OKVQA way.
AOKVQA_FIELDS = ("direct_answers", "choices", "correct_choice_idx", "difficult_direct_answer")


def _strings(value: Any, name: str, where: str) -> list[str]:
    """A list of non-empty strings (``None`` = empty list)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}: '{name}' must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _parse_choices(row: Mapping[str, Any], where: str) -> tuple[list[str], int | None]:
    """``(choices, correct_choice_idx)`` of an A-OKVQA row, checked.

    Raises:
        InputError: choices not a list of distinct strings, or an index that is not an integer
            within the choices.
    """
    choices = _strings(row.get("choices"), "choices", where)
    if len(set(choices)) != len(choices):
        raise InputError(f"{where}: 'choices' has duplicates: {choices}")
    index = row.get("correct_choice_idx")
    if index is None:
        return choices, None
    if isinstance(index, bool) or not isinstance(index, int):
        raise InputError(f"{where}: 'correct_choice_idx' must be an integer, got {index!r}")
    if not 0 <= index < len(choices):
        raise InputError(f"{where}: correct_choice_idx {index} is out of range for"
                         f" {len(choices)} choices")
    return choices, index


def check_questions(questions: list[Question], source: str) -> QuestionList:
    """Wrap ``questions`` read from ``source`` in a :class:`QuestionList`.

    Raises:
        InputError: No questions, or duplicate question ids.
    """
    if not questions:
        raise InputError(f"no questions in {source}; check the file or split")
    seen: set[str] = set()
    duplicates: list[str] = []
    for q in questions:
        if q.id in seen:
            duplicates.append(q.id)
        seen.add(q.id)
    if duplicates:
        raise InputError(f"{len(duplicates)} duplicate question ids in {source}"
                         f" (first: {', '.join(duplicates[:3])}); question ids must be unique")
    return QuestionList(questions, source=source)


def example_answer(q: Question) -> tuple[str, dict[str, float]]:
    """The answer shown when ``q`` is an in-context example, and the weights of all its answers.

    With human answers: the majority normalized answer (``raw_answers`` if present, else
    ``answers``; ties go to the first given), weighted by counts. With a soft label: the
    highest-scored non-empty answer (ties: first) and the label without empty answers.
    ``("", {})`` when there are none.
    """
    counts: dict[str, float] = {}
    for answer in q.raw_answers or q.answers:
        norm = normalize_answer(answer)
        if norm:
            counts[norm] = counts.get(norm, 0.0) + 1.0
    if counts:
        return max(counts, key=counts.__getitem__), counts
    label = {a: s for a, s in q.label.items() if a.strip()}  # LXMERT files hold some empty keys
    if label:
        return max(label, key=label.__getitem__), label
    return "", {}


class DatasetSource:
    """A question source, registered as ``dataset`` (``REGISTER`` in its reader's module).

    Attributes:
        fields: The :func:`~pica.datasets.load_questions` / :func:`~pica.datasets.dataset_identity`
            keywords it reads, its own first: that one is its CLI option (``hf_dataset`` ->
            ``--hf-dataset``) and says the source was given; all are recorded in the identity.
        usage: How it is given on the command line (for "give exactly one question source").
        metric: Where its score is defined (``module:function``).
        own_images: The source finds its images itself (``--images`` in the dataset's own layout,
            passed to :meth:`read` as ``values["images_dir"]``), else they are matched by image id.
    """

    fields: tuple[str, ...] = ()
    usage: str = ""
    metric: str = "pica.answers:score"
    own_images: bool = False

    @classmethod
    def read(cls, values: Mapping[str, Any], split: str, image_column: str | None) -> QuestionList:
        """Read the questions from ``values`` (this source's fields) and the split."""
        raise NotImplementedError(f"{cls.__name__} does not say how to read its questions")

    @classmethod
    def identity(cls, values: Mapping[str, Any], split: str | None) -> dict[str, str]:
        """What the run identity records beyond the paths (default: nothing)."""
        return {}

