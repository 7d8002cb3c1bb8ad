"""Which answer choice a run uses: ``--choose`` resolved against the index's choosers and their
verdicts (:mod:`pica.choice.trust`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pica.choice.chooser import chooser_path, find_chooser
from pica.choice.rules import LEARNED, PICA
from pica.errors import InputError
from pica.registry import choice_rules


def resolve_choice(choose: str, index: Any, target: Mapping[str, Any]) -> dict[str, Any]:
    """How answers are chosen, resolved from ``--choose``, the index and the chooser target:
    ``method`` (``learned`` or a rule that picks among completions: ``logprob``, ``vote``,
    ``prophet`` ...), ``chooser`` (the
    :class:`~pica.choice.chooser.Chooser` or ``None``), ``sha256`` of its file and ``info`` (what
    :func:`pica.choice.trust.choice_line` describes).

    ``auto`` uses the index's chooser for ``target`` only when its verdict trusts it (a clearly
    positive held-back gain over greedy); an untrusted one is left to ``--choose learned`` and the
    choice resolves to ``logprob``, exactly as without a chooser.

    Raises:
        InputError: ``learned`` without an index or without a matching chooser.
    """
    def plain(method: str, **info: Any) -> dict[str, Any]:
        return {"method": method, "chooser": None, "sha256": None,
                "info": {"method": method, "requested": choose, "chooser": None, **info}}

    rule = choice_rules.get(choose)
    if rule.ensemble:
        return plain(choose)
    required = rule.chooser == "required"
    if index is None:
        if required:
            raise InputError(f"--choose {choose} needs an example index (its chooser and neighbours)")
        return plain(PICA, note="no example index")
    found = find_chooser(index.path, dict(target), required=required)
    if found is None:
        return plain(PICA, note="the index has no chooser for these settings")
    chooser, sha = found
    path = str(chooser_path(index.path, dict(target)))
    v = chooser.verdict
    measured = {"gain": v.get("gain"), "se": v.get("se"), "n": v.get("n"),
                "trusted": chooser.trusted, "reason": v.get("reason")}
    if not required and not chooser.trusted:
        return plain(PICA, untrusted_chooser=path, **measured)
    return {"method": LEARNED, "chooser": chooser, "sha256": sha,
            "info": {"method": LEARNED, "requested": choose, "chooser": path, "sha256": sha, **measured}}
