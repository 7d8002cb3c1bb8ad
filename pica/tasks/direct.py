"""The direct-answer task: the ensemble's prompts, their completions, one answer.

PICa's choice among an ensemble's completions (highest log-prob, or a vote), or, with a calibrated
chooser, the chooser's pick among the greedy answers and the neighbours' answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pica.answers import normalize_answer, split_rationale
from pica.choice.rules import ensemble_rule
from pica.llm.base import STOP
from pica.llm.prompts import Prompt
from pica.tasks.base import Prepared, Tools
from pica.types import Answer, Completion


@dataclass
class Greedy:
    """An ensemble's greedy completions for one question.

    Attributes:
        prompts: The prompts, one per ensemble member.
        completions: Their completions (text, summed log-prob).
        answers: The normalized answers (before ``because`` with ``--rationale``).
        rationales: The rationales (``""`` without ``--rationale``).
    """

    prompts: list[Prompt]
    completions: list[Completion]
    answers: list[str]
    rationales: list[str]


def greedy(tools: Tools, item: Prepared) -> Greedy:
    """Complete every prompt of the question's ensemble greedily."""
    prompts = tools.prompts(item)
    completions = tools.backend.complete([p.text for p in prompts], max_tokens=tools.answer_tokens,
                                         stop=STOP)
    parts = [split_rationale(c.text) if tools.rationale else (c.text, "") for c in completions]
    return Greedy(prompts, completions, [normalize_answer(a) for a, _ in parts], [r for _, r in parts])


def answer(tools: Tools, item: Prepared) -> Answer:
    """Answer one prepared question directly."""
    t0 = time.perf_counter()
    g = greedy(tools, item)
    answers, completions = g.answers, g.completions
    candidates = [{"answer": a, "raw": c.text, "logprob": c.logprob} for a, c in zip(answers, completions)]
    chosen = None
    table = (tools.candidate_table(item, g.prompts[0].text, answers, completions)
             if tools.chooser is not None else None)
    if table:
        best = tools.chooser.pick(table)
        table[best]["chosen"] = True
        candidates = table
        chosen = table[best]["answer"]
        win = answers.index(chosen) if chosen in answers else None
    else:
        win = ensemble_rule(tools.ensemble_choice).pick(answers, [c.logprob for c in completions])
        if win is None:  # no winner (Prophet: every completion empty): the top candidate
            chosen = tools.top_candidate(item) if tools.top_candidate else ""
    if win is None:  # a neighbour's answer won: it has no raw completion of its own
        text, raw, logprob, rationale = chosen, chosen, None, ""
    else:
        text, raw, logprob = answers[win], completions[win].text, completions[win].logprob
        rationale = g.rationales[win]
    seconds = {**item.seconds, "llm": time.perf_counter() - t0}
    seconds["total"] = sum(seconds.values())
    example_ids = [p.example_ids for p in g.prompts]
    return Answer(
        question_id=item.question.id, question=item.question.question, answer=text,
        raw=raw, caption=item.caption, logprob=logprob,
        prompts=[p.text for p in g.prompts], example_ids=example_ids,
        candidates=candidates,
        seconds=seconds, prompt_tokens=sum(c.prompt_tokens for c in completions),
        examples=tools.examples(item, example_ids), rationale=rationale,
    )
