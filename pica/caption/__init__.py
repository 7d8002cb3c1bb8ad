"""Captioning: the text description of an image that the LLM reads.

- :class:`~pica.caption.base.Captioner`: the interface, ``caption(questions, images=None)`` and
  ``from_settings(name, settings)``.
- :class:`~pica.caption.hf.HFCaptioner` (``hf``): any Hugging Face image-to-text checkpoint,
  question-aware on request (PromptCap-style).
- :class:`~pica.caption.cached.CachedCaptioner` (``cache``): captions precomputed per image id
  (or per question id, for question-aware files).
- :class:`~pica.caption.openai_vision.OpenAICaptioner` (``openai``): a vision-language model on
  any OpenAI-compatible server (vLLM, llama-server, hosted APIs).
- :class:`~pica.caption.gguf.GGUFCaptioner` (``gguf``): a local GGUF vision-language model + mmproj.
- :mod:`~pica.caption.job`: ``pica caption``, a resumable captions-file job.

Each captioner declares itself in its module (``REGISTER``, read by :data:`pica.registry.captioners`);
plugins add more through the ``pica.captioners`` entry-point group. :func:`captioner_from_settings`
picks one from ``settings.captioner`` (:func:`captioner_spec`) and builds it once per process.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import OrderedDict
from pathlib import Path

from pica.caption.base import Captioner
from pica.config import DEFAULT_API_KEY_ENV, DEFAULT_CAPTION_MAX_SIDE, FIELDS, PROMPTCAP_PROMPT, Settings
from pica.errors import unknown_name
from pica.registry import captioners, split_spec

CAPTION_FILE_SUFFIXES = (".tsv", ".jsonl", ".csv", ".json")
# The captioner of a spec that names no registered kind: an HF hub id or folder.
DEFAULT_KIND = "hf"
FILE_KIND = "cache"
# What a KIND in KIND:REST looks like (a misspelt one is an error, not an HF model id).
_KIND = re.compile(r"[A-Za-z][\w.-]+")
_BUILT: OrderedDict[tuple, Captioner] = OrderedDict()
_BUILT_MAX = 4
_LOCK = threading.Lock()

__all__ = ["CAPTION_FILE_SUFFIXES", "Captioner", "captioner_from_settings", "captioner_spec",
           "is_captions_file", "make_captioner"]


def is_captions_file(spec: str) -> bool:
    """Whether ``spec`` names a captions file (by its extension) rather than a captioner model."""
    path = Path(spec).expanduser()
    return path.suffix.lower() in CAPTION_FILE_SUFFIXES and not path.is_dir()


def captioner_spec(spec: str) -> tuple[str, str]:
    """``(registry name, rest)`` of a ``--captioner`` value.

    A captions file (by extension) -> ``cache``; ``KIND:REST`` where ``KIND`` is a registered
    captioner (built-in or plugin) -> that one with ``REST``; anything else -> ``hf`` (a hub id or
    a local folder).

    Raises:
        InputError: ``KIND:REST`` with a ``KIND`` that is registered nowhere (did-you-mean, every
            available name).
    """
    if is_captions_file(spec):
        return FILE_KIND, spec
    found = split_spec(spec, "captioner")
    if found is not None:
        return found
    kind, sep, _ = spec.partition(":")
    if sep and _KIND.fullmatch(kind) and not Path(spec).expanduser().exists():
        raise unknown_name("captioner", kind, captioners.names())
    return DEFAULT_KIND, spec


def captioner_from_settings(settings: Settings, concurrency: int | None = None) -> Captioner:
    """The captioner ``settings.captioner`` names, built once per process for the same values of
    the settings it reads (its ``settings_fields``; all of them for a class that does not say).

    Args:
        settings: A :class:`pica.config.Settings`.
        concurrency: Requests in flight of an API captioner (default ``settings.concurrency``).

    Raises:
        InputError: an unknown kind, a captions file that does not exist, a device torch cannot
            see, a missing API base or projector.
        ModelLoadError: the model (or a plugin) cannot be loaded.
    """
    if concurrency is not None and concurrency != settings.concurrency:
        settings = dataclasses.replace(settings, concurrency=concurrency)
    name, rest = captioner_spec(settings.captioner)
    cls = captioners.get(name)
    fields = getattr(cls, "settings_fields", None)
    fields = sorted(FIELDS) if fields is None else fields
    key = (name, rest, repr([(f, getattr(settings, f)) for f in fields]))
    with _LOCK:
        if key in _BUILT:
            _BUILT.move_to_end(key)
            return _BUILT[key]
    built = cls.from_settings(rest, settings)
    with _LOCK:
        _BUILT[key] = built
        while len(_BUILT) > _BUILT_MAX:
            _BUILT.popitem(last=False)
    return built


def make_captioner(
    spec: str, question_aware: bool = False, prompt: str = PROMPTCAP_PROMPT,
    device: str = "auto", dtype: str = "auto", *, api_base: str | None = None,
    api_key_env: str = DEFAULT_API_KEY_ENV, mmproj: str | None = None,
    max_side: int = DEFAULT_CAPTION_MAX_SIDE, concurrency: int = 1, threads: int | None = None,
    n_gpu_layers: int | None = None,
) -> Captioner:
    """Build (once per process) the captioner named by ``spec``, from keyword options rather than
    a :class:`~pica.config.Settings` (scripts, tests).

    Args:
        spec: A ``--captioner`` value (:func:`captioner_spec`): a captions file, ``openai:MODEL``,
            ``gguf:PATH_OR_HF_ID`` (needs ``mmproj``), ``hf:MODEL``, a plugin's ``KIND:ARG``, or
            an HF hub id / folder.
        question_aware: Question-aware captioning (PromptCap-style).
        prompt: The question-aware text prompt (vision-language models: only when changed from the
            default, else the template ``pica/templates/caption/instructions.toml``).
        device, dtype: Where and in which precision an HF model runs.
        api_base: Server of an ``openai:`` captioner.
        api_key_env: Environment variable holding its API key.
        mmproj: Vision projector of a ``gguf:`` captioner.
        max_side: Longest image side sent to a vision-language model.
        concurrency: Requests in flight of an ``openai:`` captioner.
        threads, n_gpu_layers: CPU threads and GPU layers of a ``gguf:`` captioner.

    Raises:
        InputError / ModelLoadError: as :func:`captioner_from_settings`.
    """
    return captioner_from_settings(Settings(
        captioner=spec, question_aware=question_aware, caption_prompt=prompt, device=device,
        dtype=dtype, captioner_api_base=api_base, api_key_env=api_key_env, mmproj=mmproj,
        caption_max_side=max_side, concurrency=concurrency, threads=threads,
        n_gpu_layers=n_gpu_layers))
