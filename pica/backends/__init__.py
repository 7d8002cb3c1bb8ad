"""LLM backends: ``llama_cpp`` (local GGUF, default) and ``openai_compat`` (any OpenAI-style API).

``--llm`` values: ``openai:MODEL`` selects the API backend; anything else (a packaged model name,
a .gguf path, ``ORG/REPO:FILE.gguf``) the local llama.cpp backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pica.registry import resolve

if TYPE_CHECKING:
    from pica.backends.base import Backend
    from pica.config import Settings

API_PREFIX = "openai:"


def make_backend(settings: Settings) -> Backend:
    """Build the backend that ``settings.llm`` names.

    Raises:
        InputError / ModelLoadError: bad model name or path, missing API base.
    """
    if settings.llm.startswith(API_PREFIX):
        cls = resolve("backend", "openai")
        return cls(settings.llm.removeprefix(API_PREFIX), api_base=settings.api_base,
                   api_key_env=settings.api_key_env, concurrency=settings.concurrency)
    cls = resolve("backend", "llama-cpp")
    return cls(settings.llm, n_ctx=settings.n_ctx, threads=settings.threads)
