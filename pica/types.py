"""Plain data passed between the stages."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pica.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
# "COCO_val2014_000000297147", "val2014_000000297147", "000000297147", "297147".
_NUMERIC_ID = re.compile(r"(?:COCO_)?(?:[A-Za-z-]+\d{4}_)?(\d+)", re.IGNORECASE)


def normalize_image_id(value: str | int) -> str:
    """Canonical form of an image id, used wherever ids are compared.

    COCO names, zero-padded ids and image file names map to the bare number
    (``"COCO_val2014_000000297147"``, ``"000000297147.jpg"``, ``297147`` -> ``"297147"``); any
    other image file name maps to its stem (``"img00.jpg"``, ``"DIR/img00.png"`` -> ``"img00"``, as
    ``pica caption --images DIR`` keys it); any other string is returned stripped but otherwise
    unchanged.

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
        name = text = stem
    match = _NUMERIC_ID.fullmatch(name)
    return str(int(match.group(1))) if match else text


@dataclass(frozen=True)
class Example:
    """A solved example that can be shown to the LLM in a few-shot prompt.

    Attributes:
        id: Unique id within its index (the dataset's question id, as a string).
        question: The question text.
        answer: The answer shown in the prompt (majority / highest-scored answer).
        caption: Text description of the example's image.
        image_id: Image id in the source dataset, if any.
        answers: Every gold answer with its weight (counts or soft scores), for candidate lists.
        choices: Multiple-choice options (A-OKVQA), shown by templates with ``{choices}``.
        correct_choice_idx: Index of the correct choice in ``choices``, if known.
        rationales: Human rationales (A-OKVQA), shown with ``--rationale``.
        meta: Dataset-specific fields its task's prompts show (ScienceQA: hint, lecture,
            solution, grade, subject).
    """

    id: str
    question: str
    answer: str
    caption: str
    image_id: str | None = None
    answers: dict[str, float] = field(default_factory=dict)
    choices: tuple[str, ...] = ()
    correct_choice_idx: int | None = None
    rationales: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Question:
    """A question to answer, with gold answers when it comes from a dataset.

    Attributes:
        id: Question id (the dataset's, or ``"q"`` for a single CLI question).
        question: The question text.
        image_id: Image id, used to look up cached captions.
        image_path: Path of the image file, when images are available.
        caption: A caption already known for the image (skips the captioner).
        answers: The human answers the official metric scores against (10 in VQA / OK-VQA;
            OK-VQA v1.1's stemmed ``answer`` field), if known.
        raw_answers: The unstemmed answers (OK-VQA v1.1 ``raw_answer``), when they differ.
        label: Soft label ``{answer: score}`` (LXMERT style), if known.
        category: OK-VQA knowledge category, if known.
        question_type: VQA question type, if known.
        image: A zero-argument callable returning a PIL image (e.g. a row of an HF dataset),
            used when there is no ``image_path``.
        choices: Multiple-choice options (A-OKVQA ``choices``); empty when there are none.
        correct_choice_idx: Index of the correct choice in ``choices``, if known.
        difficult: A-OKVQA's ``difficult_direct_answer`` (left out of the direct-answer score).
        rationales: Human rationales (A-OKVQA), if any.
        scoring: How direct answers are scored: ``"vqa"`` (official VQA accuracy or soft label)
            or ``"aokvqa"`` (the official A-OKVQA evaluation, see
            :func:`pica.answers.aokvqa_direct_accuracy`); ``"scienceqa"``: the question is a
            ScienceQA problem (:mod:`pica.tasks.scienceqa`).
        context: Text given with the question (ScienceQA's hint): searched with the question.
        meta: Dataset-specific fields (ScienceQA: hint, lecture, solution, grade, subject, image).
    """

    id: str
    question: str
    image_id: str | None = None
    image_path: Path | None = None
    caption: str | None = None
    answers: list[str] = field(default_factory=list)
    raw_answers: list[str] = field(default_factory=list)
    label: dict[str, float] = field(default_factory=dict)
    category: str | None = None
    question_type: str | None = None
    image: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    choices: list[str] = field(default_factory=list)
    correct_choice_idx: int | None = None
    difficult: bool = False
    rationales: list[str] = field(default_factory=list)
    scoring: str = "vqa"
    context: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def search_text(self) -> str:
        """The text its question vector embeds: the question, then its context when it has one."""
        return f"{self.question} {self.context}".strip() if self.context else self.question

    @classmethod
    def from_image(cls, path: str | Path, question: str, *, caption: str | None = None,
                   id: str = "q") -> Question:
        """A question about one image file; the image id comes from the file name
        (``COCO_val2014_000000297147.jpg`` -> ``297147``), so cached captions are found and the
        index never shows examples of this very picture.

        Raises:
            InputError: the question (or a given caption) is empty.
        """
        from pica.errors import InputError

        if not question or not question.strip():
            raise InputError("the question is empty; ask something about the image")
        if caption is not None and not caption.strip():
            raise InputError("the caption (--caption) is empty; give a caption or leave it out")
        path = Path(path)
        return cls(id=id, question=question.strip(), image_path=path,
                   image_id=normalize_image_id(path.name), caption=caption)

    @classmethod
    def from_input(cls, image: Any, question: str, *, caption: str | None = None,
                   choices: Sequence[str] = (), id: str = "q") -> Question:
        """A question about ``image`` given the way Hugging Face pipelines take one: a file path
        (``str`` or ``Path``; the image id comes from its name, see :meth:`from_image`), a PIL
        image, the bytes of an image file, or ``None`` with a ``caption``. ``choices`` makes it
        multiple choice (A-OKVQA style).

        Raises:
            InputError: an empty question, caption or choice; an image of another type.
        """
        if isinstance(image, str | Path):
            q = cls.from_image(image, question, caption=caption, id=id)
        else:
            q = cls.from_image("image", question, caption=caption, id=id)
            q = replace(q, image_path=None, image_id=None, image=_image_loader(image))
        choices = [str(c).strip() for c in choices]
        if any(not c for c in choices) or len(choices) == 1:
            raise InputError("give at least two non-empty choices (--choices 'red|blue|green';"
                             " in Python choices=[...])")
        return replace(q, choices=choices) if choices else q

    @classmethod
    def from_inputs(cls, image: Any, question: str | Sequence[str], *, caption: Any = None,
                    choices: Sequence[str] = ()) -> Question | list[Question]:
        """:meth:`from_input` for one image and question, or a list of questions for lists of
        images and questions (and captions) of one length, or one question about many images
        (``id`` "0", "1", ...).

        Raises:
            InputError: lists of different lengths, or as :meth:`from_input`.
        """
        if not isinstance(image, list | tuple) and isinstance(question, str):
            return cls.from_input(image, question, caption=caption, choices=choices)
        images = list(image) if isinstance(image, list | tuple) else [image] * len(question)
        asked = [question] * len(images) if isinstance(question, str) else list(question)
        captions = list(caption) if isinstance(caption, list | tuple) else [caption] * len(images)
        if not len(images) == len(asked) == len(captions):
            raise InputError(f"{len(images)} images, {len(asked)} questions and {len(captions)}"
                             " captions: give lists of one length")
        return [cls.from_input(img, q, caption=c, choices=choices, id=str(i))
                for i, (img, q, c) in enumerate(zip(images, asked, captions))]

    @property
    def has_image(self) -> bool:
        """Whether an image can be loaded for this question."""
        return self.image_path is not None or self.image is not None

    def load_image(self):
        """The question's image as RGB PIL, or ``None``. Raises ``InputError`` for bad files."""
        from pica.util.images import load_image, to_rgb

        if self.image_path is not None:
            return load_image(self.image_path)
        if self.image is not None:
            return to_rgb(self.image())
        return None


def _image_loader(image: Any) -> Callable[[], Any] | None:
    """A zero-argument callable returning ``image`` (PIL, or decoded from bytes); ``None`` for none.

    Raises:
        InputError: ``image`` is neither a PIL image nor bytes.
    """
    if image is None:
        return None
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)

        def decode():
            import tempfile

            from pica.util.images import load_image

            fd, name = tempfile.mkstemp(prefix="pica-image-")
            try:  # through a file: load_image's truncation and decompression-bomb guard
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                return load_image(name)
            finally:
                os.unlink(name)

        return decode
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return lambda: image
    raise InputError(f"image must be a file path, a PIL image or bytes, not {type(image).__name__}")


@dataclass(frozen=True)
class Completion:
    """What a backend returned for one prompt.

    Attributes:
        text: The raw completion text.
        logprob: Summed log-probability of the completion tokens (``None`` when the backend
            cannot report log-probs, e.g. a chat-only API).
        prompt_tokens: Number of prompt tokens the backend evaluated or was sent.
        completion_tokens: Number of generated tokens.
    """

    text: str
    logprob: float | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Answer:
    """The final answer to one question, with everything needed to audit it.

    ``examples`` holds the examples of each prompt (in prompt order, like ``example_ids``).
    ``rationale`` is the model's one-sentence reason (``--rationale``), ``mc`` the
    multiple-choice outcome (:class:`pica.tasks.multiple_choice.ChoiceResult` as a dict) when the
    question was asked as multiple choice.
    """

    question_id: str
    question: str
    answer: str
    raw: str
    caption: str
    logprob: float | None
    prompts: list[str]
    example_ids: list[list[str]]
    candidates: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0
    examples: list[list[Example]] = field(default_factory=list, repr=False)
    rationale: str = ""
    mc: dict[str, Any] | None = None

    def to_dict(self, *, llm: str | None = None, index: str | None = None) -> dict[str, Any]:
        """The JSON object of ``pica answer --json`` and of the server's ``POST /v1/answer``.

        Args:
            llm: The backend's id (never a secret).
            index: The index folder, or ``None`` when answering zero-shot.

        Returns:
            answer, raw, caption, logprob, example_ids, examples (id, caption, question, answer per
            example of each prompt), candidates (per completion: answer, raw, logprob; with the
            learned choice, per distinct candidate also greedy, conf, logprob_scored, tokens,
            features, score, and chosen on the winner), prompts, prompt_tokens, seconds per stage
            (rounded to 4 places), llm, index.
        """
        return {
            "answer": self.answer, "raw": self.raw, "caption": self.caption, "logprob": self.logprob,
            "example_ids": self.example_ids,
            "examples": [[{"id": e.id, "caption": e.caption, "question": e.question, "answer": e.answer}
                          for e in part] for part in self.examples],
            "candidates": self.candidates, "prompts": self.prompts,
            "prompt_tokens": self.prompt_tokens,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "llm": llm, "index": index,
            **({"rationale": self.rationale} if self.rationale else {}),
            **({"mc": self.mc} if self.mc is not None else {}),
        }
