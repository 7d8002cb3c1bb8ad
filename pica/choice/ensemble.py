"""Choosing one answer among an ensemble's completions: PICa's log-prob rule, a vote, and
Prophet's vote.

- ``logprob`` (PICa): the completion with the highest summed log-prob.
- ``vote``: ``exp(logprob)`` summed per normalized answer, empty answers included.
- ``prophet`` (Prophet's ``prompt.py``): the same vote over non-empty answers only; when every
  completion is empty there is no winner (:func:`prophet_vote` returns ``None``) and the caller
  answers with the question's top candidate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence


def best_logprob(answers: Sequence[str], logprobs: Sequence[float | None]) -> int:
    """PICa's rule: the completion with the highest summed log-prob; a :func:`vote` when some
    completion has none."""
    if all(lp is not None for lp in logprobs):
        return max(range(len(answers)), key=lambda i: (logprobs[i], -i))
    return vote(answers, logprobs)


def vote(answers: Sequence[str], logprobs: Sequence[float | None]) -> int:
    """``exp(logprob)`` (1 without log-probs) summed per answer; the best answer's most confident
    completion (ties: the first seen)."""
    totals: Mapping[str, float] = defaultdict(float)
    for a, lp in zip(answers, logprobs):
        totals[a] += 1.0 if lp is None else math.exp(lp)
    best = max(totals, key=lambda a: (totals[a], -answers.index(a)))
    members = [i for i, a in enumerate(answers) if a == best]
    return max(members, key=lambda i: (logprobs[i] if logprobs[i] is not None else 0.0, -i))


def prophet_vote(answers: Sequence[str], logprobs: Sequence[float | None]) -> int | None:
    """Prophet's ensemble rule: sum each non-empty answer's completion probabilities
    (``exp(logprob)``, 1 without log-probs), take the best answer (ties: the first seen) and
    return its most confident completion; ``None`` when every answer is empty."""
    kept = [i for i, a in enumerate(answers) if a]
    if not kept:
        return None
    return kept[vote([answers[i] for i in kept], [logprobs[i] for i in kept])]
