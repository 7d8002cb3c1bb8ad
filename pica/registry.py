"""Lazy registries of component names to ``"module:Class"`` strings.

Nothing heavy (torch, llama_cpp, faiss) is imported until a component is built, so ``pica --help``
stays instant. Unknown names fail with "did you mean ...? available: ...".
"""

from __future__ import annotations

import importlib
from typing import Any

from pica.errors import unknown_name

# ``--llm KIND:MODEL`` picks a backend by name; other values go to the local one.
LOCAL_BACKEND = "llama-cpp"
BACKENDS: dict[str, str] = {
    "llama-cpp": "pica.llm.llama_cpp:LlamaCppBackend",
    "openai": "pica.llm.openai_compat:OpenAICompatBackend",
}

CAPTIONERS: dict[str, str] = {
    "hf": "pica.caption.hf:HFCaptioner",
    "cache": "pica.caption.cached:CachedCaptioner",
    "openai": "pica.caption.openai_vision:OpenAICaptioner",
    "gguf": "pica.caption.gguf:GGUFCaptioner",
}

EMBEDDERS: dict[str, str] = {
    "open_clip": "pica.retrieval.embedders:OpenClipEmbedder",
    "sentence-transformers": "pica.retrieval.embedders:SentenceTransformerEmbedder",
}

REGISTRIES: dict[str, dict[str, str]] = {
    "backend": BACKENDS,
    "captioner": CAPTIONERS,
    "embedder": EMBEDDERS,
}


def resolve(kind: str, name: str) -> Any:
    """Import and return the class registered as ``name`` in the ``kind`` registry.

    Raises:
        InputError: ``name`` is not registered (the message suggests the closest name).
    """
    registry = REGISTRIES[kind]
    if name not in registry:
        raise unknown_name(kind, name, registry)
    module_name, _, attr = registry[name].partition(":")
    return getattr(importlib.import_module(module_name), attr)
