"""Captioners: the text description of an image that the LLM reads.

- :class:`HFCaptioner` — any Hugging Face image-to-text checkpoint (BLIP, GIT, BLIP-2 ...) by hub
  id or local folder. In question-aware mode (PromptCap-style) the question goes into the text
  prompt and the model continues it; the prompt is stripped from the output.
- :class:`CachedCaptioner` — captions precomputed per image id (PICa TSV, JSONL, CSV, JSON).

:func:`make_captioner` picks one from a spec string and builds it once per process.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from pica.config import DEFAULT_CAPTIONER, PROMPTCAP_PROMPT
from pica.errors import InputError, ModelLoadError
from pica.hub import (
    auto_model,
    auto_processor,
    first_line,
    hub_cached,
    hub_offline,
    hub_reachable,
    looks_like_path,
    quiet_transformers,
    require,
)
from pica.registry import resolve
from pica.types import Question

CAPTION_FILE_SUFFIXES = (".tsv", ".jsonl", ".csv", ".json")
LOAD_HINT = "pass --caption TEXT, cached captions (--captions FILE) or a local model folder"


class Captioner(ABC):
    """Turns the images of questions into one-line captions.

    Attributes:
        id: Names the captioner in run configs (``hf:MODEL`` or ``cache:FILE``).
        reads_pixels: Whether :meth:`caption` looks at the images (a model) or only at the
            questions' image ids (cached captions); callers load images only for the former.
    """

    id: str
    reads_pixels: bool = True

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


class HFCaptioner(Captioner):
    """A Hugging Face image-to-text model (CPU or GPU) with greedy, batched decoding.

    Args:
        model: Hub id (e.g. ``Salesforce/blip-image-captioning-base``) or local model folder.
        question_aware: Condition each caption on its question (PromptCap-style).
        prompt: Text prompt of question-aware mode; ``{question}`` is filled in.
        max_new_tokens: Caption length limit in tokens.
        batch_size: Images per ``generate`` call.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (see :mod:`pica.devices`).
        dtype: ``auto`` (float16 on a GPU, float32 on the CPU), ``float32``, ``float16``, ``bfloat16``.

    Raises:
        ModelLoadError: The model cannot be loaded (missing folder, no config, unknown hub id,
            offline hub).
        InputError: ``prompt`` has no ``{question}`` placeholder in question-aware mode.
    """

    def __init__(
        self,
        model: str = DEFAULT_CAPTIONER,
        question_aware: bool = False,
        prompt: str = PROMPTCAP_PROMPT,
        max_new_tokens: int = 30,
        batch_size: int = 8,
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        from pica.devices import resolve_device, resolve_dtype

        if question_aware:
            try:
                filled = prompt.format(question="\0")
            except (KeyError, IndexError, ValueError) as e:
                raise InputError(
                    f"caption prompt '{prompt}' is not a valid template ({e}); use {{question}} only"
                ) from e
            if "\0" not in filled:
                raise InputError(f"caption prompt '{prompt}' must contain {{question}}")
        if max_new_tokens < 1 or batch_size < 1:
            raise InputError("captioner max_new_tokens and batch_size must be at least 1")
        self.question_aware = question_aware
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.processor, self.tokenizer, self.model, name = self._load(model, self.dtype)
        self.model.to(self.device)
        self.image_processor = getattr(self.processor, "image_processor", self.processor)
        self.model_type = getattr(self.model.config, "model_type", "")
        self.id = f"hf:{name}"
        if question_aware and not hasattr(self.processor, "tokenizer"):
            raise InputError(
                f"captioner '{model}' ({self.model_type}) takes no text prompt; question-aware"
                " captioning needs a model like BLIP, GIT or BLIP-2"
            )

    @staticmethod
    def _load(model: str, dtype):
        """Return ``(processor, tokenizer, model, name)``; ``name`` is the hub id or resolved folder."""
        require("transformers", "captioning images")
        quiet_transformers()
        if looks_like_path(model):
            path = Path(model).expanduser()
            if not path.is_dir():
                raise ModelLoadError(f"captioner model folder not found: {path}; {LOAD_HINT}")
            if not (path / "config.json").is_file():
                raise ModelLoadError(
                    f"captioner folder {path} has no config.json (not a Hugging Face model folder);"
                    f" {LOAD_HINT}"
                )
            source = name = str(path.resolve())
            attempts = [True]
        else:
            source = name = model
            offline = hub_offline()
            if hub_cached(model):
                attempts = [True] if offline else [True, False]
            elif offline:
                raise ModelLoadError(
                    f"captioner '{model}' is neither a model folder nor in the local Hugging Face"
                    f" cache, and the hub is offline (HF_HUB_OFFLINE is set); {LOAD_HINT}"
                )
            elif not hub_reachable():
                raise ModelLoadError(
                    f"captioner '{model}' is neither a model folder nor in the local Hugging Face"
                    f" cache, and the hub cannot be reached; {LOAD_HINT}"
                )
            else:
                attempts = [False]
        error: Exception | None = None
        for local_only in attempts:
            try:
                processor, tokenizer = auto_processor(source, local_only)
                net = auto_model(source, local_only, dtype)
                return processor, tokenizer, net.eval(), name
            except Exception as e:  # missing files, unknown architecture, network: "cannot load"
                error = e
        raise ModelLoadError(
            f"could not load captioner '{model}': {first_line(error)}; {LOAD_HINT}"
        ) from error

    def caption(self, questions: Sequence[Question], images: Sequence | None = None) -> list[str]:
        """Caption each question's image; in question-aware mode the question goes into the prompt.

        Raises:
            InputError: a question has no image.
        """
        pictures = list(images) if images is not None else [None] * len(questions)
        if len(pictures) != len(questions):
            raise ValueError(f"got {len(pictures)} images for {len(questions)} questions")
        for i, q in enumerate(questions):
            if pictures[i] is None:
                pictures[i] = q.load_image()
            if pictures[i] is None:
                raise InputError(f"question {q.id} has no image and no caption;"
                                 " pass an image, --caption TEXT or a captions file")
        texts = [q.question for q in questions] if self.question_aware else None
        return self.caption_images(pictures, texts)

    def preprocess(self, image):
        """The model's pixel tensor for one PIL image (CPU, float32): what the processor makes of
        it in a batch, computed alone so loader threads can do it ahead of the model."""
        from pica.images import to_rgb

        return self.image_processor(images=[to_rgb(image)], return_tensors="pt")["pixel_values"][0]

    def caption_images(self, images: Sequence, questions: Sequence[str] | None = None) -> list[str]:
        """Caption PIL images (or their :meth:`preprocess` tensors); in question-aware mode
        ``questions`` is required (one per image).

        Raises:
            InputError: questions missing or of the wrong length in question-aware mode.
        """
        prompts: list[str] | None = None
        if self.question_aware:
            if questions is None:
                raise InputError("question-aware captioning needs one question per image")
            if len(questions) != len(images):
                raise InputError(
                    f"question-aware captioning got {len(images)} images but {len(questions)} questions"
                )
            prompts = [self.prompt.format(question=q) for q in questions]
        captions = [""] * len(images)
        for batch in self._batches(prompts, len(images)):
            batch_prompts = None if prompts is None else [prompts[i] for i in batch]
            texts = self._generate([images[i] for i in batch], batch_prompts)
            for i, text in zip(batch, texts, strict=True):
                captions[i] = text
        return captions

    def _prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a text prompt as the model expects them."""
        tokenizer = self.tokenizer
        if self.model_type == "git":
            # GIT continues [CLS] + prompt; a trailing [SEP] would end the caption at once.
            return [tokenizer.cls_token_id, *tokenizer(prompt, add_special_tokens=False)["input_ids"]]
        # BLIP wants [CLS] prompt [SEP]: it swaps [CLS] for its decoder BOS and drops the last token.
        return list(tokenizer(prompt)["input_ids"])

    def _batches(self, prompts: list[str] | None, count: int) -> list[list[int]]:
        """Index batches. Prompts are grouped by token length so no batch needs padding (BLIP
        drops the *last* token of each prompt, which padding would make a pad token)."""
        if prompts is None:
            groups = [list(range(count))]
        else:
            by_length: dict[int, list[int]] = {}
            for i, prompt in enumerate(prompts):
                by_length.setdefault(len(self._prompt_ids(prompt)), []).append(i)
            groups = list(by_length.values())
        size = self.batch_size
        return [group[i : i + size] for group in groups for i in range(0, len(group), size)]

    def _generate(self, images: list, prompts: list[str] | None) -> list[str]:
        import torch

        from pica.devices import to_device

        pixels = [im if isinstance(im, torch.Tensor) else self.preprocess(im) for im in images]
        inputs = {"pixel_values": torch.stack(pixels)}
        if prompts is not None and self.model_type == "git":
            inputs["input_ids"] = torch.tensor([self._prompt_ids(p) for p in prompts])
            inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        elif prompts is not None:
            inputs.update(self.processor(text=prompts, return_tensors="pt", padding=True))
        inputs.pop("token_type_ids", None)
        with torch.inference_mode():
            output = self.model.generate(
                **to_device(inputs, self.device, self.dtype), max_new_tokens=self.max_new_tokens,
                do_sample=False, num_beams=1,
            )
        texts = self.tokenizer.batch_decode(output.cpu(), skip_special_tokens=True)
        if prompts is None:
            return [one_line(t) for t in texts]
        tokenizer = self.tokenizer
        return [
            # The decoded prompt (lowercased, unknown words dropped) first, then the prompt as given.
            strip_prompt(text, tokenizer.decode(self._prompt_ids(p), skip_special_tokens=True), p)
            for text, p in zip(texts, prompts, strict=True)
        ]


class CachedCaptioner(Captioner):
    """Captions precomputed per image id, read by :func:`pica.datasets.read_captions`.

    Args:
        path: A PICa-style TSV (``image_id<TAB>[{"caption": ...}]``), JSONL, CSV or JSON file.

    Raises:
        InputError: the file is missing or unreadable.
    """

    def __init__(self, path: str | Path) -> None:
        from pica.datasets import read_captions

        self.path = Path(path)
        self.captions: dict[str, str] = read_captions(self.path)
        self.id = f"cache:{self.path.name}"

    reads_pixels = False

    def caption(self, questions: Sequence[Question], images: Sequence | None = None) -> list[str]:
        """The cached caption of each question's image id (``COCO_val2014_000…42`` = ``42``).

        Raises:
            InputError: some questions have no cached caption; names how many and the first few.
        """
        self.check(questions)
        return [one_line(self.captions[self._key(q)]) for q in questions]

    def check(self, questions: Sequence[Question]) -> None:
        """Raise ``InputError`` if some questions' image ids have no caption in the file."""
        missing = [q.image_id or q.id for q in questions if self._key(q) not in self.captions]
        if missing:
            raise InputError(
                f"{len(missing)} of {len(questions)} image ids have no caption in {self.path}"
                f" (first: {', '.join(map(str, missing[:5]))}); use a captions file that covers them"
                " or a captioner model"
            )

    @staticmethod
    def _key(question: Question) -> str:
        from pica.datasets import normalize_image_id

        return normalize_image_id(question.image_id or question.id)


def is_captions_file(spec: str) -> bool:
    """Whether ``spec`` names a captions file (by its extension) rather than a captioner model."""
    path = Path(spec).expanduser()
    return path.suffix.lower() in CAPTION_FILE_SUFFIXES and not path.is_dir()


@functools.lru_cache(maxsize=4)
def make_captioner(
    spec: str, question_aware: bool = False, prompt: str = PROMPTCAP_PROMPT,
    device: str = "auto", dtype: str = "auto",
) -> Captioner:
    """Build (once per process) the captioner named by ``spec``.

    Args:
        spec: A captions file (``.tsv``/``.jsonl``/``.csv``/``.json``) -> :class:`CachedCaptioner`;
            anything else is a hub id or model folder -> :class:`HFCaptioner`.
        question_aware: Question-aware captioning (HF models only).
        prompt: The question-aware text prompt.
        device: Where a model runs (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
        dtype: The model's floating-point type (``auto`` = float16 on a GPU, else float32).

    Raises:
        InputError: a captions file that does not exist, a device torch cannot see.
        ModelLoadError: the model cannot be loaded.
    """
    if is_captions_file(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise InputError(f"captions file not found: {path}")
        return resolve("captioner", "cache")(path)
    return resolve("captioner", "hf")(spec, question_aware=question_aware, prompt=prompt,
                                      device=device, dtype=dtype)
