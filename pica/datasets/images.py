"""Image folders: map image ids to files and attach them to questions."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from pica.datasets.rows import QuestionList
from pica.errors import InputError
from pica.types import IMAGE_EXTENSIONS, Question, normalize_image_id


def scan_images(images_dir: str | Path, strict: bool = False,
                duplicates: dict[str, list[Path]] | None = None) -> dict[str, Path]:
    """Map normalized image ids to the image files found in ``images_dir`` (recursively).

    File stems like ``COCO_val2014_000000297147``, ``000000297147`` or ``297147`` with an image
    extension all map to ``"297147"``, ``photo.jpg`` to ``"photo"``; the first file in sorted order
    wins, unless ``strict``. ``duplicates``, when given, receives every id with more than one file
    (all of them), so a caller can refuse the ids it uses.

    Raises:
        InputError: The folder is missing or not a folder; with ``strict``, two files with one
            image id (``same.jpg`` and ``same.png``), naming both.
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
                key, path = normalize_image_id(stem), Path(dirpath) / name
                if key in found:
                    if strict:
                        raise InputError(f"{found[key]} and {path} have the same image id '{key}';"
                                         " rename one (captions are keyed by image id)")
                    if duplicates is not None:
                        duplicates.setdefault(key, [found[key]]).append(path)
                found.setdefault(key, path)
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
    return select(questions, images_dir, skip_missing, None)


def maybe_attach(questions: QuestionList, images_dir: str | Path | None,
                  skip_missing: bool) -> QuestionList:
    return questions if images_dir is None else select(questions, images_dir, skip_missing, None)


def select(questions: Sequence[Question], images_dir: str | Path | None, skip_missing: bool,
            limit: int | None) -> QuestionList:
    """Apply ``limit`` and the image folder: only questions that will be used must have images."""
    source = getattr(questions, "source", "")
    if images_dir is None:
        return QuestionList(questions[:limit], source=source, total=len(questions))
    root = Path(images_dir).expanduser()
    same: dict[str, list[Path]] = {}
    files = scan_images(root, duplicates=same)
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
        elif q.image_id in same:  # never one of two files chosen silently
            names = " and ".join(str(p) for p in same[q.image_id])
            raise InputError(f"{names} have the same image id '{q.image_id}' (question {q.id});"
                             " rename or move all but one")
        else:
            kept.append(dataclasses.replace(q, image_path=path))
    if missing and not skip_missing:
        first = ", ".join(list(missing)[:3])
        raise InputError(f"{len(missing)} images missing from {root} (first: {first});"
                         " add the files or use --skip-missing to drop those questions")
    if not kept:
        raise InputError(f"none of the {len(candidates)} questions has an image in {root}")
    return QuestionList(kept, source=source, skipped=skipped, total=len(questions))
