"""The answer-choice rules of ``--choose``: how one answer is picked.

Every rule is a class declared in :data:`REGISTER` (read by :data:`pica.registry.choice_rules`), so
``--choose`` validation, its help and the pipeline take their names from the registry. A rule
either picks among an ensemble's completions itself (:attr:`ChoiceRule.ensemble`: ``pick``), or
is resolved against the index's learned chooser (:mod:`pica.choice.resolve`). Adding a rule is one
module in this package with its own ``REGISTER`` and a :class:`ChoiceRule` subclass.
"""

from __future__ import annotations

from collections.abc import Sequence

from pica.choice.ensemble import best_logprob, prophet_vote, vote
from pica.registry import choice_rules

REGISTER = {"choice": {"auto": "Auto", "learned": "Learned", "logprob": "LogProb", "vote": "Vote",
                       "prophet": "Prophet"}}
# The rule names the resolution produces (recorded in run.json as the resolved method).
AUTO = "auto"
LEARNED = "learned"
PICA = "logprob"  # PICa's rule: the default, and what auto and learned fall back to


class ChoiceRule:
    """An answer-choice rule (``--choose NAME``).

    Attributes:
        ensemble: Whether the rule picks among an ensemble's completions itself (:meth:`pick`);
            otherwise it is resolved against the index's chooser.
        chooser: For a resolved rule: ``"required"`` (the index's chooser, whatever its
            verdict) or ``"trusted"`` (the chooser only when its verdict trusts it).
    """

    ensemble: bool = True
    chooser: str | None = None

    @classmethod
    def from_settings(cls, name: str, settings=None) -> ChoiceRule:
        """The rule (rules read no settings)."""
        return cls()

    def pick(self, answers: Sequence[str], logprobs: Sequence[float | None]) -> int | None:
        """Index of the winning completion, or ``None`` when there is none (the caller answers
        with the question's top candidate)."""
        raise NotImplementedError(f"{type(self).__name__} does not pick among completions")


class Auto(ChoiceRule):
    """default: learned when the index has a chooser trusted for this LLM, template and shots,
    else logprob."""

    ensemble = False
    chooser = "trusted"


class Learned(ChoiceRule):
    """the index's calibrated chooser over greedy + neighbour candidates."""

    ensemble = False
    chooser = "required"


class LogProb(ChoiceRule):
    """PICa: the completion with the highest log-prob; a vote without log-probs."""

    def pick(self, answers: Sequence[str], logprobs: Sequence[float | None]) -> int | None:
        """The most likely completion."""
        return best_logprob(answers, logprobs)


class Vote(ChoiceRule):
    """exp(log-prob) summed per answer."""

    def pick(self, answers: Sequence[str], logprobs: Sequence[float | None]) -> int | None:
        """The best-voted answer's most confident completion."""
        return vote(answers, logprobs)


class Prophet(ChoiceRule):
    """Prophet's vote over non-empty answers, else the top candidate."""

    def pick(self, answers: Sequence[str], logprobs: Sequence[float | None]) -> int | None:
        """Prophet's vote; ``None`` when every answer is empty."""
        return prophet_vote(answers, logprobs)


def choose(answers: Sequence[str], logprobs: Sequence[float | None], method: str) -> int:
    """Index of the winning completion among an ensemble's, by the ``--choose`` rule ``method``
    (:mod:`pica.choice.rules`; a rule resolved against a chooser picks as PICa's ``logprob``).

    ``logprob`` (PICa): highest summed log-prob. ``vote`` (Prophet): sum ``exp(logprob)`` per
    normalized answer (1 per answer when log-probs are unavailable) and take the best answer's
    most confident completion. Log-prob choice falls back to a vote without log-probs.
    ``prophet``: :func:`prophet_vote`, or the first completion when all are empty.
    """
    if not answers:
        raise ValueError("no answers to choose from")
    win = ensemble_rule(method).pick(answers, logprobs)
    return 0 if win is None else win


def ensemble_rule(method: str) -> ChoiceRule:
    """The rule that picks among an ensemble's completions for the resolved choice ``method``:
    its own, or PICa's ``logprob`` for a rule resolved against a chooser (auto, learned)."""
    rule = choice_rules.get(method)
    return (rule if rule.ensemble else choice_rules.get(PICA)).from_settings(method)
