"""Multiple choice (A-OKVQA): pick one of a question's ``choices``, two ways.

- ``score`` (default for backends with log-probs): the prompt lists the choices
  (``Choices: a, b, c, d`` in every example and the query, as PromptCap and Prophet do) and each
  choice is scored by its summed log-prob as the continuation of ``A:``
  (:meth:`~pica.backends.base.Backend.score`; the local backend evaluates the prompt once).
- ``generate`` (the fallback for chat-only APIs): a free answer is generated under the same
  prompt and mapped to the nearest choice — exact match after VQA normalization, else the highest
  cosine similarity of the index's text embedder (Prophet's remapping of answers to choices).

With an ensemble, every prompt picks a choice (with its log-prob) and ``--choose`` picks among
the prompts' choices as it does among free answers (:func:`pica.answers.choose`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pica.answers import choose, normalize_answer, split_rationale
from pica.config import RATIONALE_TOKENS
from pica.errors import InputError
from pica.pipeline import STOP
from pica.prompts import clean
from pica.types import Answer, Question

if TYPE_CHECKING:
    from pica.pipeline import Pipeline, Prepared

TASKS_WITH_CHOICES = ("mc", "both")


@dataclass
class ChoiceResult:
    """What a multiple-choice question got: the chosen choice and how it was chosen.

    Attributes:
        choices: The question's choices, in dataset order.
        index: Index of the chosen choice.
        chosen: ``choices[index]`` (the text the official prediction file holds).
        method: ``score`` or ``generate``.
        logprob: Log-prob of the winning prompt's pick (``None`` without log-probs).
        scores: Per prompt, the log-prob of every choice (``score``); empty for ``generate``.
        generated: Per prompt, the normalized free answer (``generate``); empty for ``score``.
        mapped: Per prompt, how the free answer was mapped: ``exact`` or ``similarity 0.83``.
        raw: The winning prompt's raw completion (``generate``, or a rationale), else ``""``.
        rationale: The model's reason for its choice (``--rationale``), else ``""``.
        prompts: The multiple-choice prompts.
        example_ids: The example ids of each prompt, in prompt order.
    """

    choices: list[str]
    index: int
    chosen: str
    method: str
    logprob: float | None = None
    scores: list[list[float]] = field(default_factory=list)
    generated: list[str] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)
    raw: str = ""
    rationale: str = ""
    prompts: list[str] = field(default_factory=list)
    example_ids: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``mc`` field of answers and result rows)."""
        return asdict(self)


def question_task(task: str, question: Question) -> str:
    """The task one question is asked as: ``auto`` -> ``both`` with choices, else ``da``.

    Raises:
        InputError: ``mc`` or ``both`` for a question without choices.
    """
    if task == "auto":
        return "both" if question.choices else "da"
    if task in TASKS_WITH_CHOICES and not question.choices:
        raise InputError(f"question {question.id} has no choices; --task {task} needs an A-OKVQA"
                         " file with 'choices' (or use --task da)")
    return task


def resolve_task(task: str, questions: Sequence[Question]) -> str:
    """The task of a whole run: ``auto`` becomes ``both`` when every question has choices, else
    ``da``; ``mc`` and ``both`` are checked against the questions.

    Raises:
        InputError: ``mc``/``both`` with questions that lack choices (count and first ids).
    """
    with_choices = bool(questions) and all(q.choices for q in questions)
    if task == "auto":
        return "both" if with_choices else "da"
    if task in TASKS_WITH_CHOICES and not with_choices:
        missing = [q.id for q in questions if not q.choices]
        raise InputError(f"--task {task} needs choices, and {len(missing)} of {len(questions)}"
                         f" questions have none (first: {', '.join(missing[:3])}); use an A-OKVQA"
                         " file with 'choices', or --task da")
    return task


def mc_method(setting: str, backend) -> str:
    """``auto`` -> ``score`` when the backend reports log-probs, else ``generate``."""
    if setting != "auto":
        return setting
    return "score" if getattr(backend, "supports_logprobs", False) else "generate"


def map_to_choice(answer: str, choices: Sequence[str], embed_texts) -> tuple[int, str]:
    """Map a free answer to the nearest choice (Prophet / A-OKVQA remapping).

    Args:
        answer: The generated answer.
        choices: The question's choices.
        embed_texts: ``list[str] -> (n, d) array`` (the index's text embedder).

    Returns:
        ``(index, how)``: ``how`` is ``"exact"`` when the answer equals a choice after VQA
        normalization (first such choice), else ``"similarity 0.83"`` (the cosine of the best).
    """
    norm = normalize_answer(answer)
    for i, choice in enumerate(choices):
        if normalize_answer(choice) == norm:
            return i, "exact"
    vectors = np.asarray(embed_texts([answer, *choices]), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = vectors[1:] @ vectors[0]
    best = int(np.argmax(sims))
    return best, f"similarity {sims[best]:.2f}"


def answer_choice(pipeline: Pipeline, item: Prepared) -> ChoiceResult:
    """Pick one of ``item.question.choices`` with the pipeline's backend and settings.

    Raises:
        InputError: the question has no choices; ``--mc-method score`` with a backend that
            cannot score text.
        BackendError: the LLM failed.
    """
    from pica.prompts import load_choices_template

    s = pipeline.settings
    q = item.question
    if not q.choices:
        raise InputError(f"question {q.id} has no choices to choose from")
    template = load_choices_template(s.template)
    built = pipeline.build_prompts(q, item.caption, item.hits, template=template, choices=q.choices)
    prompts = [p.text for p in built]
    result = None
    if mc_method(s.mc_method, pipeline.backend) == "score":
        try:
            result = _by_score(pipeline, q.choices, prompts)
        except NotImplementedError as e:
            if s.mc_method == "score":
                raise InputError(f"--mc-method score: {e}; use --mc-method generate") from e
    result = result or _by_generation(pipeline, q.choices, prompts)
    result.example_ids = [p.example_ids for p in built]
    return result


def _by_score(pipeline: Pipeline, choices: list[str], prompts: list[str]) -> ChoiceResult:
    s = pipeline.settings
    scores = [pipeline.backend.score(prompt, [f" {c}" for c in choices]) for prompt in prompts]
    picks = [int(np.argmax(row)) for row in scores]
    win = choose([choices[i] for i in picks], [row[i] for row, i in zip(scores, picks)],
                 pipeline.ensemble_choice)
    index = picks[win]
    result = ChoiceResult(choices=list(choices), index=index, chosen=choices[index], method="score",
                          logprob=scores[win][index], scores=scores, prompts=prompts)
    if s.rationale:  # nothing was generated: ask for the reason of the chosen choice
        lead = f"{prompts[win]} {choices[index]} because"
        raw = pipeline.backend.complete([lead], max_tokens=RATIONALE_TOKENS, stop=STOP)[0].text
        result.raw, result.rationale = raw, clean(raw)
    return result


def _by_generation(pipeline: Pipeline, choices: list[str], prompts: list[str]) -> ChoiceResult:
    s = pipeline.settings
    completions = pipeline.backend.complete(prompts, max_tokens=pipeline.answer_tokens, stop=STOP)
    parts = [split_rationale(c.text) if s.rationale else (c.text, "") for c in completions]
    generated = [normalize_answer(answer) for answer, _ in parts]
    embed = _embed_texts(pipeline)
    mapped = [map_to_choice(answer, choices, embed) for answer, _ in parts]
    picked = [choices[i] for i, _ in mapped]
    win = choose(picked, [c.logprob for c in completions], pipeline.ensemble_choice)
    index = mapped[win][0]
    return ChoiceResult(choices=list(choices), index=index, chosen=choices[index], method="generate",
                        logprob=completions[win].logprob, generated=generated,
                        mapped=[how for _, how in mapped], raw=completions[win].text,
                        rationale=parts[win][1], prompts=prompts)


def _embed_texts(pipeline: Pipeline):
    """The index's text embedder (the packaged MiniLM when answering zero-shot), built lazily."""
    if pipeline.index is not None:
        return lambda texts: pipeline.embedder.embed_texts(texts)
    from pica.embedders import make_embedder
    from pica.index_build import TEXT_EMBEDDER

    cache: dict[str, Any] = {}

    def embed(texts: list[str]):
        if "e" not in cache:
            cache["e"] = make_embedder(TEXT_EMBEDDER)
        return cache["e"].embed_texts(texts)

    return embed


def respond(pipeline: Pipeline, item: Prepared, task: str) -> Answer:
    """Answer a prepared question as ``task`` (``mc`` or ``both``): a direct answer too for
    ``both`` (:meth:`~pica.pipeline.Pipeline.generate`), and the choice in ``Answer.mc``."""
    direct = pipeline.generate(item) if task == "both" else None
    t1 = time.perf_counter()
    result = answer_choice(pipeline, item)
    mc_seconds = time.perf_counter() - t1
    if direct is not None:
        direct.mc = result.to_dict()
        direct.seconds["mc"] = mc_seconds
        direct.seconds["total"] = direct.seconds.get("total", 0.0) + mc_seconds
        return direct
    seconds = {**item.seconds, "llm": mc_seconds, "mc": mc_seconds}
    seconds["total"] = sum(v for k, v in seconds.items() if k != "mc")
    return Answer(
        question_id=item.question.id, question=item.question.question, answer=result.chosen,
        raw=result.raw, caption=item.caption, logprob=result.logprob, prompts=result.prompts,
        example_ids=result.example_ids, seconds=seconds, rationale=result.rationale,
        mc=result.to_dict(), examples=pipeline.shown_examples(item, result.example_ids),
        prompt_tokens=sum(pipeline.backend.count_tokens(p) for p in result.prompts),
    )
