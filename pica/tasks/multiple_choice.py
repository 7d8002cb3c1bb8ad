"""Multiple choice (A-OKVQA): pick one of a question's ``choices``, two ways.

- ``score`` (default for backends with log-probs): the prompt lists the choices
  (``Choices: a, b, c, d`` in every example and the query, as PromptCap and Prophet do) and each
  choice is scored as the continuation of ``A:`` (:meth:`~pica.llm.base.Backend.score_candidates`:
  the local backend evaluates the prompt once and every choice in one batch), by ``--mc-score``:
  its summed log-prob (``sum``), per token (``mean``), or minus its summed log-prob under the
  same prompt with a content-free query (``calibrated``: caption and question ``N/A``, same
  choices; Zhao et al. 2021's contextual calibration, which removes the prior for a position or
  a frequent answer).
- ``generate`` (the fallback for chat-only APIs): a free answer is generated under the same
  prompt and mapped to the nearest choice — exact match after VQA normalization, else the highest
  cosine similarity of the index's text embedder (Prophet's remapping of answers to choices).

With an ensemble, every prompt picks a choice (with its log-prob) and ``--choose`` picks among
the prompts' choices as it does among free answers (:func:`pica.choice.ensemble.choose`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from pica.answers import clean, normalize_answer, split_rationale
from pica.choice.rules import choose
from pica.config import RATIONALE_TOKENS
from pica.errors import InputError
from pica.llm.base import STOP
from pica.tasks import direct
from pica.tasks.base import Prepared, Tools
from pica.types import Answer, Example


@dataclass
class ChoiceResult:
    """What a multiple-choice question got: the chosen choice and how it was chosen.

    Attributes:
        choices: The question's choices, in dataset order.
        index: Index of the chosen choice.
        chosen: ``choices[index]`` (the text the official prediction file holds).
        method: ``score`` or ``generate``.
        logprob: Log-prob of the winning prompt's pick (``None`` without log-probs).
        scores: Per prompt, the summed log-prob of every choice (``score``); empty for ``generate``.
        tokens: Per prompt, the token count of every choice (``score``).
        prior: Per prompt, every choice's summed log-prob under the content-free query
            (``--mc-score calibrated``), else empty.
        ranking: Per prompt, the score each choice was ranked by (``--mc-score``).
        rule: The scoring rule used (``sum``, ``mean`` or ``calibrated``; ``score`` only).
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
    tokens: list[list[int]] = field(default_factory=list)
    prior: list[list[float]] = field(default_factory=list)
    ranking: list[list[float]] = field(default_factory=list)
    rule: str = ""
    generated: list[str] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)
    raw: str = ""
    rationale: str = ""
    prompts: list[str] = field(default_factory=list)
    example_ids: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``mc`` field of answers and result rows)."""
        return asdict(self)


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


def answer_choice(tools: Tools, item: Prepared) -> ChoiceResult:
    """Pick one of ``item.question.choices``.

    Raises:
        InputError: the question has no choices; ``--mc-method score`` with a backend that
            cannot score text.
        BackendError: the LLM failed.
    """
    q = item.question
    if not q.choices:
        raise InputError(f"question {q.id} has no choices to choose from")
    built = tools.prompts(item, template=tools.choices_template(), choices=q.choices)
    prompts = [p.text for p in built]
    result = None
    if mc_method(tools.mc_method, tools.backend) == "score":
        try:
            prior = []
            rule = mc_score_rule(tools.mc_score, tools.examples(item, [p.example_ids for p in built]))
            if rule == "calibrated":
                blank = replace(item, question=replace(q, question="N/A"), caption="N/A")
                prior = [p.text for p in tools.prompts(blank, template=tools.choices_template(),
                                                       choices=q.choices)]
            result = _by_score(tools, q.choices, prompts, rule, prior)
        except NotImplementedError as e:
            if tools.mc_method == "score":
                raise InputError(f"--mc-method score: {e}; use --mc-method generate") from e
    result = result or _by_generation(tools, q.choices, prompts)
    result.example_ids = [p.example_ids for p in built]
    return result


def mc_score_rule(setting: str, examples: Sequence[Sequence[Example]]) -> str:
    """``--mc-score auto`` -> ``calibrated`` when a shown example has no choices of its own (an
    index without choices: pica made its choices up, and the model's first-position prior shows;
    measured in BENCHMARKS.md), else ``sum``; other settings are returned as they are."""
    if setting != "auto":
        return setting
    return "calibrated" if any(not ex.choices for group in examples for ex in group) else "sum"


def rank_choices(scores: Sequence[float], tokens: Sequence[int], prior: Sequence[float],
                 how: str) -> list[float]:
    """The scores choices are ranked by, from their summed log-probs.

    Args:
        scores: Summed log-prob of each choice.
        tokens: Token count of each choice.
        prior: Summed log-prob of each choice under the content-free query (``calibrated``).
        how: ``sum``, ``mean`` (per token) or ``calibrated`` (``scores - prior``).

    Returns:
        One score per choice; the highest wins.
    """
    if how == "mean":
        return [s / max(1, t) for s, t in zip(scores, tokens)]
    if how == "calibrated":
        return [s - p for s, p in zip(scores, prior)]
    return list(scores)


def _by_score(tools: Tools, choices: list[str], prompts: list[str], rule: str,
              prior_prompts: Sequence[str] = ()) -> ChoiceResult:
    conts = [f" {c}" for c in choices]
    # Every choice of a prompt in one batch; each prompt from a fresh cache, so a question's
    # scores do not depend on what ran before it.
    scored = [tools.backend.score_candidates(prompt, conts, reset=True) for prompt in prompts]
    scores = [[lp for lp, _ in row] for row in scored]
    tokens = [[n for _, n in row] for row in scored]
    prior = [[lp for lp, _ in tools.backend.score_candidates(prompt, conts, reset=True)]
             for prompt in prior_prompts]
    ranking = [rank_choices(row, n, p, rule)
               for row, n, p in zip(scores, tokens, prior or scores)]
    picks = [int(np.argmax(row)) for row in ranking]
    win = choose([choices[i] for i in picks], [row[i] for row, i in zip(ranking, picks)],
                 tools.ensemble_choice)
    index = picks[win]
    result = ChoiceResult(choices=list(choices), index=index, chosen=choices[index], method="score",
                          logprob=scores[win][index], scores=scores, tokens=tokens, prior=prior,
                          ranking=ranking, rule=rule, prompts=prompts)
    if tools.rationale:  # nothing was generated: ask for the reason of the chosen choice
        lead = f"{prompts[win]} {choices[index]} because"
        raw = tools.backend.complete([lead], max_tokens=RATIONALE_TOKENS, stop=STOP)[0].text
        result.raw, result.rationale = raw, clean(raw)
    return result


def _by_generation(tools: Tools, choices: list[str], prompts: list[str]) -> ChoiceResult:
    completions = tools.backend.complete(prompts, max_tokens=tools.answer_tokens, stop=STOP)
    parts = [split_rationale(c.text) if tools.rationale else (c.text, "") for c in completions]
    generated = [normalize_answer(answer) for answer, _ in parts]
    mapped = [map_to_choice(answer, choices, tools.embed_texts) for answer, _ in parts]
    picked = [choices[i] for i, _ in mapped]
    win = choose(picked, [c.logprob for c in completions], tools.ensemble_choice)
    index = mapped[win][0]
    return ChoiceResult(choices=list(choices), index=index, chosen=choices[index], method="generate",
                        logprob=completions[win].logprob, generated=generated,
                        mapped=[how for _, how in mapped], raw=completions[win].text,
                        rationale=parts[win][1], prompts=prompts)


def respond(tools: Tools, item: Prepared, task: str) -> Answer:
    """Answer a prepared question as ``task`` (``mc`` or ``both``): a direct answer too for
    ``both`` (:func:`pica.tasks.direct.answer`), and the choice in ``Answer.mc``."""
    free = direct.answer(tools, item) if task == "both" else None
    t1 = time.perf_counter()
    result = answer_choice(tools, item)
    mc_seconds = time.perf_counter() - t1
    if free is not None:
        free.mc = result.to_dict()
        free.seconds["mc"] = mc_seconds
        free.seconds["total"] = free.seconds.get("total", 0.0) + mc_seconds
        return free
    seconds = {**item.seconds, "llm": 0.0, "mc": mc_seconds}  # no direct answer was generated
    seconds["total"] = sum(seconds.values())
    return Answer(
        question_id=item.question.id, question=item.question.question, answer=result.chosen,
        raw=result.raw, caption=item.caption, logprob=result.logprob, prompts=result.prompts,
        example_ids=result.example_ids, seconds=seconds, rationale=result.rationale,
        mc=result.to_dict(), examples=tools.examples(item, result.example_ids),
        prompt_tokens=sum(tools.backend.count_tokens(p) for p in result.prompts),
    )
