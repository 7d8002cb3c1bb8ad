"""Any Hugging Face image-to-text checkpoint (BLIP, GIT, BLIP-2 ...) as a captioner, by hub id or
local folder. In question-aware mode (PromptCap-style) the question goes into the text prompt and
the model continues it; the prompt is stripped from the output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pica.caption.base import LOAD_HINT, Captioner, one_line, strip_prompt
from pica.config import DEFAULT_CAPTIONER, PROMPTCAP_PROMPT
from pica.errors import InputError, ModelLoadError
from pica.types import Question
from pica.util.hub import (
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

REGISTER = {"captioner": {"hf": "HFCaptioner"}}


class HFCaptioner(Captioner):
    """A Hugging Face image-to-text model (CPU or GPU) with greedy, batched decoding.

    Args:
        model: Hub id (e.g. ``Salesforce/blip-image-captioning-base``) or local model folder.
        question_aware: Condition each caption on its question (PromptCap-style).
        prompt: Text prompt of question-aware mode; ``{question}`` is filled in.
        max_new_tokens: Caption length limit in tokens.
        batch_size: Images per ``generate`` call.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (see :mod:`pica.util.devices`).
        dtype: ``auto`` (float16 on a GPU, float32 on the CPU), ``float32``, ``float16``, ``bfloat16``.

    Raises:
        ModelLoadError: The model cannot be loaded (missing folder, no config, unknown hub id,
            offline hub).
        InputError: ``prompt`` has no ``{question}`` placeholder in question-aware mode.
    """

    settings_fields = ("question_aware", "caption_prompt", "device", "dtype")

    @classmethod
    def from_settings(cls, name: str, settings) -> HFCaptioner:
        """The model ``name`` (hub id or folder) with the settings' question-aware mode, prompt,
        device and dtype."""
        return cls(name, question_aware=settings.question_aware, prompt=settings.caption_prompt,
                   device=settings.device, dtype=settings.dtype)

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
        from pica.util.devices import resolve_device, resolve_dtype

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
        from pica.util.images import to_rgb

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

        from pica.util.devices import to_device

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
