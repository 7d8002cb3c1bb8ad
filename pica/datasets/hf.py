"""Questions from Hugging Face ``datasets``: a ``save_to_disk`` folder, local data files or a hub name.

Images stay in the dataset and are decoded lazily, one row at a time. ``datasets`` is an optional
dependency (``pip install 'pica[hf]'``), imported only when a dataset is read.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pica.datasets.rows import DatasetSource, QuestionList, check_questions, question_from_row
from pica.datasets.scienceqa import is_scienceqa_columns, read_captions_json, read_hf_scienceqa
from pica.errors import InputError

REGISTER = {"dataset": {"hf": "HFDataset"}}

_HF_FIELDS = ("question", "sent", "question_id", "id", "image_id", "img_id", "answers",
              "direct_answers", "label", "category", "class", "question_type")


class HFDataset(DatasetSource):
    """A Hugging Face dataset: hub name, save_to_disk folder or data files (--hf-dataset, --split)."""

    fields = ("hf_dataset", "scienceqa_captions")
    usage = "--hf-dataset NAME_OR_DIR [--split SPLIT]"

    @classmethod
    def read(cls, values, split, image_column) -> QuestionList:
        """:func:`read_hf_dataset` of ``values["hf_dataset"]``."""
        return read_hf_dataset(values["hf_dataset"], split, image_column,
                               scienceqa_captions=values.get("scienceqa_captions"))

    @classmethod
    def identity(cls, values, split) -> dict[str, str]:
        """The split (a hub dataset has no digest: its name and split identify it)."""
        return {"split": split} if split else {}


def read_hf_dataset(name_or_path: str | Path, split: str | None = "train",
                    image_column: str | None = None,
                    scienceqa_captions: str | Path | None = None) -> QuestionList:
    """Read a Hugging Face dataset: a ``save_to_disk`` folder, local data files, or a hub name.

    Columns are found by name: question (``question``/``sent``), id (``question_id``/``id``,
    else the row index), image id (``image_id``/``img_id``), answers (``answers`` as strings or
    objects with ``answer``/``raw_answer``, A-OKVQA ``direct_answers``, or an LXMERT ``label``).
    The image column (``image_column``, else ``image``, else the first ``Image`` feature) becomes
    ``Question.image``, a callable that decodes that one row's image when called; a text column
    of file paths becomes ``Question.image_path``. A dataset with ScienceQA's columns
    (``derek-thomas/ScienceQA``, ``lmms-lab/ScienceQA``) is read as ScienceQA problems
    (:func:`pica.datasets.scienceqa.read_hf_scienceqa`, captions from ``scienceqa_captions``).

    Raises:
        InputError: ``datasets`` missing, dataset/split not loadable (offline?), no question column.
    """
    ds, source, base = _load_hf(name_or_path, split)
    columns = list(ds.column_names)
    if is_scienceqa_columns(columns):
        captions = read_captions_json(scienceqa_captions) if scienceqa_captions else None
        return read_hf_scienceqa(ds, source, split, captions)
    if not any(c in columns for c in ("question", "sent")):
        raise InputError(f"{source} has no question column ('question' or 'sent');"
                         f" columns: {', '.join(columns)}")
    image_col = _hf_image_column(ds, image_column, source)
    keep = [c for c in _HF_FIELDS if c in columns and c != image_col]
    rows = ds.select_columns(keep).to_list()
    questions = [question_from_row(r, i, f"{source} row {i}") for i, r in enumerate(rows)]
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
    return check_questions(questions, source)


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
