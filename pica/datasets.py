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
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pica.answers import normalize_answer
from pica.errors import InputError
from pica.types import Question

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# "COCO_val2014_000000297147", "val2014_000000297147", "000000297147", "297147".
_NUMERIC_ID = re.compile(r"(?:COCO_)?(?:[A-Za-z-]+\d{4}_)?(\d+)", re.IGNORECASE)
_ID_KEYS = ("image_id", "img_id", "id")
_HF_FIELDS = ("question", "sent", "question_id", "id", "image_id", "img_id", "answers",
              "direct_answers", "label", "category", "class", "question_type")
_SOURCES_HELP = ("--dataset FILE (LXMERT / A-OKVQA / VQA JSON, or an HF dataset folder),"
                 " --questions FILE [--annotations FILE] (official VQA / OK-VQA),"
                 " --aokvqa FILE, or --hf-dataset NAME_OR_DIR [--split SPLIT]")


class QuestionList(list[Question]):
    """A list of questions that also records where they came from.

    Attributes:
        source: The file, folder or dataset name the questions were read from.
        skipped: Ids of questions dropped because their image file was missing
            (``skip_missing=True``); empty otherwise.
    """

    def __init__(self, items: Iterable[Question] = (), *, source: str = "",
                 skipped: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.source = source
        self.skipped = list(skipped)


def normalize_image_id(value: str | int) -> str:
    """Canonical form of an image id, used wherever ids are compared.

    COCO names, zero-padded ids and image file names map to the bare number
    (``"COCO_val2014_000000297147"``, ``"000000297147.jpg"``, ``297147`` -> ``"297147"``);
    any other string is returned stripped but otherwise unchanged.

    Raises:
        InputError: ``value`` is ``None``.
    """
    if value is None:
        raise InputError("an image id is missing; every question needs an image_id")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    name = re.split(r"[\\/]", text)[-1]
    stem, ext = os.path.splitext(name)
    if ext.lower() in IMAGE_EXTENSIONS:
        name = stem
    match = _NUMERIC_ID.fullmatch(name)
    return str(int(match.group(1))) if match else text


# ---------------------------------------------------------------------------------------------
# File helpers


def _existing_file(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{what} file not found: {path}")
    if not path.is_file():
        raise InputError(f"{what} path is a folder, expected a file: {path}")
    return path


def _read_text(path: str | Path, what: str) -> tuple[Path, str]:
    path = _existing_file(path, what)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from e
    if not text.strip():
        raise InputError(f"{what} file is empty: {path}")
    return path, text


def _parse_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e


def _read_json(path: str | Path, what: str) -> tuple[Path, Any]:
    path, text = _read_text(path, what)
    return path, _parse_json(text, path)


# ---------------------------------------------------------------------------------------------
# Captions


def read_captions(path: str | Path) -> dict[str, str]:
    """Read cached captions keyed by :func:`normalize_image_id`.

    Formats, chosen by extension (else sniffed from the content):

    - ``.tsv``: PICa style ``image_id<TAB>[{"caption": ..., "conf": ...}, ...]`` (the most
      confident caption wins) or ``image_id<TAB>caption``; an ``image_id`` header line is skipped.
    - ``.jsonl``: one object per line with ``image_id``/``img_id``/``id`` and ``caption`` (or a
      ``captions`` list, first taken).
    - ``.csv``: columns ``image_id`` (or ``id``/``img_id``) and ``caption``.
    - ``.json``: ``{image_id: caption}``, a list of JSONL-like objects, or COCO captions
      (``{"annotations": [{"image_id", "caption"}]}``, first caption per image).

    A later entry for the same image replaces an earlier one.

    Raises:
        InputError: Missing or empty file, malformed line (with its number), missing columns,
            unrecognisable format.
    """
    path, text = _read_text(path, "captions")
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("tsv", "jsonl", "csv", "json"):
        kind = _sniff_captions(text, path)
    if kind == "json":
        try:
            captions = _captions_from_json(json.loads(text), path)
        except json.JSONDecodeError as e:
            if e.msg != "Extra data":  # JSONL parses as JSON up to the end of its first line
                _parse_json(text, path)  # raises the InputError with the error position
            captions = _captions_from_jsonl(text, path)
    elif kind == "jsonl":
        captions = _captions_from_jsonl(text, path)
    elif kind == "tsv":
        captions = _captions_from_tsv(text, path)
    else:
        captions = _captions_from_csv(path)
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


def _captions_from_jsonl(text: str, path: Path) -> dict[str, str]:
    captions: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {number}: not valid JSON ({e.msg}, column {e.colno})") from e
        key, caption = _caption_row(row, f"{path} line {number}")
        captions[key] = caption
    return captions


def _captions_from_json(data: Any, path: Path) -> dict[str, str]:
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


def _question_from_row(row: Any, index: int, where: str) -> Question:
    """Build a Question from any supported row shape; ``where`` names the row in errors."""
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
    return Question(
        id=str(index) if qid is None else str(qid),
        question=text.strip(),
        image_id=None if image_id in (None, "") else normalize_image_id(image_id),
        answers=answers,
        raw_answers=raw_answers,
        label=_parse_label(row.get("label"), where),
        category=None if category is None else str(category),
        question_type=None if question_type is None else str(question_type),
    )


def _check(questions: list[Question], source: str) -> QuestionList:
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


def _expect_list(data: Any, path: Path, fmt: str) -> list[Any]:
    if not isinstance(data, list):
        raise InputError(f"{path} should hold a JSON list ({fmt}), found a {type(data).__name__}")
    return data


def _from_rows(rows: list[Any], path: Path, required: str) -> QuestionList:
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or required not in row:
            raise InputError(f"{path}[{i}]: missing '{required}' field")
    return _check([_question_from_row(r, i, f"{path}[{i}]") for i, r in enumerate(rows)], str(path))


# ---------------------------------------------------------------------------------------------
# JSON readers


def read_lxmert(path: str | Path, images_dir: Path | None = None,
                skip_missing: bool = False) -> QuestionList:
    """Read an LXMERT style JSON list (``sent``, ``question_id``, ``img_id``, ``label``, ``class``).

    ``class`` becomes the category (as text); gold answers are the soft ``label``.
    With ``images_dir``, see :func:`attach_images`.

    Raises:
        InputError: Missing/empty/malformed file, wrong structure, duplicate ids, missing images.
    """
    path, data = _read_json(path, "dataset")
    rows = _expect_list(data, path, "LXMERT rows with sent, question_id, img_id, label")
    return _maybe_attach(_from_rows(rows, path, "sent"), images_dir, skip_missing)


def read_aokvqa(path: str | Path, images_dir: Path | None = None,
                skip_missing: bool = False) -> QuestionList:
    """Read an A-OKVQA JSON list; ``direct_answers`` become the answers (choices are ignored).

    Raises:
        InputError: Missing/empty/malformed file, wrong structure, duplicate ids, missing images.
    """
    path, data = _read_json(path, "dataset")
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
    qpath, qdata = _read_json(questions_path, "questions")
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
        apath, adata = _read_json(annotations_path, "annotations")
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
        rows.append(_question_from_row(row, i, f"{qpath} questions[{i}]"))
    if missing:
        raise InputError(f"{len(missing)} questions in {qpath} have no annotation in {annotations_path}"
                         f" (first: {', '.join(missing[:3])}); use the annotations of the same split")
    return _maybe_attach(_check(rows, str(qpath)), images_dir, skip_missing)


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets


def read_hf_dataset(name_or_path: str | Path, split: str | None = "train",
                    image_column: str | None = None) -> QuestionList:
    """Read a Hugging Face dataset: a ``save_to_disk`` folder, local data files, or a hub name.

    Columns are found by name: question (``question``/``sent``), id (``question_id``/``id``,
    else the row index), image id (``image_id``/``img_id``), answers (``answers`` as strings or
    objects with ``answer``/``raw_answer``, A-OKVQA ``direct_answers``, or an LXMERT ``label``).
    The image column (``image_column``, else ``image``, else the first ``Image`` feature) becomes
    ``Question.image``, a callable that decodes that one row's image when called; a text column
    of file paths becomes ``Question.image_path``.

    Raises:
        InputError: ``datasets`` missing, dataset/split not loadable (offline?), no question column.
    """
    ds, source, base = _load_hf(name_or_path, split)
    columns = list(ds.column_names)
    if not any(c in columns for c in ("question", "sent")):
        raise InputError(f"{source} has no question column ('question' or 'sent');"
                         f" columns: {', '.join(columns)}")
    image_col = _hf_image_column(ds, image_column, source)
    keep = [c for c in _HF_FIELDS if c in columns and c != image_col]
    rows = ds.select_columns(keep).to_list()
    questions = [_question_from_row(r, i, f"{source} row {i}") for i, r in enumerate(rows)]
    if image_col is not None:
        import datasets

        images = ds.select_columns([image_col])
        feature = ds.features[image_col]
        if isinstance(feature, datasets.Image):
            for i, q in enumerate(questions):
                q.image = functools.partial(_hf_image, images, image_col, i, source)
        elif getattr(feature, "dtype", None) not in ("string", "large_string"):
            raise InputError(f"column '{image_col}' of {source} holds neither images nor file paths"
                             f" ({feature}); pass the image column's name")
        else:
            for q, value in zip(questions, images[image_col], strict=True):
                if value:
                    path = Path(value)
                    q.image_path = base / path if base is not None and not path.is_absolute() else path
    return _check(questions, source)


def _load_hf(name_or_path: str | Path, split: str | None) -> tuple[Any, str, Path | None]:
    """``(dataset, source name, local folder for relative image paths or None)``."""
    try:
        import datasets
    except ImportError as e:
        raise InputError("reading HF datasets needs the 'datasets' package: pip install 'pica[hf]'") from e
    name = str(name_or_path)
    path = Path(name).expanduser()
    builders = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".json": "json", ".jsonl": "json"}
    try:
        if path.is_dir() and any((path / f).is_file() for f in
                                 ("dataset_info.json", "state.json", "dataset_dict.json")):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise InputError(f"split '{split}' not in {path}; available: {', '.join(ds)}")
                ds = ds[split]
            return ds, str(path), path
        if path.is_file() and path.suffix.lower() in builders:
            ds = datasets.load_dataset(builders[path.suffix.lower()], data_files=str(path), split="train")
            return ds, str(path), path.parent
        if path.exists():
            return datasets.load_dataset(str(path), split=split), str(path), path
        if name.startswith((".", "/", "~")) or name.count("/") > 1 or path.suffix.lower() in builders:
            raise InputError(f"HF dataset folder or file not found: {path}")
        return datasets.load_dataset(name, split=split), name, None
    except InputError:
        raise
    except Exception as e:  # datasets raises many types (ConnectionError, ValueError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"could not load HF dataset '{name}' (split '{split}'): {first};"
                         " offline? save it with save_to_disk and pass the folder") from e


def _hf_image_column(ds: Any, image_column: str | None, source: str) -> str | None:
    import datasets

    if image_column is not None:
        if image_column not in ds.column_names:
            raise InputError(f"image column '{image_column}' not in {source};"
                             f" columns: {', '.join(ds.column_names)}")
        return image_column
    if "image" in ds.column_names:
        return "image"
    return next((c for c, f in ds.features.items() if isinstance(f, datasets.Image)), None)


def _hf_image(images: Any, column: str, row: int, source: str) -> Any:
    value = images[row][column]
    if value is None:
        raise InputError(f"{source} row {row} has no image")
    return value


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
    local, data = _read_json(local, "dataset")
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
