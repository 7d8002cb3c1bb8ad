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

The package's modules: ``okvqa`` (LXMERT lists, the official pair), ``aokvqa``, ``hf`` (Hugging
Face ``datasets``), ``captions`` (cached caption files), ``images`` (image folders), ``rows``
(image ids, row parsing, checks) and ``identity`` (what identifies a source: content digests).
Everything public is importable from ``pica.datasets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pica.datasets.aokvqa import read_aokvqa
from pica.datasets.captions import read_captions
from pica.datasets.hf import read_hf_dataset
from pica.datasets.identity import dataset_identity, identity_key
from pica.datasets.images import attach_images, scan_images, select
from pica.datasets.okvqa import from_rows, okvqa_pair, read_lxmert, read_okvqa
from pica.datasets.rows import DatasetSource, QuestionList, example_answer, read_json
from pica.datasets.scienceqa import read_scienceqa
from pica.errors import InputError
from pica.registry import datasets
from pica.types import IMAGE_EXTENSIONS, normalize_image_id

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetSource",
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
    "source_fields",
]

REGISTER = {"dataset": {"dataset": "DatasetFile"}}


class DatasetFile(DatasetSource):
    """A dataset file whose format is detected: LXMERT / A-OKVQA / VQA JSON or an HF folder (--dataset)."""

    fields = ("dataset", "annotations")
    usage = "--dataset FILE (LXMERT / A-OKVQA / VQA JSON, or an HF dataset folder)"
    metric = "pica.answers:score"

    @classmethod
    def read(cls, values, split, image_column) -> QuestionList:
        """The questions of ``values["dataset"]`` (with ``annotations`` for a VQA questions file)."""
        return _read_auto(values["dataset"], values.get("annotations"))


def source_fields() -> list[str]:
    """Every keyword a registered question source reads (``dataset``, ``questions``,
    ``annotations``, ``aokvqa``, ``hf_dataset``, and those of plugins' or new modules' sources)."""
    return list(dict.fromkeys(f for name in datasets.names() for f in datasets.get(name).fields))


def load_questions(*, split: str = "train", image_column: str | None = None,
                   images_dir: str | Path | None = None, skip_missing: bool = False,
                   limit: int | None = None, **sources: str | Path | None) -> QuestionList:
    """Load questions from exactly one source; the function the CLI calls.

    Args:
        sources: One registered source's keywords (:data:`pica.registry.datasets`; ``None``
            values are not given): ``dataset`` (a JSON file whose format is detected, LXMERT
            list with ``sent``, A-OKVQA list with ``direct_answers``, or a VQA questions file,
            which then needs ``annotations``; or an HF dataset folder / ``.parquet`` file),
            ``questions`` (official VQA / OK-VQA questions file; ``annotations`` optional: no
            gold), ``aokvqa`` (A-OKVQA JSON file), ``hf_dataset`` (HF dataset folder or hub name,
            read with ``split`` and ``image_column``).
        images_dir: Folder of image files matched by image id (see :func:`attach_images`).
        skip_missing: Drop questions whose image file is missing instead of failing.
        limit: Keep only the first ``limit`` questions (only those need image files).

    Returns:
        A :class:`QuestionList` (``.source``, ``.skipped`` = ids dropped for missing images).

    Raises:
        InputError: No or several sources, bad files, empty dataset, duplicate ids, missing images.
        TypeError: a keyword no registered source reads.
    """
    known = source_fields()
    unknown = set(sources) - set(known)
    if unknown:
        raise TypeError(f"load_questions() got unknown source keywords: {', '.join(sorted(unknown))}")
    kinds = [datasets.get(name) for name in datasets.names()]
    given = [cls for cls in kinds if sources.get(cls.fields[0]) is not None]
    if len(given) != 1:
        got = f" (got {' and '.join(_flag(cls.fields[0]) for cls in given)})" if given else ""
        usage = ", ".join(cls.usage for cls in kinds)
        raise InputError(f"give exactly one question source{got}: {usage}")
    for field in known:  # a companion option (--annotations) without its own source
        if sources.get(field) is not None and not any(field in cls.fields for cls in given):
            owners = [cls for cls in kinds if field in cls.fields]
            owner = next((cls for cls in owners if _flag(field) in cls.usage), owners[0])
            raise InputError(f"{_flag(field)} goes with {owner.usage}")
    if limit is not None and limit < 1:
        raise InputError("--limit must be at least 1")
    values = {f: sources.get(f) for f in given[0].fields}
    if given[0].own_images:  # images in the dataset's own layout (ScienceQA): the source finds them
        values["images_dir"] = images_dir
        return select(given[0].read(values, split, image_column), None, skip_missing, limit)
    return select(given[0].read(values, split, image_column), images_dir, skip_missing, limit)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


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
