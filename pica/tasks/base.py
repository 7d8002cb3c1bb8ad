"""What a task strategy receives, and which task a question is asked as.

A task (direct answer, multiple choice) builds its requests — prompts — through a small explicit
interface, :class:`Tools`, asks the backend for completions or scores, and turns them into an
:class:`~pica.types.Answer`. It never sees the pipeline that composed the stages (the split of
lm-evaluation-harness: the task builds requests and scores them, the model only infers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pica.errors import InputError
from pica.types import Example, Question

if TYPE_CHECKING:
    from pica.llm.prompts import Prompt, Template
    from pica.retrieval.index import Hit

TASKS_WITH_CHOICES = ("mc", "both")


@dataclass
class Prepared:
    """A question after the batched stages (captions, vectors, search), ready for its LLM call.

    Attributes:
        question: The question.
        caption: Its caption.
        hits: The prompts' examples, most similar first.
        seconds: Seconds per stage so far (``caption``, ``retrieval``).
        neighbours: The K nearest, for answer candidates (the learned chooser, answer-aware order).
        exclude_rows: Index rows the question must not see (its own image's, and any given).
    """

    question: Question
    caption: str
    hits: list[Hit]
    seconds: dict[str, float]
    neighbours: list[Hit] = field(default_factory=list)
    exclude_rows: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Tools:
    """Everything a task strategy may use, and nothing else.

    Attributes:
        backend: The LLM (``complete``, ``score``, ``count_tokens``, ``supports_logprobs``).
        prompts: ``(item, *, template=None, choices=()) -> list[Prompt]``: the ensemble's prompts.
        choices_template: The ``Choices:`` variant of the template (multiple choice).
        examples: ``(item, example_ids) -> examples`` each prompt showed.
        embed_texts: ``list[str] -> (n, d) array``: the index's text embedder (multiple choice maps
            free answers to choices with it).
        answer_tokens: Tokens generated per answer.
        rationale: Whether answers carry a rationale (``--rationale``).
        ensemble_choice: The ``--choose`` rule that picks one of an ensemble's answers
            (``logprob``, ``vote``, ``prophet`` ...; :mod:`pica.choice.rules`).
        mc_method: ``auto``, ``score`` or ``generate``.
        mc_score: ``auto``, ``sum``, ``mean`` or ``calibrated``: how ``score`` ranks the choices.
        chooser: The learned chooser, or ``None`` (plain ensemble choice).
        candidate_table: ``(item, prompt, answers, completions) -> candidates`` with features, for
            the chooser (``None`` without one).
        top_candidate: ``item -> answer``: the question's best stage-1 candidate, Prophet's
            answer when every completion is empty.
        prompt_format: ScienceQA's prompt format (:mod:`pica.tasks.scienceqa`).
        shots: Examples per prompt.
        example: ``row -> Example``: the index's example at a hit's row.
    """

    backend: Any
    prompts: Callable[..., list[Prompt]]
    choices_template: Callable[[], Template]
    examples: Callable[[Prepared, Sequence[Sequence[str]]], list[list[Example]]]
    embed_texts: Callable[[list[str]], Any]
    answer_tokens: int
    rationale: bool
    ensemble_choice: str
    mc_method: str = "auto"
    mc_score: str = "auto"
    chooser: Any = None
    candidate_table: Callable[..., list[dict[str, Any]]] | None = None
    top_candidate: Callable[[Prepared], str] | None = None
    prompt_format: str = "QCM-ALE"
    shots: int = 0
    example: Callable[[int], Example] | None = None


def question_task(task: str, question: Question) -> str:
    """The task one question is asked as: ``auto`` -> ``scienceqa`` for a ScienceQA problem,
    ``both`` with choices, else ``da``.

    Raises:
        InputError: ``mc`` or ``both`` for a question without choices.
    """
    if task == "scienceqa" or (task == "auto" and question.scoring == "scienceqa"):
        if question.scoring != "scienceqa":
            raise InputError(f"question {question.id} is not a ScienceQA problem; --task scienceqa"
                             " needs --scienceqa problems.json")
        return "scienceqa"
    if task == "auto":
        return "both" if question.choices else "da"
    if task in TASKS_WITH_CHOICES and not question.choices:
        raise InputError(f"question {question.id} has no choices; --task {task} needs an A-OKVQA"
                         " file with 'choices' (or use --task da)")
    return task


def resolve_task(task: str, questions: Sequence[Question]) -> str:
    """The task of a whole run: ``auto`` becomes ``scienceqa`` for ScienceQA problems, ``both`` when
    every question has choices, else
    ``da``; ``mc`` and ``both`` are checked against the questions.

    Raises:
        InputError: ``mc``/``both`` with questions that lack choices (count and first ids).
    """
    with_choices = bool(questions) and all(q.choices for q in questions)
    science = bool(questions) and all(q.scoring == "scienceqa" for q in questions)
    if task == "scienceqa" and not science:
        raise InputError("--task scienceqa needs ScienceQA problems (--scienceqa problems.json)")
    if task in ("auto", "scienceqa") and science:
        return "scienceqa"
    if task == "auto":
        return "both" if with_choices else "da"
    if task in TASKS_WITH_CHOICES and not with_choices:
        missing = [q.id for q in questions if not q.choices]
        raise InputError(f"--task {task} needs choices, and {len(missing)} of {len(questions)}"
                         f" questions have none (first: {', '.join(missing[:3])}); use an A-OKVQA"
                         " file with 'choices', or --task da")
    return task
