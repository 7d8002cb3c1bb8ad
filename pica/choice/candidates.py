"""Answer candidates of one question and the features a learned chooser ranks them by.

Candidates are the greedy answer(s) of the prompts plus the top-M answers of the K nearest
examples (Prophet-style similarity-weighted confidences, :func:`pica.retrieval.selection.candidates_from`),
deduplicated after VQA normalization, greedy first. Each is scored by its log-prob as the
continuation of the first prompt (``" answer"``, its tokens alone: :data:`SCORING`), all in one
backend call that shares the prompt's KV cache.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pica.answers import normalize_answer
from pica.retrieval.index import ExampleIndex, Hit
from pica.retrieval.selection import candidates_from

# The features, in the order a chooser's coefficients use.
FEATURES = (
    "lp_sum", "lp_mean", "lp_rel", "lp_mean_rel", "lp_rank", "n_tokens", "is_greedy", "conf",
    "log_conf", "n_neighbours", "best_sim", "first_rank", "log_freq", "caption_overlap",
    "question_overlap", "n_words", "file_conf",
)

# What a candidate's log-prob covers: its answer's tokens alone. Until issue 22 the template's end
# of answer was scored too (``answer+end``: " answer\n\n"), which needs a logits row after every
# candidate's last token, 14.0 rows a question instead of 5.4 on the OK-VQA pool (a row is Gemma's
# 262,144-word output projection). Measured on 2,000 pool questions, cross-validated by image
# (bench/chooser_tables.py --other-scoring, BENCHMARKS.md): the chooser does no worse without it.
# Choosers record it (``candidate_scoring``) and are used only with the scoring they were fitted on.
SCORING = "answer"
SCORINGS = ("answer", "answer+end")

_WORD = re.compile(r"[a-z0-9']+")


def answer_counts(index: ExampleIndex) -> Counter:
    """How many examples of ``index`` list each normalized answer (cached on the index)."""
    counts = getattr(index, "_answer_counts", None)
    if counts is None:
        counts = Counter()
        for row in range(len(index)):
            counts.update(_example_answers(index, row))
        index._answer_counts = counts
    return counts


def own_answers(index: ExampleIndex, rows: Iterable[int]) -> Counter:
    """How many of the examples at ``rows`` list each normalized answer, each row counted once
    (a row listed twice is still one example): what answer frequencies leave out for a question."""
    own: Counter = Counter()
    for row in set(rows):
        own.update(_example_answers(index, row))
    return own


def _example_answers(index: ExampleIndex, row: int) -> set[str]:
    ex = index.example(row)
    return {k for k in (normalize_answer(a) for a in (ex.answers or {ex.answer: 1.0})) if k}


def answer_end(template_example: str) -> str:
    """What follows ``{answer}`` in an example block up to the first non-newline (``"\\n\\n"`` for
    PICa), so a candidate is scored as a finished answer, not as the start of a longer one."""
    tail = template_example.split("{answer}", 1)[1] if "{answer}" in template_example else "\n"
    return tail[: len(tail) - len(tail.lstrip("\n"))] or "\n"


def scored_end(template_example: str, scoring: str = SCORING) -> str:
    """What is scored after each candidate's answer: nothing (``answer``), or the template's end
    of answer (``answer+end``, :func:`answer_end`)."""
    if scoring not in SCORINGS:
        raise ValueError(f"unknown candidate scoring {scoring!r}; one of {', '.join(SCORINGS)}")
    return answer_end(template_example) if scoring == "answer+end" else ""


def gather(greedy: Sequence[str], index: ExampleIndex | None, neighbours: Sequence[Hit],
           top: int, stage_one: Sequence[tuple[str, float]] | None = None) -> list[dict[str, Any]]:
    """The candidate list: greedy answers first, then the neighbours' top answers, then the top
    answers of a candidates file, deduplicated.

    Args:
        greedy: Normalized greedy answers of the prompts, in prompt order.
        index: The example index (``None``: greedy answers only).
        neighbours: The K nearest examples, most similar first.
        top: M, neighbour answers (and file answers) to add.
        stage_one: The question's candidates from ``--candidates-file``, best first, or ``None``.

    Returns:
        One dict per distinct non-empty answer: ``answer``, ``greedy`` (bool), ``conf``,
        ``file_conf`` (its confidence in the file, 0 if absent).
    """
    conf = dict(candidates_from(index, neighbours, top)) if index is not None else {}
    file_conf: dict[str, float] = {}
    for answer, value in stage_one or ():
        file_conf.setdefault(normalize_answer(answer), float(value))
    file_top = [a for a in file_conf if a][:top]
    out: dict[str, dict[str, Any]] = {}
    for answer in greedy:
        if answer and answer not in out:
            out[answer] = {"answer": answer, "greedy": True, "conf": 0.0}
    for answer in [*conf, *file_top]:
        out.setdefault(answer, {"answer": answer, "greedy": False, "conf": 0.0})
    for answer, cand in out.items():
        cand["conf"] = float(conf.get(answer, 0.0))
        cand["file_conf"] = file_conf.get(answer, 0.0)
    return list(out.values())


def _words(text: str) -> set[str]:
    return set(_WORD.findall(normalize_answer(text)))


def featurize(cands: list[dict[str, Any]], scored: Sequence[tuple[float, int]] | None, *,
              question: str, caption: str, index: ExampleIndex | None, neighbours: Sequence[Hit],
              exclude_rows: Iterable[int] = ()) -> None:
    """Add ``features`` (name -> float, names in :data:`FEATURES`) to each candidate in place.

    Args:
        cands: From :func:`gather`.
        scored: ``(summed log-prob, tokens)`` per candidate, or ``None`` when the backend cannot
            score (log-prob features are then 0).
        question, caption: The query's text, for word overlap.
        index: The example index, for neighbour and frequency features.
        neighbours: The K nearest examples, most similar first.
        exclude_rows: Rows not to count in answer frequencies (the query's own image, so a
            question of the index never counts its own answer).
    """
    k = max(len(neighbours), 1)
    giving: dict[str, list[tuple[int, float]]] = {}
    counts: Counter = Counter()
    if index is not None:
        for rank, hit in enumerate(neighbours):
            for answer in _example_answers(index, hit.row):
                giving.setdefault(answer, []).append((rank, hit.score))
        counts = answer_counts(index)
        own = own_answers(index, exclude_rows)
    else:
        own = Counter()
    qwords, cwords = _words(question), _words(caption)
    for cand, lp in zip(cands, logprob_features(scored, len(cands))):
        words = set(_WORD.findall(cand["answer"])) or {cand["answer"]}
        given = giving.get(cand["answer"], [])
        freq = max(counts.get(cand["answer"], 0) - own.get(cand["answer"], 0), 0)
        cand["features"] = {
            **lp, "is_greedy": float(cand["greedy"]),
            "conf": cand["conf"], "log_conf": math.log(cand["conf"] + 0.01),
            "n_neighbours": float(len(given)), "best_sim": max((s for _, s in given), default=0.0),
            "first_rank": (given[0][0] if given else k) / k, "log_freq": math.log1p(freq),
            "caption_overlap": len(words & cwords) / len(words),
            "question_overlap": len(words & qwords) / len(words),
            "n_words": float(len(cand["answer"].split())),
            "file_conf": float(cand.get("file_conf", 0.0)),
        }


def logprob_features(scored: Sequence[tuple[float, int]] | None, n: int) -> list[dict[str, float]]:
    """The log-prob features (``lp_*``, ``n_tokens``) of ``n`` candidates from their
    ``(summed log-prob, tokens)``, all 0 when ``scored`` is ``None``."""
    sums = [s[0] for s in scored] if scored else [0.0] * n
    lens = [max(s[1], 1) for s in scored] if scored else [1] * n
    means = [lp / k for lp, k in zip(sums, lens)]
    best_sum, best_mean = max(sums, default=0.0), max(means, default=0.0)
    rank_of = {i: r for r, i in enumerate(sorted(range(n), key=lambda i: -sums[i]))}
    return [{"lp_sum": sums[i], "lp_mean": means[i], "lp_rel": sums[i] - best_sum,
             "lp_mean_rel": means[i] - best_mean, "lp_rank": float(rank_of[i]),
             "n_tokens": float(lens[i]) if scored else 0.0} for i in range(n)]


def score_all(backend, prompt: str, cands: Sequence[dict[str, Any]], end: str
              ) -> list[tuple[float, int]] | None:
    """``(summed log-prob, tokens)`` of each candidate after ``prompt``, or ``None`` when the
    backend cannot score text (e.g. a chat-only server)."""
    if not cands:
        return []
    try:
        return backend.score_candidates(prompt, [" " + c["answer"] + end for c in cands])
    except NotImplementedError:
        return None


def candidate_table(backend, index: ExampleIndex, end: str, item, prompt: str, answers: Sequence[str],
                    completions: Sequence[Any], *, top: int, k: int,
                    stage_one: Sequence[tuple[str, float]] | None = None) -> list[dict[str, Any]]:
    """Greedy + neighbour candidates of one prepared question, scored under ``prompt``, with
    features.

    Args:
        backend: The LLM (``score_candidates``).
        index: The example index.
        end: What follows an answer in the template (:func:`answer_end`).
        item: The :class:`~pica.tasks.base.Prepared` question (its neighbours and excluded rows).
        prompt: The first prompt of the question's ensemble.
        answers: The normalized greedy answers, in prompt order.
        completions: Their completions.
        top: Answers taken from the neighbours (M).
        k: Neighbours the answers come from (K).
        stage_one: The question's candidates from a candidates file (:func:`gather`).

    Returns:
        One dict per candidate: answer, raw and logprob (of the greedy completion giving it, else
        ``None``), greedy, conf, logprob_scored, tokens, features.
    """
    neighbours = item.neighbours[:k]
    cands = gather(answers, index, neighbours, top, stage_one)
    scored = score_all(backend, prompt, cands, end)
    featurize(cands, scored, question=item.question.question, caption=item.caption, index=index,
              neighbours=neighbours, exclude_rows=item.exclude_rows)
    for i, cand in enumerate(cands):
        j = answers.index(cand["answer"]) if cand["answer"] in answers else None
        cand["raw"] = completions[j].text if j is not None else None
        cand["logprob"] = completions[j].logprob if j is not None else None
        cand["logprob_scored"] = scored[i][0] if scored else None
        cand["tokens"] = scored[i][1] if scored else None
        cand["features"] = {key: round(v, 6) for key, v in cand["features"].items()}
    return cands
