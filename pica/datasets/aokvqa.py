"""A-OKVQA reader: JSON lists with ``question_id``, ``image_id``, ``question``, ``direct_answers``,
``choices``, ``correct_choice_idx``, ``difficult_direct_answer`` and ``rationales``.

Image ids are COCO 2017 ids (numbers); they match image files named ``000000xxxxxx.jpg`` (COCO
2017) as well as ``COCO_val2014_000000xxxxxx.jpg`` (see :func:`~pica.datasets.normalize_image_id`).
"""

from __future__ import annotations

from pathlib import Path

from pica.datasets.images import maybe_attach
from pica.datasets.okvqa import expect_list, from_rows
from pica.datasets.rows import QuestionList, read_json


def read_aokvqa(path: str | Path, images_dir: Path | None = None,
                skip_missing: bool = False) -> QuestionList:
    """Read an A-OKVQA JSON list.

    ``direct_answers`` become the answers; ``choices``, ``correct_choice_idx``,
    ``difficult_direct_answer`` and ``rationales`` are kept on each question, which is scored the
    official A-OKVQA way (``Question.scoring == "aokvqa"``).

    Raises:
        InputError: Missing/empty/malformed file, wrong structure, duplicate ids, missing images,
            malformed choices or a ``correct_choice_idx`` out of range.
    """
    path, data = read_json(path, "dataset")
    rows = expect_list(data, path, "A-OKVQA rows with question_id, image_id, question")
    return maybe_attach(from_rows(rows, path, "question"), images_dir, skip_missing)
