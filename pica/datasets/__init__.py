"""Dataset and caption loaders: every supported format becomes a list of ``Question``.

Question sources (:func:`load_questions` is the single entry point):

- LXMERT style JSON list: ``{"sent", "question_id", "img_id", "label": {answer: score}, "class"}``.
- Official VQA / OK-VQA pair: questions JSON ``{"questions": [...]}`` plus annotations JSON
  ``{"annotations": [...]}`` with the human answers (OK-VQA v1.1 adds ``raw_answer``).
- A-OKVQA JSON list: ``{"question_id", "image_id", "question", "direct_answers", ...}``.
- Hugging Face ``datasets``: a ``save_to_disk`` folder, a local data file or folder, or a hub name.
  Images stay in the dataset and are decoded lazily, one row at a time. One with ScienceQA's
  columns is read as ScienceQA.
- ScienceQA: ``problems.json`` + ``pid_splits.json`` (+ ``captions.json``, images folder); see
  :mod:`pica.datasets.scienceqa`.

Image ids are compared in the form :func:`normalize_image_id` gives (``"297147"``). Cached captions
(PICa TSV, JSONL, CSV, JSON) are read by :func:`read_captions`.

The package's modules: ``okvqa`` (LXMERT lists, the official pair), ``aokvqa``, ``hf`` (Hugging
Face ``datasets``), ``captions`` (cached caption files), ``images`` (image folders), ``rows``
(image ids, row parsing, checks) and ``identity`` (what identifies a source: content digests).
Everything public is importable from ``pica.datasets``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from pica.datasets.aokvqa import read_aokvqa
from pica.datasets.captions import read_captions
from pica.datasets.hf import read_hf_dataset
from pica.datasets.identity import dataset_identity, identity_key
from pica.datasets.images import attach_images, scan_images, select
from pica.datasets.okvqa import from_rows, okvqa_pair, read_lxmert, read_okvqa
from pica.datasets.rows import QuestionList, example_answer, read_json
from pica.datasets.scienceqa import ScienceQA, read_scienceqa
from pica.errors import InputError
from pica.types import IMAGE_EXTENSIONS, normalize_image_id

__all__ = [
    "IMAGE_EXTENSIONS",
    "QuestionList",
    "attach_images",
    "dataset_identity",
    "example_answer",
    "identity_key",
    "load_questions",
    "normalize_image_id",
    "read_aokvqa",
    "read_captions",
    "read_hf_dataset",
    "read_lxmert",
    "read_okvqa",
    "read_scienceqa",
    "scan_images",
]

_SOURCES_HELP = ("--dataset FILE (LXMERT / A-OKVQA / VQA JSON, or an HF dataset folder),"
                 " --questions FILE [--annotations FILE] (official VQA / OK-VQA),"
                 " --aokvqa FILE, --scienceqa problems.json --split SPLIT,"
                 " or --hf-dataset NAME_OR_DIR [--split SPLIT]")


def load_questions(*, dataset: str | Path | None = None, questions: str | Path | None = None,
                   annotations: str | Path | None = None, aokvqa: str | Path | None = None,
                   hf_dataset: str | Path | None = None, split: str = "train",
                   image_column: str | None = None, images_dir: str | Path | None = None,
                   skip_missing: bool = False, limit: int | None = None,
                   scienceqa: str | Path | None = None, pid_splits: str | Path | None = None,
                   scienceqa_captions: str | Path | None = None) -> QuestionList:
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
        scienceqa: ScienceQA ``problems.json``, read with ``split`` and ``pid_splits``
            (:func:`pica.datasets.scienceqa.read_scienceqa`); ``images_dir`` in its layout.
        pid_splits: ScienceQA's ``pid_splits.json`` when it is not beside ``problems.json``.
        scienceqa_captions: ScienceQA ``captions.json`` (``scienceqa`` or a ScienceQA HF dataset).

    Returns:
        A :class:`QuestionList` (``.source``, ``.skipped`` = ids dropped for missing images).

    Raises:
        InputError: No or several sources, bad files, empty dataset, duplicate ids, missing images.
    """
    given = [flag for flag, value in (("--dataset", dataset), ("--questions", questions),
                                      ("--aokvqa", aokvqa), ("--hf-dataset", hf_dataset),
                                      ("--scienceqa", scienceqa))
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
        "--hf-dataset": lambda: read_hf_dataset(hf_dataset, split, image_column,
                                                scienceqa_captions=scienceqa_captions),
        "--scienceqa": lambda: ScienceQA.read({"scienceqa": scienceqa, "pid_splits": pid_splits,
                                               "scienceqa_captions": scienceqa_captions},
                                              split, images_dir=images_dir),
    }
    if given[0] == "--scienceqa":  # its images are found in its own layout
        return select(readers[given[0]](), None, skip_missing, limit)
    return select(readers[given[0]](), images_dir, skip_missing, limit)


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
        return okvqa_pair(local, data, annotations, None, False)
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
            return from_rows(data, local, "sent")
        if "question" in first:  # A-OKVQA (direct_answers / choices) or a generic list
            return from_rows(data, local, "question")
    raise InputError(f"cannot tell the format of {local}: expected an LXMERT list (with 'sent'),"
                     " an A-OKVQA list (with 'question', 'direct_answers') or a VQA questions file")
