"""When a learned chooser is trusted as the ``--choose auto`` default.

The rule (README, docs/ARCHITECTURE.md): calibration holds back a share of the sampled images,
fits a chooser on the rest and compares it with greedy on the held-back questions, question by
question. The chooser becomes the default only when that paired gain is clearly positive:

    gain > 0  and  gain >= TRUST_SE * SE(gain)  and  n >= MIN_HELDOUT

where ``gain`` is the mean of (chooser score - greedy score) over the ``n`` held-back questions
in points, and ``SE(gain)`` its standard error. Otherwise the chooser is saved but kept for
``--choose learned`` only. The verdict is written into the chooser file; a file without one (made
by an older pica) is judged by the same rule from its training figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pica.choice.rules import LEARNED

TRUST_SE = 2.0
MIN_HELDOUT = 2  # a standard error needs two paired differences
RULE = (f"held-back paired gain over greedy > 0 and >= {TRUST_SE:g} SE"
        f" (n >= {MIN_HELDOUT} held-back questions)")


def judge(training: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict on a chooser from its training figures.

    Args:
        training: A chooser's ``training`` figures (``heldout_questions``,
            ``heldout_greedy_accuracy``, ``heldout_chooser_accuracy`` in percent,
            ``heldout_difference_se`` in points; ``heldout_gain`` when recorded).

    Returns:
        ``{"trusted": bool, "gain": points or None, "se": points or None, "n": int, "rule": RULE,
        "reason": one sentence with the numbers}``.
    """
    n = int(training.get("heldout_questions") or 0)
    if "heldout_chooser_accuracy" not in training or "heldout_greedy_accuracy" not in training:
        return {"trusted": False, "gain": None, "se": None, "n": n, "rule": RULE,
                "reason": f"no held-back comparison with greedy was measured (n={n})"}
    gain = training.get("heldout_gain")
    if gain is None:
        gain = float(training["heldout_chooser_accuracy"]) - float(training["heldout_greedy_accuracy"])
    gain, se = round(float(gain), 2), round(float(training.get("heldout_difference_se") or 0.0), 2)
    trusted = n >= MIN_HELDOUT and gain > 0 and gain >= TRUST_SE * se
    figures = f"held-back gain over greedy {gain:+.2f} ± {se:.2f} points (n={n})"
    if trusted:
        reason = f"{figures} is at least {TRUST_SE:g} SE above 0"
    elif n < MIN_HELDOUT:
        reason = f"{figures}: too few held-back questions to measure it"
    else:
        reason = (f"{figures} is not clearly positive: it needs > 0 and >= {TRUST_SE:g} SE"
                  f" = {TRUST_SE * se:.2f}")
    return {"trusted": trusted, "gain": gain, "se": se, "n": n, "rule": RULE, "reason": reason}


def read_verdict(data: Any, training: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict stored in a chooser file (``data``), or :func:`judge` of ``training`` when the
    file has none (or an unreadable one)."""
    if isinstance(data, Mapping) and isinstance(data.get("trusted"), bool):
        return {**judge(training), **dict(data)}
    return judge(training)


def choice_line(info: Mapping[str, Any]) -> str:
    """One line describing a resolved answer choice (:attr:`pica.pipeline.Pipeline.choice_info`),
    e.g. ``answer choice: learned (chooser INDEX/choosers/x.json; held-back gain +2.10 ± 0.80
    points, n=500)``."""
    method = info.get("method")
    if method == LEARNED:
        return (f"answer choice: learned (chooser {info.get('chooser')}; {_gain(info)}"
                + ("" if info.get("trusted") else "; not trusted as the auto default, used because"
                   " --choose learned") + ")")
    if info.get("untrusted_chooser"):
        return (f"answer choice: {method} (the index's chooser {info['untrusted_chooser']} is kept"
                f" for --choose learned only: {info.get('reason')})")
    return f"answer choice: {method}" + (f" ({info['note']})" if info.get("note") else "")


def _gain(info: Mapping[str, Any]) -> str:
    if info.get("gain") is None:
        return f"no held-back gain measured (n={info.get('n', 0)})"
    return f"held-back gain {info['gain']:+.2f} ± {info['se']:.2f} points, n={info['n']}"
