"""ScienceQA (Lu et al., 2022, "Learn to Explain"; github.com/lupantech/ScienceQA) in its own files.

- ``problems.json``: ``{pid: {question, choices, answer (index), hint, image ("image.png" or
  null), task, grade ("grade1".."grade12"), subject, topic, category, skill, lecture, solution,
  split}}``.
- ``pid_splits.json`` (beside it, else ``pid_splits``): ``{split: [pid, ...]}`` — train, val,
  test, trainval, minitrain, minival, minitest.
- ``captions.json``: ``{"model": ..., "captions": {pid: text}}`` (the released captions).
- Images: ``{images}/{split}/{pid}/image.png`` (the dataset's layout), or ``{images}/{pid}/image.png``.
- The Hugging Face copies (``derek-thomas/ScienceQA``, ``lmms-lab/ScienceQA``): the same fields
  as columns, the image as an ``Image`` column, no pid (a problem's id is ``{split}-{row}``).

A problem becomes a :class:`~pica.types.Question` with ``scoring="scienceqa"``: its choices and
correct index, ``context`` = the hint, ``caption`` = its caption (``""`` without an image, ``None``
when it has an image and no caption: a captioner must make one) and ``meta`` = hint, lecture,
solution, grade, subject and whether it has an image.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pica.datasets.rows import DatasetSource, QuestionList, read_json
from pica.errors import InputError
from pica.types import Question

REGISTER = {"dataset": {"scienceqa": "ScienceQA"}}

SPLIT_FILE = "pid_splits.json"
# Columns an HF dataset must have to be read as ScienceQA.
HF_COLUMNS = ("question", "choices", "answer", "hint", "lecture", "solution", "grade", "subject")
_SPLIT_ALIASES = {"validation": "val"}


def read_captions_json(path: str | Path) -> dict[str, str]:
    """``{pid: caption}`` of a ScienceQA ``captions.json`` (``{"captions": {pid: text}}``).

    Raises:
        InputError: not JSON, or no ``captions`` object.
    """
    path, data = read_json(path, "captions")
    captions = data.get("captions") if isinstance(data, Mapping) else None
    if not isinstance(captions, Mapping):
        raise InputError(f"{path} is not a ScienceQA captions file: expected"
                         ' {"captions": {pid: caption}}')
    return {str(k): str(v) for k, v in captions.items()}


def read_pid_splits(problems: Path, pid_splits: str | Path | None) -> dict[str, list[str]]:
    """The ``{split: [pid]}`` file beside ``problems`` (or ``pid_splits``).

    Raises:
        InputError: the file is missing or not ``{split: [pid, ...]}``.
    """
    path = Path(pid_splits).expanduser() if pid_splits else problems.parent / SPLIT_FILE
    if not path.is_file():
        raise InputError(f"ScienceQA splits file not found: {path}; pass --pid-splits FILE")
    path, data = read_json(path, "pid splits")
    if not isinstance(data, Mapping) or not all(isinstance(v, list) for v in data.values()):
        raise InputError(f"{path} is not a ScienceQA pid_splits.json: expected {{split: [pid, ...]}}")
    return {str(k): [str(p) for p in v] for k, v in data.items()}


def problem_question(pid: str, p: Mapping[str, Any], caption: str | None, where: str) -> Question:
    """One ScienceQA problem as a :class:`~pica.types.Question` (see the module docstring).

    Args:
        pid: Its problem id.
        p: The problem's fields.
        caption: Its caption (``None`` when it has none).
        where: Where it was read, for errors.

    Raises:
        InputError: a field is missing, or the answer is not an index of its choices.
    """
    missing = [k for k in ("question", "choices", "answer") if k not in p]
    if missing:
        raise InputError(f"{where}: problem {pid} lacks {', '.join(missing)}")
    choices = [str(c) for c in p["choices"] or []]
    answer = p["answer"]
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        raise InputError(f"{where}: problem {pid} has answer {answer!r}, not an index of its"
                         f" {len(choices)} choices")
    has_image = bool(p.get("image"))
    hint = str(p.get("hint") or "")
    meta = {"hint": hint, "lecture": str(p.get("lecture") or ""),
            "solution": str(p.get("solution") or ""), "grade": str(p.get("grade") or ""),
            "subject": str(p.get("subject") or ""), "image": has_image}
    return Question(id=pid, question=str(p["question"]), image_id=pid,
                    caption=caption if has_image else "", answers=[choices[answer]],
                    choices=choices, correct_choice_idx=answer, scoring="scienceqa",
                    context=hint, meta=meta)


def read_scienceqa(problems: str | Path, split: str = "test", *, pid_splits: str | Path | None = None,
                   captions: str | Path | None = None,
                   images_dir: str | Path | None = None) -> QuestionList:
    """The problems of one split, in ``pid_splits.json`` order.

    Args:
        problems: ``problems.json``.
        split: A key of ``pid_splits.json`` (``validation`` means ``val``).
        pid_splits: The splits file when it is not beside ``problems``.
        captions: A ``captions.json``; problems with an image take their caption from it.
        images_dir: The images folder (``{split}/{pid}/image.png`` or ``{pid}/image.png``).

    Raises:
        InputError: bad files, an unknown split (the known ones named), a pid of the split
            missing from ``problems.json``, an image the folder lacks.
    """
    path, data = read_json(problems, "ScienceQA problems")
    if not isinstance(data, Mapping) or not all(isinstance(v, Mapping) for v in data.values()):
        raise InputError(f"{path} is not a ScienceQA problems.json: expected"
                         " {pid: {question, choices, ...}}")
    splits = read_pid_splits(path, pid_splits)
    name = _SPLIT_ALIASES.get(split, split) if split not in splits else split
    if name not in splits:
        raise InputError(f"split '{split}' not in the ScienceQA splits file; available:"
                         f" {', '.join(splits)}")
    pids = splits[name]
    absent = [pid for pid in pids if pid not in data]
    if absent:
        raise InputError(f"{len(absent)} problems of split '{name}' are not in {path}"
                         f" (first: {', '.join(absent[:3])})")
    caps = read_captions_json(captions) if captions else {}
    questions = [problem_question(pid, data[pid], caps.get(pid), str(path)) for pid in pids]
    if images_dir is not None:
        attach_problem_images(questions, Path(images_dir).expanduser(), name)
    return QuestionList(questions, source=str(path))


def attach_problem_images(questions: list[Question], folder: Path, split: str) -> None:
    """Set ``image_path`` of every problem with an image: ``{folder}/{split}/{pid}/image.png``,
    else ``{folder}/{pid}/image.png``.

    Raises:
        InputError: the folder is missing, or holds none of some problems' images (how many,
            the first).
    """
    if not folder.is_dir():
        raise InputError(f"images folder not found: {folder}")
    missing = []
    for q in questions:
        if not q.meta.get("image"):
            continue
        found = next((p for p in (folder / split / q.id / "image.png", folder / q.id / "image.png")
                      if p.is_file()), None)
        if found is None:
            missing.append(q.id)
        q.image_path = found
    if missing:
        raise InputError(f"{len(missing)} problems have no image under {folder} (looked for"
                         f" {split}/PID/image.png and PID/image.png; first: {', '.join(missing[:3])})")


def is_scienceqa_columns(columns: list[str]) -> bool:
    """Whether an HF dataset's columns are ScienceQA's (:data:`HF_COLUMNS`)."""
    return all(c in columns for c in HF_COLUMNS)


def read_hf_scienceqa(ds: Any, source: str, split: str | None,
                      captions: Mapping[str, str] | None = None) -> QuestionList:
    """ScienceQA problems from an HF dataset with ScienceQA's columns (``derek-thomas/ScienceQA``,
    ``lmms-lab/ScienceQA``); ids are ``{split}-{row}``, images decoded lazily.

    Raises:
        InputError: a row's answer is not an index of its choices.
    """
    import datasets

    columns = [c for c in ds.column_names if c != "image"]
    rows = ds.select_columns(columns).to_list()
    images = ds.select_columns(["image"]) if "image" in ds.column_names else None
    present = [False] * len(rows)
    if images is not None and isinstance(ds.features["image"], datasets.Image):
        # Which rows have an image, without decoding any.
        raw = images.cast_column("image", datasets.Image(decode=False))["image"]
        present = [value is not None for value in raw]
    prefix = split or "row"
    questions = []
    for i, row in enumerate(rows):
        pid = f"{prefix}-{i}"
        has_image = present[i]
        problem = {**row, "image": "image.png" if has_image else None}
        q = problem_question(pid, problem, (captions or {}).get(pid), f"{source} row {i}")
        if has_image:
            q.image = functools.partial(_row_image, images, i)
        questions.append(q)
    return QuestionList(questions, source=source)


def _row_image(images: Any, row: int) -> Any:
    return images[row]["image"]


class ScienceQA(DatasetSource):
    """ScienceQA's problems.json + pid_splits.json, with captions.json and its images folder (--scienceqa)."""

    fields = ("scienceqa", "pid_splits", "scienceqa_captions")
    usage = "--scienceqa problems.json --split SPLIT [--pid-splits FILE]"
    metric = "pica.tasks.scienceqa_results:row_fields"
    own_images = True

    @classmethod
    def read(cls, values: Mapping[str, Any], split: str, image_column: str | None = None) -> QuestionList:
        """The problems of ``split`` (:func:`read_scienceqa`; images from ``values["images_dir"]``)."""
        return read_scienceqa(values["scienceqa"], split, pid_splits=values.get("pid_splits"),
                              captions=values.get("scienceqa_captions"), images_dir=values.get("images_dir"))

    @classmethod
    def identity(cls, values: Mapping[str, Any], split: str | None) -> dict[str, str]:
        """The split (``validation`` is ``val``), beside the paths."""
        return {"split": _SPLIT_ALIASES.get(split, split)} if split else {}


def splits_file(problems: str | Path | None, pid_splits: str | Path | None) -> Path | None:
    """The splits file a run reads: ``pid_splits``, else ``pid_splits.json`` beside ``problems``
    (so its content is part of the run's identity either way)."""
    if pid_splits is not None:
        return Path(pid_splits)
    return Path(problems).expanduser().parent / SPLIT_FILE if problems is not None else None


def check_captions(questions: list[Question], captioner_given: bool) -> None:
    """Fail before a run when problems with an image have no caption and none can be made.

    Raises:
        InputError: how many problems lack a caption, the first ids, and what to pass.
    """
    uncaptioned = [q for q in questions if q.caption is None]
    if not uncaptioned:
        return
    first = ", ".join(q.id for q in uncaptioned[:3])
    if not captioner_given:
        raise InputError(f"{len(uncaptioned)} of {len(questions)} ScienceQA problems have an image but"
                         f" no caption (first: {first}); pass --captions captions.json, or"
                         " --captioner MODEL with --images DIR")
    no_file = [q for q in uncaptioned if not q.has_image]
    if no_file:
        raise InputError(f"{len(no_file)} of {len(questions)} ScienceQA problems have an image but no"
                         f" caption and no image file to caption (first: {no_file[0].id}); pass"
                         " --images DIR (the dataset's SPLIT/PID/image.png) or --captions captions.json")
