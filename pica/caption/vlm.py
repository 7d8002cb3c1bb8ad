"""What every vision-language-model captioner shares: the instruction template, the chat message
with the image as a data URL, image downscaling, and parallel requests.

A VLM captioner (:class:`~pica.caption.openai_vision.OpenAICaptioner`,
:class:`~pica.caption.gguf.GGUFCaptioner`) only implements :meth:`VisionChatCaptioner.chat`: one
OpenAI-style message list in, the reply text out.
"""

from __future__ import annotations

import functools
import tomllib
from abc import abstractmethod
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pica.caption.base import Captioner, one_line
from pica.config import DEFAULT_CAPTION_MAX_SIDE as DEFAULT_MAX_SIDE
from pica.config import PROMPTCAP_PROMPT
from pica.errors import BackendError, InputError
from pica.types import Question

CAPTION_TEMPLATE = "caption/instructions.toml"  # beside, not among, the prompt templates

DEFAULT_CAPTION_TOKENS = 80


@functools.lru_cache(maxsize=8)
def caption_instructions(path: str | None = None) -> dict[str, str]:
    """The ``plain`` and ``question_aware`` instructions of a caption template (TOML).

    Args:
        path: A template file; ``None`` = the packaged ``pica/templates/caption/instructions.toml``.

    Raises:
        InputError: the file is missing or not TOML, a key is missing, or ``question_aware`` lacks
            ``{question}``.
    """
    try:
        packaged = resources.files("pica").joinpath("templates", *CAPTION_TEMPLATE.split("/"))
        text = (Path(path) if path is not None else packaged).read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"caption template {path} cannot be read: {e}") from e
    found = {key: data.get(key) for key in ("plain", "question_aware")}
    if not all(isinstance(v, str) and v.strip() for v in found.values()):
        raise InputError(f"caption template {path or CAPTION_TEMPLATE} needs 'plain' and 'question_aware'")
    check_prompt(found["question_aware"])
    return found


def vlm_prompt(prompt: str) -> str | None:
    """The question-aware prompt a vision-language captioner gets from ``caption_prompt``: ``None``
    (its template's instruction) when it is PromptCap's default, else the prompt itself."""
    return None if prompt == PROMPTCAP_PROMPT else prompt


def check_prompt(prompt: str) -> None:
    """Raise ``InputError`` unless ``prompt`` is a format string whose only field is ``{question}``."""
    try:
        filled = prompt.format(question="\0")
    except (KeyError, IndexError, ValueError) as e:
        raise InputError(f"caption prompt '{prompt}' is not a valid template ({e}); use {{question}} only"
                         ) from e
    if "\0" not in filled:
        raise InputError(f"caption prompt '{prompt}' must contain {{question}}")


def vision_messages(instruction: str, image_url: str) -> list[dict[str, Any]]:
    """One user message holding the instruction and the image, in the OpenAI chat-completions
    shape that vLLM, llama-server and llama-cpp-python's chat handlers read:
    ``[{"role": "user", "content": [{"type": "text", ...}, {"type": "image_url", "image_url":
    {"url": "data:image/jpeg;base64,..."}}]}]``."""
    return [{"role": "user", "content": [
        {"type": "text", "text": instruction},
        {"type": "image_url", "image_url": {"url": image_url}},
    ]}]


class VisionChatCaptioner(Captioner):
    """A captioner that asks a vision-language chat model, one image per request.

    Args:
        question_aware: Ask the question-aware instruction (PromptCap-style) with each question.
        prompt: Replaces the template's question-aware instruction (must contain ``{question}``).
        max_side: Longest image side sent, in pixels (larger images are downscaled).
        concurrency: Images captioned at once (requests in flight for a server).

    Raises:
        InputError: ``max_side`` or ``concurrency`` below 1, a prompt without ``{question}``.
    """

    def __init__(self, question_aware: bool = False, prompt: str | None = None,
                 max_side: int = DEFAULT_MAX_SIDE, concurrency: int = 1) -> None:
        if max_side < 16 or concurrency < 1:
            raise InputError("--caption-max-side must be at least 16 and --concurrency at least 1")
        instructions = dict(caption_instructions())
        if prompt is not None:
            check_prompt(prompt)
            instructions["question_aware"] = prompt
        self.instructions = instructions
        self.question_aware = question_aware
        self.max_side = int(max_side)
        self.parallel = int(concurrency)

    @abstractmethod
    def chat(self, messages: list[dict[str, Any]]) -> str:
        """The model's reply to one message list (raises ``BackendError`` on failure)."""

    def instruction(self, question: str | None) -> str:
        """The text sent with an image: the plain instruction, or the question-aware one with
        ``question`` filled in (question-aware mode)."""
        if not self.question_aware:
            return self.instructions["plain"]
        if not question:
            raise InputError("question-aware captioning needs the question")
        return self.instructions["question_aware"].format(question=question)

    def preprocess(self, image) -> str:
        """The image's data URL (downscaled, JPEG), computed in a loader thread ahead of requests."""
        from pica.util.images import image_data_url

        return image_data_url(image, self.max_side)

    def image_url(self, question: Question, image=None) -> str:
        """The data URL of ``question``'s image: ``image`` when already a URL or decoded, else the
        file sent as it is where possible (:func:`pica.util.images.file_data_url`).

        Raises:
            InputError: no image, or a bad image file.
        """
        from pica.util.images import file_data_url

        if isinstance(image, str):
            return image
        if image is not None:
            return self.preprocess(image)
        if question.image_path is not None:
            return file_data_url(question.image_path, self.max_side)
        loaded = question.load_image()
        if loaded is None:
            raise InputError(f"question {question.id} has no image and no caption;"
                             " pass an image, --caption TEXT or a captions file")
        return self.preprocess(loaded)

    def caption_one(self, question: Question, image=None) -> str:
        """Caption one question's image (one request).

        Raises:
            InputError: no image or a bad one.
            BackendError: the model failed or replied with no text.
        """
        url = self.image_url(question, image)
        text = one_line(self.chat(vision_messages(self.instruction(question.question), url)))
        if not text:
            raise BackendError(f"{self.id} returned an empty caption for image"
                               f" {question.image_id or question.id}; check the model serves images")
        return text

    def caption(self, questions: Sequence[Question], images: Sequence | None = None) -> list[str]:
        """Caption each question's image, ``concurrency`` at a time, in input order.

        Raises:
            InputError: a question without an image, a bad image.
            BackendError: a request failed for good or a reply was empty.
        """
        pictures = list(images) if images is not None else [None] * len(questions)
        if len(pictures) != len(questions):
            raise ValueError(f"got {len(pictures)} images for {len(questions)} questions")
        from pica.util.loading import parallel_map

        return parallel_map(self.caption_one, list(zip(questions, pictures, strict=True)),
                            self.parallel, "pica-caption")
