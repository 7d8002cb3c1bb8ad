"""A-OKVQA reader: JSON lists with ``question_id``, ``image_id``, ``question``, ``direct_answers``,
``choices``, ``correct_choice_idx``, ``difficult_direct_answer`` and ``rationales``.

Image ids are COCO 2017 ids (numbers); they match image files named ``000000xxxxxx.jpg`` (COCO
2017) as well as ``COCO_val2014_000000xxxxxx.jpg`` (see :func:`~pica.datasets.normalize_image_id`).
"""

from __future__ import annotations

from pathlib import Path

from pica.datasets.images import maybe_attach
from pica.datasets.okvqa import expect_list, from_rows
from pica.datasets.rows import DatasetSource, QuestionList, read_json

REGISTER = {"dataset": {"aokvqa": "AOKVQA"}}


class AOKVQA(DatasetSource):
    """A-OKVQA (direct answer and multiple choice): its JSON list (--aokvqa FILE)."""

    fields = ("aokvqa",)
    usage = "--aokvqa FILE"
    # Direct answers: pica.answers.aokvqa_direct_accuracy; DA/MC summaries and the official
    # prediction files: pica.tasks.aokvqa.
    metric = "pica.tasks.aokvqa:task_summary"

    @classmethod
    def read(cls, values, split, image_column) -> QuestionList:
        """:func:`read_aokvqa` of ``values["aokvqa"]``."""
        return read_aokvqa(values["aokvqa"])


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
