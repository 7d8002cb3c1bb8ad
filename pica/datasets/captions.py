"""Cached caption files (PICa TSV, JSONL, CSV, JSON), read by :func:`read_captions`.

Captions are keyed by :func:`~pica.datasets.rows.normalize_image_id`, so they match the image ids
of questions from any dataset reader.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pica.datasets.rows import parse_json, read_text
from pica.errors import InputError
from pica.types import normalize_image_id

_ID_KEYS = ("image_id", "img_id", "id")
QUESTION_KEY = "question_id"
# The first line of a captions file ``pica caption`` wrote: ``{"pica_captions": 1, "captioners":
# [...]}`` (what made it). Readers skip it; ``pica caption`` appends only to files that carry it.
CAPTIONS_MARK = "pica_captions"
# A row ``pica caption --skip-bad`` wrote for an image it could not read: ``{"image_id",
# "caption": "", "error"}``; readers skip it.
ERROR_KEY = "error"


class Captions(dict):
    """Captions keyed by normalized image id, plus question-aware ones keyed by question id
    (:attr:`by_question`, from rows with a ``question_id``, as ``pica caption --question-aware``
    writes them)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.by_question: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(len(self) or self.by_question)

    def find(self, question_id: str | None, image_id: str | None) -> str | None:
        """The caption for a question: its own (question-aware) one, else its image's, else ``None``."""
        if question_id is not None and str(question_id) in self.by_question:
            return self.by_question[str(question_id)]
        return self.get(normalize_image_id(image_id)) if image_id else None


def find_caption(captions, question_id: str | None, image_id: str | None) -> str | None:
    """:meth:`Captions.find` for any mapping of image id -> caption (plain dicts too)."""
    if isinstance(captions, Captions):
        return captions.find(question_id, image_id)
    return captions.get(normalize_image_id(image_id)) if image_id else None


def read_captions(path: str | Path) -> Captions:
    """Read cached captions keyed by :func:`normalize_image_id` (a :class:`Captions` dict).

    Formats, chosen by extension (else sniffed from the content):

    - ``.tsv``: PICa style ``image_id<TAB>[{"caption": ..., "conf": ...}, ...]`` (the most
      confident caption wins) or ``image_id<TAB>caption``; an ``image_id`` header line is skipped.
    - ``.jsonl``: one object per line with ``image_id``/``img_id``/``id`` and ``caption`` (or a
      ``captions`` list, first taken); a line with ``question_id`` holds a question-aware caption
      of that question (:attr:`Captions.by_question`), as ``pica caption`` writes them; the
      ``pica caption`` mark line (``{"pica_captions": ...}``) and error rows are skipped.
    - ``.csv``: columns ``image_id`` (or ``id``/``img_id``) and ``caption``.
    - ``.json``: ``{image_id: caption}``, a list of JSONL-like objects, or COCO captions
      (``{"annotations": [{"image_id", "caption"}]}``, first caption per image).

    A later entry for the same image replaces an earlier one.

    Raises:
        InputError: Missing or empty file, malformed line (with its number), missing columns,
            unrecognisable format.
    """
    path, text = read_text(path, "captions")
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("tsv", "jsonl", "csv", "json"):
        kind = _sniff_captions(text, path)
    captions = Captions()
    if kind == "json":
        try:
            captions = _captions_from_json(json.loads(text), path)
        except json.JSONDecodeError as e:
            if e.msg != "Extra data":  # JSONL parses as JSON up to the end of its first line
                parse_json(text, path)  # raises the InputError with the error position
            captions = _captions_from_jsonl(text, path)
    elif kind == "jsonl":
        captions = _captions_from_jsonl(text, path)
    elif kind == "tsv":
        captions.update(_captions_from_tsv(text, path))
    else:
        captions.update(_captions_from_csv(path))
    if not isinstance(captions, Captions):
        captions = Captions(captions)
    if not captions:
        raise InputError(f"no captions found in {path}")
    return captions


def _sniff_captions(text: str, path: Path) -> str:
    head = text.lstrip()
    first_line = head.split("\n", 1)[0]
    if head.startswith(("[", "{")):
        return "json"  # JSONL too: see the "Extra data" fallback in read_captions
    if "\t" in first_line:
        return "tsv"
    if "," in first_line:
        return "csv"
    raise InputError(f"cannot tell the format of captions file {path}; use .tsv, .jsonl, .csv or .json")


def _best_caption(value: Any) -> str | None:
    """Caption text from a string, a list (most confident dict or first string) or a dict."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, Mapping):
        return _best_caption(value.get("caption"))
    if isinstance(value, list) and value:
        if all(isinstance(v, Mapping) for v in value):
            best = max(value, key=lambda v: float(v.get("conf", v.get("score", 0.0)) or 0.0))
            return _best_caption(best)
        return _best_caption(value[0])
    return None


def _captions_from_tsv(text: str, path: Path) -> dict[str, str]:
    captions: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("\t")
        if not sep:
            raise InputError(f"{path} line {number}: expected 'image_id<TAB>caption', found no tab")
        if number == 1 and key.strip().lower() in _ID_KEYS:
            continue
        value = value.strip()
        if value[:1] in ("[", "{"):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise InputError(f"{path} line {number}: caption list is not valid JSON ({e.msg})") from e
        caption = _best_caption(value)
        if caption is None or not key.strip():
            raise InputError(f"{path} line {number}: missing image id or caption")
        captions[normalize_image_id(key)] = caption
    return captions


def _caption_row(row: Any, where: str) -> tuple[str, str]:
    if not isinstance(row, Mapping):
        raise InputError(f"{where}: expected an object with image_id and caption")
    key = next((row[k] for k in _ID_KEYS if row.get(k) not in (None, "")), None)
    caption = _best_caption(row.get("caption", row.get("captions")))
    if key is None or caption is None:
        raise InputError(f"{where}: needs an id ('image_id', 'img_id' or 'id') and a 'caption'"
                         f" (or 'captions'); found keys: {', '.join(map(str, row)) or 'none'}")
    return normalize_image_id(key), caption


def _captions_from_jsonl(text: str, path: Path) -> Captions:
    captions = Captions()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {number}: not valid JSON ({e.msg}, column {e.colno})") from e
        if isinstance(row, Mapping) and (CAPTIONS_MARK in row or ERROR_KEY in row):
            continue
        key, caption = _caption_row(row, f"{path} line {number}")
        if row.get(QUESTION_KEY) not in (None, ""):
            captions.by_question[str(row[QUESTION_KEY])] = caption
        else:
            captions[key] = caption
    return captions


def _captions_from_json(data: Any, path: Path) -> dict[str, str]:
    if isinstance(data, Mapping) and (CAPTIONS_MARK in data or ERROR_KEY in data):
        return {}  # a pica caption file holding its mark (or one error row) alone
    if isinstance(data, Mapping) and isinstance(data.get("annotations"), list):
        captions: dict[str, str] = {}
        for i, row in enumerate(data["annotations"]):
            key, caption = _caption_row(row, f"{path} annotations[{i}]")
            captions.setdefault(key, caption)
        return captions
    if isinstance(data, Mapping) and any(k in data for k in _ID_KEYS) and (
            "caption" in data or "captions" in data):
        return dict([_caption_row(data, str(path))])  # a one-line JSONL file
    if isinstance(data, Mapping):
        captions = {}
        for key, value in data.items():
            caption = _best_caption(value)
            if caption is None:
                raise InputError(f"{path}: caption of image '{key}' is not text")
            captions[normalize_image_id(key)] = caption
        return captions
    if isinstance(data, list):
        return dict(_caption_row(row, f"{path}[{i}]") for i, row in enumerate(data))
    raise InputError(f"{path}: expected a JSON object {{image_id: caption}} or a list of objects")


def _captions_from_csv(path: Path) -> dict[str, str]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as e:
        raise InputError(f"{path} is not a readable CSV file: {' '.join(str(e).split())}") from e
    columns = {str(c).strip().lower(): c for c in frame.columns}
    id_col = next((columns[k] for k in _ID_KEYS if k in columns), None)
    if id_col is None or "caption" not in columns:
        raise InputError(f"{path} needs columns image_id (or id / img_id) and caption;"
                         f" found: {', '.join(map(str, frame.columns))}")
    captions: dict[str, str] = {}
    for number, (key, caption) in enumerate(zip(frame[id_col], frame[columns["caption"]], strict=True), 2):
        if not key.strip() or not caption.strip():
            raise InputError(f"{path} line {number}: missing image id or caption")
        captions[normalize_image_id(key)] = caption.strip()
    return captions
