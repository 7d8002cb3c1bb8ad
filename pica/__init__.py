"""pica: knowledge-based visual question answering in the PICa / PromptCap style.

image -> caption -> nearest solved examples -> few-shot prompt -> LLM -> normalized answer.
Heavy libraries (torch, llama_cpp, faiss) are imported only when a component is built.

``from pica import Pipeline`` is the one-line API: ``pipe = Pipeline(index=..., llm=...)``, then
``pipe(image, question)``. It is imported on first use (``__getattr__``), so ``import pica`` and
``pica --help`` stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Answer", "Pipeline", "Question", "Settings", "__version__"]

if TYPE_CHECKING:
    from pica.config import Settings
    from pica.pipeline import Pipeline
    from pica.types import Answer, Question

# Public names and the module each is imported from on first use.
_LAZY = {"Pipeline": "pica.pipeline", "Settings": "pica.config", "Question": "pica.types",
         "Answer": "pica.types"}


def __getattr__(name: str) -> Any:
    """Import ``Pipeline``, ``Settings``, ``Question`` and ``Answer`` when first asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pica' has no attribute {name!r}")
