"""Captioning: the text description of an image that the LLM reads.

- :class:`~pica.caption.base.Captioner`: the interface, ``caption(questions, images=None)``.
- :class:`~pica.caption.hf.HFCaptioner`: any Hugging Face image-to-text checkpoint, question-aware
  on request (PromptCap-style).
- :class:`~pica.caption.cached.CachedCaptioner`: captions precomputed per image id (or per
  question id, for question-aware files).
- :class:`~pica.caption.openai_vision.OpenAICaptioner`: a vision-language model on any
  OpenAI-compatible server (vLLM, llama-server, hosted APIs).
- :class:`~pica.caption.gguf.GGUFCaptioner`: a local GGUF vision-language model + mmproj.
- :mod:`~pica.caption.job`: ``pica caption``, a resumable captions-file job.

:func:`make_captioner` picks one from a spec string (through :data:`pica.registry.CAPTIONERS`) and
builds it once per process.
"""

from __future__ import annotations

import functools
from pathlib import Path

from pica.caption.base import Captioner
from pica.config import DEFAULT_API_KEY_ENV, DEFAULT_CAPTION_MAX_SIDE, PROMPTCAP_PROMPT
from pica.errors import InputError
from pica.registry import resolve

CAPTION_FILE_SUFFIXES = (".tsv", ".jsonl", ".csv", ".json")

__all__ = ["CAPTION_FILE_SUFFIXES", "Captioner", "captioner_from_settings", "is_captions_file",
           "make_captioner"]


def is_captions_file(spec: str) -> bool:
    """Whether ``spec`` names a captions file (by its extension) rather than a captioner model."""
    path = Path(spec).expanduser()
    return path.suffix.lower() in CAPTION_FILE_SUFFIXES and not path.is_dir()


@functools.lru_cache(maxsize=4)
def make_captioner(
    spec: str, question_aware: bool = False, prompt: str = PROMPTCAP_PROMPT,
    device: str = "auto", dtype: str = "auto", *, api_base: str | None = None,
    api_key_env: str = DEFAULT_API_KEY_ENV, mmproj: str | None = None,
    max_side: int = DEFAULT_CAPTION_MAX_SIDE, concurrency: int = 1, threads: int | None = None,
    n_gpu_layers: int | None = None, api_limits: tuple[tuple[str, float], ...] = (),
) -> Captioner:
    """Build (once per process) the captioner named by ``spec``.

    Args:
        spec: A captions file (``.tsv``/``.jsonl``/``.csv``/``.json``) -> :class:`CachedCaptioner`;
            ``openai:MODEL`` -> a served vision-language model (:class:`OpenAICaptioner`);
            ``gguf:PATH_OR_HF_ID`` -> a local GGUF vision model (:class:`GGUFCaptioner`, needs
            ``mmproj``); ``hf:MODEL`` or anything else -> :class:`HFCaptioner` (hub id or folder).
        question_aware: Question-aware captioning (PromptCap-style).
        prompt: The question-aware text prompt (vision-language models: only when changed from the
            default, else the template ``pica/templates/caption/instructions.toml``).
        device: Where an HF model runs (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
        dtype: The HF model's floating-point type (``auto`` = float16 on a GPU, else float32).
        api_base: Server of an ``openai:`` captioner.
        api_key_env: Environment variable holding its API key.
        mmproj: Vision projector of a ``gguf:`` captioner.
        max_side: Longest image side sent to a vision-language model.
        concurrency: Requests in flight of an ``openai:`` captioner.
        threads: CPU threads of a ``gguf:`` captioner.
        n_gpu_layers: GPU layers of a ``gguf:`` captioner.
        api_limits: ``(name, value)`` pairs for an ``openai:`` captioner's client: ``timeout``,
            ``max_retries``, ``wait`` (``--api-timeout``, ``--api-retries``, ``--api-wait``).

    Raises:
        InputError: a captions file that does not exist, a device torch cannot see, a missing
            API base or projector.
        ModelLoadError: the model cannot be loaded.
    """
    if is_captions_file(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise InputError(f"captions file not found: {path}")
        return resolve("captioner", "cache")(path)
    kind, sep, name = spec.partition(":")
    vlm_prompt = None if prompt == PROMPTCAP_PROMPT else prompt
    if sep and kind == "openai":
        return resolve("captioner", "openai")(name, api_base=api_base, api_key_env=api_key_env,
                                              question_aware=question_aware, prompt=vlm_prompt,
                                              max_side=max_side, concurrency=concurrency,
                                              **dict(api_limits))
    if sep and kind == "gguf":
        return resolve("captioner", "gguf")(name, mmproj=mmproj, question_aware=question_aware,
                                            prompt=vlm_prompt, max_side=max_side, threads=threads,
                                            n_gpu_layers=n_gpu_layers)
    if sep and kind == "hf":
        spec = name
    return resolve("captioner", "hf")(spec, question_aware=question_aware, prompt=prompt,
                                      device=device, dtype=dtype)


def captioner_from_settings(settings, concurrency: int | None = None) -> Captioner:
    """The captioner ``settings`` describe (``captioner_api_base`` falls back to ``api_base``).

    Args:
        settings: A :class:`pica.config.Settings`.
        concurrency: Requests in flight of an API captioner (default ``settings.concurrency``).
    """
    s = settings
    return make_captioner(s.captioner, question_aware=s.question_aware, prompt=s.caption_prompt,
                          device=s.device, dtype=s.dtype,
                          api_base=s.captioner_api_base or s.api_base, api_key_env=s.api_key_env,
                          mmproj=s.mmproj, max_side=s.caption_max_side,
                          concurrency=concurrency or s.concurrency, threads=s.threads,
                          n_gpu_layers=s.n_gpu_layers, api_limits=api_limits(s))


def api_limits(settings) -> tuple[tuple[str, float], ...]:
    """The API client limits ``settings`` set (``--api-timeout``, ``--api-retries``, ``--api-wait``),
    as hashable pairs for :func:`make_captioner`."""
    limits = [("max_retries", settings.api_retries), ("wait", settings.api_wait)]
    if settings.api_timeout:
        limits.append(("timeout", settings.api_timeout))
    return tuple(limits)
