"""Fakes for fast unit tests of pica's own logic: no model, no torch, no llama.cpp.

- :class:`FakeBackend`: canned completions and log-probs, records every prompt it was sent.
- :class:`FakeEmbedder`: deterministic unit vectors from a hash of the text (same text, same
  vector; different texts, nearly orthogonal vectors), so retrieval finds exact matches.
- :func:`fake_index`: a real FAISS index folder built from examples with the fake embedder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pica.llm.base import Backend
from pica.retrieval.embedders import Embedder
from pica.retrieval.index import ExampleIndex
from pica.retrieval.writer import IndexWriter
from pica.types import Completion, Example


class FakeBackend(Backend):
    """Answers every prompt with ``reply(prompt)`` (default: the text after the last ``Q:``'s
    example answer is not known, so ``" fake"``), with log-prob ``logprob(prompt)``.

    Attributes:
        prompts: Every prompt received, in order.
        calls: The prompt lists of each ``complete`` call.
    """

    id = "fake:backend"

    def __init__(self, reply: Callable[[str], str] | None = None,
                 logprob: Callable[[str], float | None] | None = None, n_ctx: int | None = None,
                 thread_safe: bool = False) -> None:
        self.reply = reply or (lambda prompt: " fake")
        self.logprob = logprob or (lambda prompt: -1.0)
        self.n_ctx = n_ctx
        self.thread_safe = thread_safe
        self.prompts: list[str] = []
        self.calls: list[list[str]] = []

    def complete(self, prompts: Sequence[str], max_tokens: int = 5,
                 stop: Sequence[str] = ("\n",)) -> list[Completion]:
        self.calls.append(list(prompts))
        self.prompts.extend(prompts)
        return [Completion(text=self.reply(p), logprob=self.logprob(p),
                           prompt_tokens=self.count_tokens(p), completion_tokens=1) for p in prompts]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class FakeEmbedder(Embedder):
    """Deterministic text vectors: each distinct text gets its own random unit vector."""

    id = "fake:embedder"
    dim = 64

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


def fake_index(folder: Path, examples: Sequence[Example]) -> ExampleIndex:
    """A question + caption index of ``examples`` made with :class:`FakeEmbedder`."""
    emb = FakeEmbedder()
    with IndexWriter(folder, emb.id, {"question": emb.dim, "caption": emb.dim}) as writer:
        writer.add(list(examples), {"question": emb.embed_texts([e.question for e in examples]),
                                    "caption": emb.embed_texts([e.caption for e in examples])})
    return ExampleIndex.load(folder)
