"""The LLM backend interface: one batched method, ``complete``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pica.types import Completion

# Answers are one line: every answer prompt stops at a newline.
STOP = ("\n",)

if TYPE_CHECKING:
    from pica.config import Settings


class Backend(ABC):
    """A text-completion LLM.

    Attributes:
        id: Stable identifier recorded in run folders (model name / file, never secrets).
        n_ctx: Context window in tokens, or ``None`` when unknown (remote APIs).
        supports_logprobs: Whether ``Completion.logprob`` is filled in.
        thread_safe: Whether ``complete`` may be called from several threads at once (remote
            APIs); the pipeline then runs questions concurrently.
        settings_fields: The :class:`~pica.config.Settings` fields :meth:`from_settings` reads.
    """

    id: str = ""
    # The Settings fields from_settings reads.
    settings_fields: tuple[str, ...] = ()
    n_ctx: int | None = None
    supports_logprobs: bool = True
    thread_safe: bool = False

    @classmethod
    def from_settings(cls, model: str, settings: Settings) -> Backend:
        """Build the backend for ``model`` with the options of ``settings`` that concern it."""
        raise NotImplementedError(f"{cls.__name__} does not say how to build itself from settings")

    @abstractmethod
    def complete(
        self, prompts: Sequence[str], max_tokens: int = 5, stop: Sequence[str] = ("\n",)
    ) -> list[Completion]:
        """Greedy completion of every prompt.

        Args:
            prompts: Full prompt texts.
            max_tokens: Maximum generated tokens per prompt.
            stop: Generation ends before the first occurrence of any of these strings.

        Returns:
            One ``Completion`` per prompt, in order.

        Raises:
            BackendError: The model or server failed.
        """

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes in this model (estimated when unknown: ~4 chars each)."""
        return max(1, len(text) // 4)

    def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """Summed log-probability of each continuation after ``prompt``.

        Raises:
            NotImplementedError: The backend cannot score text.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot score continuations")

    def score_candidates(self, prompt: str, continuations: Sequence[str],
                         reset: bool = False) -> list[tuple[float, int]]:
        """Summed log-prob and token count of each continuation after ``prompt``.

        The default calls :meth:`score` and estimates token counts; backends that can do better
        (one prompt evaluation and one batch shared by every continuation) override it.

        Args:
            prompt: The prompt text.
            continuations: Texts scored as what follows ``prompt``.
            reset: Start from a fresh cache, not from what the previous :meth:`complete` of the
                same prompt left (backends without a cache ignore it).

        Raises:
            NotImplementedError: The backend cannot score text.
        """
        return [(lp, self.count_tokens(c)) for lp, c in zip(self.score(prompt, continuations), continuations)]

    def close(self) -> None:
        """Release resources (model memory, connections)."""


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the first stop string; return the text and whether a stop was hit."""
    cut = len(text)
    for s in stop:
        pos = text.find(s)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut], cut < len(text)
