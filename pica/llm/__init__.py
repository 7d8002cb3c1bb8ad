"""LLM backends: ``llama_cpp`` (local GGUF, default) and ``openai_compat`` (any OpenAI-style API).

Each backend declares itself in its module (``REGISTER``, read by :data:`pica.registry.backends`);
plugins add more through the ``pica.backends`` entry-point group. ``--llm`` values are
``KIND:MODEL`` where ``KIND`` is a registered backend (``openai:MODEL``, ``llama-cpp:PATH``, a
plugin's ``KIND:ARG``); anything else (a packaged model name, a .gguf path, ``ORG/REPO:FILE.gguf``)
goes to the local llama.cpp backend.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pica.errors import unknown_name
from pica.registry import backends, split_spec

if TYPE_CHECKING:
    from pica.config import Settings
    from pica.llm.base import Backend

LOCAL_BACKEND = "llama-cpp"
# What a KIND in KIND:MODEL looks like (a misspelt one is an error, not a model file name).
_KIND = re.compile(r"[A-Za-z][\w-]+")


def split_llm(spec: str) -> tuple[str, str]:
    """``(backend name, model)`` of an ``--llm`` value (see the module docstring).

    Raises:
        InputError: ``KIND:MODEL`` whose ``KIND`` is registered nowhere and is no file
            (did-you-mean, every available backend).
    """
    found = split_spec(spec, "backend")
    if found is not None:
        return found
    kind, sep, _ = spec.partition(":")
    if (sep and _KIND.fullmatch(kind) and not spec.endswith(".gguf")
            and not Path(spec).expanduser().exists()):
        raise unknown_name("backend", kind, backends.names())
    return LOCAL_BACKEND, spec


def make_backend(settings: Settings) -> Backend:
    """Build the backend that ``settings.llm`` names, configured from ``settings``.

    Raises:
        InputError / ModelLoadError: bad model name or path, missing API base, an unknown kind, a
            plugin that cannot be imported.
    """
    kind, model = split_llm(settings.llm)
    return backends.get(kind).from_settings(model, settings)
