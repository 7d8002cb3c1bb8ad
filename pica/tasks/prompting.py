"""The few-shot prompts of one question: its retrieved examples in the ensemble's slices, with
answer candidates (PICa's template ``with-candidates``, Prophet's candidates file) and, for multiple
choice, its choices; each prompt trimmed to the LLM's context (:func:`pica.llm.prompts.build_prompt`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pica.config import DEFAULT_CANDIDATES, PROPHET_CANDIDATES, Settings
from pica.llm.prompts import Prompt, Template, build_prompt, format_candidates
from pica.retrieval.index import ExampleIndex, Hit
from pica.retrieval.selection import candidates_from, ensemble_slices, example_candidates
from pica.types import Example, Question

__all__ = ["build_prompts", "neighbour_candidates"]


def build_prompts(settings: Settings, template: Template, backend, index: ExampleIndex | None,
                  question: Question, caption: str, hits: Sequence[Hit], *, answer_tokens: int,
                  stage_one=None, choices: Sequence[str] = ()) -> list[Prompt]:
    """The ensemble's prompts for one question, from its retrieved hits (most similar first).

    Args:
        settings: The run's settings (shots, ensemble, candidates, examples file, rationale).
        template: The prompt template (multiple choice passes its ``Choices:`` variant).
        backend: The LLM backend: its context window and token counts trim the examples.
        index: Where the hits' examples are; ``None`` when there are none (zero-shot).
        stage_one: Prophet's stage-one files (:class:`pica.datasets.prophet.StageOne`) when the
            settings name a candidates file.
        answer_tokens: Tokens the answer needs after the prompt.
        choices: The question's choices, shown by a multiple-choice template.
    """
    s = settings
    slices = ensemble_slices(hits, s.shots, s.ensemble) if hits else [[] for _ in range(s.ensemble)]
    if s.examples_file:  # Prophet shows each slice in (shuffled) file order; build_prompt reverses
        slices = [part[::-1] for part in slices]
    fits = None
    if backend.n_ctx:
        def fits(text: str) -> bool:
            return backend.count_tokens(text) + answer_tokens <= backend.n_ctx
    query_candidates, of_example = "", None
    if template.uses_candidates and s.candidates_file:
        top = s.candidates or PROPHET_CANDIDATES
        query_candidates = format_candidates(stage_one.query_candidates(question.id)[:top])

        def of_example(ex: Example) -> str:
            return format_candidates(stage_one.candidates_of(ex.id)[:top])
    elif template.uses_candidates and index is not None:
        top = s.candidates or DEFAULT_CANDIDATES
        query_candidates = format_candidates(candidates_from(index, hits, top))
        of_example = neighbour_candidates(settings, index, hits, top)
    prompts = []
    for part in slices:
        examples = [index.example(h.row) for h in part] if part else []
        prompts.append(build_prompt(template, caption, question.question, examples,
                                    candidates=query_candidates, example_candidates=of_example,
                                    fits=fits, choices=choices, rationale=s.rationale))
    return prompts


def neighbour_candidates(settings: Settings, index: ExampleIndex, hits: Sequence[Hit],
                         top: int) -> Callable[[Example], str] | None:
    """Candidates for each in-context example, from that example's own neighbours."""
    found = example_candidates(index, hits, top, max(settings.shots, 16), settings.weights)
    by_id = {ex_id: format_candidates(candidates) for ex_id, candidates in found.items()}
    return (lambda ex: by_id.get(ex.id, "")) if hits else None
