"""Captioning: the text description of an image that the LLM reads.

- :class:`~pica.caption.base.Captioner`: the interface, ``caption(questions, images=None)``.
- :class:`~pica.caption.hf.HFCaptioner`: any Hugging Face image-to-text checkpoint, question-aware
  on request (PromptCap-style).
- :class:`~pica.caption.cached.CachedCaptioner`: captions precomputed per image id.

:func:`make_captioner` picks one from a spec string (through :data:`pica.registry.CAPTIONERS`) and
builds it once per process.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pica.caption.base import Captioner
from pica.config import PROMPTCAP_PROMPT
from pica.errors import InputError
from pica.registry import resolve

CAPTION_FILE_SUFFIXES = (".tsv", ".jsonl", ".csv", ".json")

__all__ = ["CAPTION_FILE_SUFFIXES", "Captioner", "is_captions_file", "make_captioner"]


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
