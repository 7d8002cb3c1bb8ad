"""Dataset and caption loaders: every supported format becomes a list of ``Question``.

Question sources (:func:`load_questions` is the single entry point):

- LXMERT style JSON list: ``{"sent", "question_id", "img_id", "label": {answer: score}, "class"}``.
- Official VQA / OK-VQA pair: questions JSON ``{"questions": [...]}`` plus annotations JSON
  ``{"annotations": [...]}`` with the human answers (OK-VQA v1.1 adds ``raw_answer``).
- A-OKVQA JSON list: ``{"question_id", "image_id", "question", "direct_answers", ...}``.
- Hugging Face ``datasets``: a ``save_to_disk`` folder, a local data file or folder, or a hub name.
  Images stay in the dataset and are decoded lazily, one row at a time.

Image ids are compared in the form :func:`normalize_image_id` gives (``"297147"``). Cached captions
(PICa TSV, JSONL, CSV, JSON) are read by :func:`read_captions`.

This module is the public face of the readers: :func:`read_hf_dataset` lives in
:mod:`pica.hf_datasets`, :func:`read_captions` in :mod:`pica.captionfiles`, and
:func:`normalize_image_id`, :class:`QuestionList` in :mod:`pica.questionrows`; all are importable
from here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pica.answers import normalize_answer
from pica.captionfiles import read_captions
from pica.errors import InputError
from pica.hf_datasets import read_hf_dataset
from pica.questionrows import (
    IMAGE_EXTENSIONS,
    QuestionList,
    check_questions,
    normalize_image_id,
    question_from_row,
    read_json,
)
from pica.types import Question

__all__ = [
    "IMAGE_EXTENSIONS",
    "QuestionList",
    "attach_images",
    "example_answer",
    "load_questions",
    "normalize_image_id",
    "read_aokvqa",
    "read_captions",
    "read_hf_dataset",
    "read_lxmert",
    "read_okvqa",
    "scan_images",
]

_SOURCES_HELP = ("--dataset FILE (LXMERT / A-OKVQA / VQA JSON, or an HF dataset folder),"
                 " --questions FILE [--annotations FILE] (official VQA / OK-VQA),"
                 " --aokvqa FILE, or --hf-dataset NAME_OR_DIR [--split SPLIT]")


# ---------------------------------------------------------------------------------------------
# JSON readers


def _expect_list(data: Any, path: Path, fmt: str) -> list[Any]:
    if not isinstance(data, list):
        raise InputError(f"{path} should hold a JSON list ({fmt}), found a {type(data).__name__}")
    return data


def _from_rows(rows: list[Any], path: Path, required: str) -> QuestionList:
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
    rows = _expect_list(data, path, "LXMERT rows with sent, question_id, img_id, label")
    return _maybe_attach(_from_rows(rows, path, "sent"), images_dir, skip_missing)


def read_aokvqa(path: str | Path, images_dir: Path | None = None,
                skip_missing: bool = False) -> QuestionList:
    """Read an A-OKVQA JSON list; ``direct_answers`` become the answers (choices are ignored).

    Raises:
        InputError: Missing/empty/malformed file, wrong structure, duplicate ids, missing images.
    """
    path, data = read_json(path, "dataset")
    rows = _expect_list(data, path, "A-OKVQA rows with question_id, image_id, question")
    return _maybe_attach(_from_rows(rows, path, "question"), images_dir, skip_missing)


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
    return _okvqa(qpath, qdata, annotations_path, images_dir, skip_missing)


def _okvqa(qpath: Path, qdata: Any, annotations_path: str | Path | None,
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
    return _maybe_attach(check_questions(rows, str(qpath)), images_dir, skip_missing)


# ---------------------------------------------------------------------------------------------
# Image folders


def scan_images(images_dir: str | Path) -> dict[str, Path]:
    """Map normalized image ids to the image files found in ``images_dir`` (recursively).

    File stems like ``COCO_val2014_000000297147``, ``000000297147`` or ``297147`` with an image
    extension all map to ``"297147"``; the first file in sorted order wins.

    Raises:
        InputError: The folder is missing or not a folder.
    """
    root = Path(images_dir).expanduser()
    if not root.exists():
        raise InputError(f"images folder not found: {root}")
    if not root.is_dir():
        raise InputError(f"images path is not a folder: {root}")
    found: dict[str, Path] = {}
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        visited.add(os.path.realpath(dirpath))
        dirnames[:] = sorted(d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in visited)
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                found.setdefault(normalize_image_id(stem), Path(dirpath) / name)
    return found


def attach_images(questions: Sequence[Question], images_dir: str | Path,
                  skip_missing: bool = False) -> QuestionList:
    """Set ``image_path`` of each question from the files in ``images_dir``.

    Returns new Question objects (the inputs are not changed). With ``skip_missing`` questions
    whose image is absent are dropped and their ids recorded in ``QuestionList.skipped``.

    Raises:
        InputError: No image files in the folder; images missing (unless ``skip_missing``);
            every question dropped.
    """
    return _select(questions, images_dir, skip_missing, None)


def _maybe_attach(questions: QuestionList, images_dir: str | Path | None,
                  skip_missing: bool) -> QuestionList:
    return questions if images_dir is None else _select(questions, images_dir, skip_missing, None)


def _select(questions: Sequence[Question], images_dir: str | Path | None, skip_missing: bool,
            limit: int | None) -> QuestionList:
    """Apply ``limit`` and the image folder: only questions that will be used must have images."""
    source = getattr(questions, "source", "")
    if images_dir is None:
        return QuestionList(questions[:limit], source=source)
    root = Path(images_dir).expanduser()
    files = scan_images(root)
    if not files:
        raise InputError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {root}; check --images")
    candidates = questions if skip_missing else questions[:limit]
    kept: list[Question] = []
    skipped: list[str] = []
    missing: dict[str, None] = {}
    for q in candidates:
        if limit is not None and len(kept) == limit:
            break
        path = files.get(q.image_id) if q.image_id is not None else None
        if path is None:
            missing[q.image_id if q.image_id is not None else f"(none for question {q.id})"] = None
            skipped.append(q.id)
        else:
            kept.append(dataclasses.replace(q, image_path=path))
    if missing and not skip_missing:
        first = ", ".join(list(missing)[:3])
        raise InputError(f"{len(missing)} images missing from {root} (first: {first});"
                         " add the files or use --skip-missing to drop those questions")
    if not kept:
        raise InputError(f"none of the {len(candidates)} questions has an image in {root}")
    return QuestionList(kept, source=source, skipped=skipped)


# ---------------------------------------------------------------------------------------------
# Entry point


def load_questions(*, dataset: str | Path | None = None, questions: str | Path | None = None,
                   annotations: str | Path | None = None, aokvqa: str | Path | None = None,
                   hf_dataset: str | Path | None = None, split: str = "train",
                   image_column: str | None = None, images_dir: str | Path | None = None,
                   skip_missing: bool = False, limit: int | None = None) -> QuestionList:
    """Load questions from exactly one source; the function the CLI calls.

    Args:
        dataset: A JSON file whose format is detected (LXMERT list with ``sent``, A-OKVQA list
            with ``direct_answers``, or a VQA questions file, which then needs ``annotations``),
            or an HF dataset folder / ``.parquet`` file.
        questions: Official VQA / OK-VQA questions file; ``annotations`` optional (no gold).
        annotations: Official annotations file, with ``questions`` or a VQA ``dataset``.
        aokvqa: A-OKVQA JSON file.
        hf_dataset: HF dataset folder or hub name, read with ``split`` and ``image_column``.
        images_dir: Folder of image files matched by image id (see :func:`attach_images`).
        skip_missing: Drop questions whose image file is missing instead of failing.
        limit: Keep only the first ``limit`` questions (only those need image files).

    Returns:
        A :class:`QuestionList` (``.source``, ``.skipped`` = ids dropped for missing images).

    Raises:
        InputError: No or several sources, bad files, empty dataset, duplicate ids, missing images.
    """
    given = [flag for flag, value in (("--dataset", dataset), ("--questions", questions),
                                      ("--aokvqa", aokvqa), ("--hf-dataset", hf_dataset))
             if value is not None]
    if len(given) != 1:
        got = f" (got {' and '.join(given)})" if given else ""
        raise InputError(f"give exactly one question source{got}: {_SOURCES_HELP}")
    if annotations is not None and questions is None and dataset is None:
        raise InputError("--annotations goes with --questions (the official VQA / OK-VQA pair)")
    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1")
    readers: dict[str, Callable[[], QuestionList]] = {
        "--dataset": lambda: _read_auto(dataset, annotations),
        "--questions": lambda: read_okvqa(questions, annotations),
        "--aokvqa": lambda: read_aokvqa(aokvqa),
        "--hf-dataset": lambda: read_hf_dataset(hf_dataset, split, image_column),
    }
    return _select(readers[given[0]](), images_dir, skip_missing, limit)


def _read_auto(path: str | Path, annotations: str | Path | None) -> QuestionList:
    local = Path(path).expanduser()
    if local.is_dir() or local.suffix.lower() in (".parquet", ".arrow"):
        if annotations is not None:
            raise InputError("--annotations only goes with a VQA questions file")
        return read_hf_dataset(local)
    local, data = read_json(local, "dataset")
    if isinstance(data, Mapping) and "questions" in data:
        if annotations is None:
            raise InputError(f"{local} is an official VQA questions file: add --annotations FILE,"
                             " or pass it as --questions to predict without gold answers")
        return _okvqa(local, data, annotations, None, False)
    if annotations is not None:
        raise InputError(f"--annotations only goes with a VQA questions file, and {local} is not one")
    if isinstance(data, Mapping) and "annotations" in data:
        raise InputError(f"{local} is a VQA annotations file; pass it as --annotations with"
                         " --questions QUESTIONS_FILE")
    if isinstance(data, list):
        if not data:
            raise InputError(f"no questions in {local}; the JSON list is empty")
        first = data[0] if isinstance(data[0], Mapping) else {}
        if "sent" in first:
            return _from_rows(data, local, "sent")
        if "question" in first:  # A-OKVQA (direct_answers / choices) or a generic list
            return _from_rows(data, local, "question")
    raise InputError(f"cannot tell the format of {local}: expected an LXMERT list (with 'sent'),"
                     " an A-OKVQA list (with 'question', 'direct_answers') or a VQA questions file")


# ---------------------------------------------------------------------------------------------
# In-context examples


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
