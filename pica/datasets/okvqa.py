"""OK-VQA / VQA readers: LXMERT-style JSON lists and the official questions + annotations pair."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pica.datasets.images import maybe_attach
from pica.datasets.rows import (
    DatasetSource,
    QuestionList,
    check_questions,
    question_from_row,
    read_json,
)
from pica.errors import InputError

REGISTER = {"dataset": {"okvqa": "OKVQA"}}


class OKVQA(DatasetSource):
    """The official VQA / OK-VQA pair: questions file [+ annotations] (--questions, --annotations)."""

    fields = ("questions", "annotations")
    usage = "--questions FILE [--annotations FILE] (official VQA / OK-VQA)"
    metric = "pica.answers:vqa_accuracy"

    @classmethod
    def read(cls, values, split, image_column) -> QuestionList:
        """:func:`read_okvqa` of the questions and annotations files."""
        return read_okvqa(values["questions"], values.get("annotations"))


def expect_list(data: Any, path: Path, fmt: str) -> list[Any]:
    if not isinstance(data, list):
        raise InputError(f"{path} should hold a JSON list ({fmt}), found a {type(data).__name__}")
    return data


def from_rows(rows: list[Any], path: Path, required: str) -> QuestionList:
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or required not in row:
            raise InputError(f"{path}[{i}]: missing '{required}' field")
    return check_questions([question_from_row(r, i, f"{path}[{i}]") for i, r in enumerate(rows)], str(path))


def read_lxmert(path: str | Path, images_dir: Path | None = None,
                skip_missing: bool = False) -> QuestionList:
    """Read an LXMERT style JSON list (``sent``, ``question_id``, ``img_id``, ``label``, ``class``).

    ``class`` becomes the category (as text); gold answers are the soft ``label``.
    With ``images_dir``, see :func:`attach_images`.

    Raises:
        InputError: Missing/empty/malformed file, wrong structure, duplicate ids, missing images.
    """
    path, data = read_json(path, "dataset")
    rows = expect_list(data, path, "LXMERT rows with sent, question_id, img_id, label")
    return maybe_attach(from_rows(rows, path, "sent"), images_dir, skip_missing)


def read_okvqa(questions_path: str | Path, annotations_path: str | Path | None,
               images_dir: Path | None = None, skip_missing: bool = False) -> QuestionList:
    """Read the official VQA / OK-VQA questions and annotations pair.

    ``answers`` are the annotations' ``answer`` fields (stemmed in OK-VQA v1.1, what the official
    metric scores), ``raw_answers`` the ``raw_answer`` fields when present. The category is the
    ``question_type`` (where OK-VQA keeps its knowledge category). With ``annotations_path=None``
    the questions come without gold answers (for predicting a test set).

    Raises:
        InputError: Bad files, questions without annotations, duplicate ids, missing images.
    """
    qpath, qdata = read_json(questions_path, "questions")
    return okvqa_pair(qpath, qdata, annotations_path, images_dir, skip_missing)


def okvqa_pair(qpath: Path, qdata: Any, annotations_path: str | Path | None,
           images_dir: Path | None, skip_missing: bool) -> QuestionList:
    if isinstance(qdata, Mapping) and "annotations" in qdata and "questions" not in qdata:
        raise InputError(f"{qpath} is an annotations file; pass it as --annotations and the"
                         " questions file as --questions")
    if not isinstance(qdata, Mapping) or not isinstance(qdata.get("questions"), list):
        raise InputError(f"{qpath} is not a VQA questions file: expected {{\"questions\": [...]}}")
    annotations: dict[str, Mapping[str, Any]] | None = None
    if annotations_path is not None:
        apath, adata = read_json(annotations_path, "annotations")
        if not isinstance(adata, Mapping) or not isinstance(adata.get("annotations"), list):
            swapped = isinstance(adata, Mapping) and "questions" in adata
            hint = "; it looks like a questions file" if swapped else ""
            raise InputError(f"{apath} is not a VQA annotations file: expected"
                             f" {{\"annotations\": [...]}}{hint}")
        annotations = {}
        for i, ann in enumerate(adata["annotations"]):
            if not isinstance(ann, Mapping) or ann.get("question_id") is None:
                raise InputError(f"{apath} annotations[{i}]: missing 'question_id'")
            annotations[str(ann["question_id"])] = ann
    rows, missing = [], []
    for i, q in enumerate(qdata["questions"]):
        if not isinstance(q, Mapping) or q.get("question_id") is None:
            raise InputError(f"{qpath} questions[{i}]: missing 'question_id'")
        row = dict(q)
        if annotations is not None:
            ann = annotations.get(str(q["question_id"]))
            if ann is None:
                missing.append(str(q["question_id"]))
                continue
            row.setdefault("image_id", ann.get("image_id"))
            row.update(answers=ann.get("answers"), question_type=ann.get("question_type"))
        rows.append(question_from_row(row, i, f"{qpath} questions[{i}]"))
    if missing:
        raise InputError(f"{len(missing)} questions in {qpath} have no annotation in {annotations_path}"
                         f" (first: {', '.join(missing[:3])}); use the annotations of the same split")
    return maybe_attach(check_questions(rows, str(qpath)), images_dir, skip_missing)
