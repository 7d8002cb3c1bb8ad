"""LLM backends: ``llama_cpp`` (local GGUF, default) and ``openai_compat`` (any OpenAI-style API).

``--llm`` values are ``KIND:MODEL`` where ``KIND`` is a name in :data:`pica.registry.BACKENDS`
(``openai:MODEL``, ``llama-cpp:PATH``); anything else (a packaged model name, a .gguf path,
``ORG/REPO:FILE.gguf``) goes to the local llama.cpp backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pica.registry import BACKENDS, LOCAL_BACKEND, resolve

if TYPE_CHECKING:
    from pica.config import Settings
    from pica.llm.base import Backend


def split_llm(spec: str) -> tuple[str, str]:
    """``(backend name, model)`` of an ``--llm`` value (see the module docstring)."""
    kind, sep, model = spec.partition(":")
    if sep and kind in BACKENDS:
        return kind, model
    return LOCAL_BACKEND, spec


def make_backend(settings: Settings) -> Backend:
    """Build the backend that ``settings.llm`` names, configured from ``settings``.

    Raises:
        InputError / ModelLoadError: bad model name or path, missing API base.
    """
    kind, model = split_llm(settings.llm)
    return resolve("backend", kind).from_settings(model, settings)
