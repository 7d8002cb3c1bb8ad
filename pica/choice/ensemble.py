"""Choosing one answer among an ensemble's completions: PICa's log-prob rule and a vote."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence


def choose(answers: Sequence[str], logprobs: Sequence[float | None], method: str) -> int:
    """Index of the winning completion among an ensemble's.

    ``logprob`` (PICa): highest summed log-prob. ``vote`` (Prophet): sum ``exp(logprob)`` per
    normalized answer (1 per answer when log-probs are unavailable) and take the best answer's
    most confident completion. Log-prob choice falls back to a vote without log-probs.
    """
    if not answers:
        raise ValueError("no answers to choose from")
    if method == "logprob" and all(lp is not None for lp in logprobs):
        return max(range(len(answers)), key=lambda i: (logprobs[i], -i))
    totals: Mapping[str, float] = defaultdict(float)
    for a, lp in zip(answers, logprobs):
        totals[a] += 1.0 if lp is None else math.exp(lp)
    best = max(totals, key=lambda a: (totals[a], -answers.index(a)))
    members = [i for i, a in enumerate(answers) if a == best]
    return max(members, key=lambda i: (logprobs[i] if logprobs[i] is not None else 0.0, -i))
