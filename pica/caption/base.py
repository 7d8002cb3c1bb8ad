"""The captioner interface: one batched method, ``caption(questions, images=None)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pica.types import Question

if TYPE_CHECKING:
    from pica.config import Settings

LOAD_HINT = "pass --caption TEXT, cached captions (--captions FILE) or a local model folder"


class Captioner(ABC):
    """Turns the images of questions into one-line captions.

    Attributes:
        id: Names the captioner in run configs (``hf:MODEL`` or ``cache:FILE``).
        settings_fields: The :class:`~pica.config.Settings` fields :meth:`from_settings` reads.
        reads_pixels: Whether :meth:`caption` looks at the images (a model) or only at the
            questions' image ids (cached captions); callers load images only for the former.
    """

    id: str
    reads_pixels: bool = True
    # The Settings fields from_settings reads (pica builds one captioner per distinct values).
    settings_fields: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, name: str, settings: Settings) -> Captioner:
        """Build the captioner for ``name`` (what follows ``KIND:`` in ``--captioner``) with the
        options of ``settings`` that concern it (:attr:`settings_fields`)."""
        raise NotImplementedError(f"{cls.__name__} does not say how to build itself from settings")

    @abstractmethod
    def caption(self, questions: Sequence[Question], images: Sequence | None = None) -> list[str]:
        """Caption the image of each question.

        Args:
            questions: The questions; each carries its image (path or loader), image id and text.
            images: The questions' images as PIL images, when the caller already decoded them for
                another stage (one per question, ``None`` where not loaded); else loaded here.

        Returns:
            One stripped, single-line caption per question, in order.

        Raises:
            InputError: a question has no image (or no cached caption) to caption.
        """

    def preprocess(self, image):
        """What :meth:`caption` needs of one decoded image, computed ahead (e.g. in a loader
        thread while the model works on the previous batch); default: the image itself."""
        return image

    def check(self, questions: Sequence[Question]) -> None:
        """Fail early, before a long run, if some questions cannot be captioned (default: no check).

        Raises:
            InputError: naming how many questions cannot be captioned and the first few.
        """


def one_line(text: str) -> str:
    """Collapse all whitespace (newlines included) to single spaces and strip."""
    return " ".join(text.split())


def strip_prompt(text: str, *prompts: str) -> str:
    """Remove the first of ``prompts`` that prefixes ``text``, ignoring case and whitespace.

    Captioners like BLIP and GIT return the text prompt followed by its continuation, and their
    decoders lowercase and re-space it ("question : what"), so the match skips whitespace on both
    sides and compares characters case-insensitively.

    Returns:
        The rest of ``text`` after the prompt as one stripped line, or all of ``text`` (one line)
        when no prompt prefixes it.
    """
    for prompt in prompts:
        wanted = [c.lower() for c in prompt if not c.isspace()]
        if not wanted:
            continue
        matched = 0
        for pos, char in enumerate(text):
            if char.isspace():
                continue
            if char.lower() != wanted[matched]:
                break
            matched += 1
            if matched == len(wanted):
                return one_line(text[pos + 1 :])
    return one_line(text)
