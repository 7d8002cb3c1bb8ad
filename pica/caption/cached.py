"""Captions precomputed per image id (PICa's VinVL TSV, JSONL, CSV, JSON) as a captioner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pica.caption.base import Captioner, one_line
from pica.errors import InputError
from pica.types import Question

REGISTER = {"captioner": {"cache": "CachedCaptioner"}}


class CachedCaptioner(Captioner):
    """Captions precomputed per image id (or per question id: question-aware files), read by
    :func:`pica.datasets.read_captions`.

    Args:
        path: A PICa-style TSV (``image_id<TAB>[{"caption": ...}]``), JSONL, CSV or JSON file.

    Raises:
        InputError: the file is missing or unreadable.
    """

    def __init__(self, path: str | Path) -> None:
        from pica.datasets import read_captions

        self.path = Path(path)
        self.captions = read_captions(self.path)
        self.id = f"cache:{self.path.name}"

    reads_pixels = False

    @classmethod
    def from_settings(cls, name: str, settings=None) -> CachedCaptioner:
        """The captions file ``name`` (``--captioner FILE`` or ``cache:FILE``); reads no settings.

        Raises:
            InputError: the file does not exist.
        """
        path = Path(name).expanduser()
        if not path.is_file():
            raise InputError(f"captions file not found: {path}")
        return cls(path)

    def caption(self, questions: Sequence[Question], images: Sequence | None = None) -> list[str]:
        """The cached caption of each question's image id (``COCO_val2014_000…42`` = ``42``).

        Raises:
            InputError: some questions have no cached caption; names how many and the first few.
        """
        self.check(questions)
        return [one_line(self._find(q)) for q in questions]

    def check(self, questions: Sequence[Question]) -> None:
        """Raise ``InputError`` if some questions' image ids have no caption in the file."""
        missing = [q.image_id or q.id for q in questions if self._find(q) is None]
        if missing:
            raise InputError(
                f"{len(missing)} of {len(questions)} image ids have no caption in {self.path}"
                f" (first: {', '.join(map(str, missing[:5]))}); use a captions file that covers them"
                " or a captioner model"
            )

    def _find(self, question: Question) -> str | None:
        """The question's own (question-aware) caption, else its image's (by normalized id)."""
        return self.captions.find(question.id, question.image_id or question.id)
