"""Which examples go into the prompts: similarity search, random draws, and answer candidates.

PICa's multi-query ensemble takes the top ``shots x n`` neighbours and gives prompt ``i`` the
``i``-th disjoint slice of ``shots``. Prophet-style candidates are the neighbours' answers,
weighted by similarity. Prophet's answer-aware examples file gives each question its ids instead
(:func:`file_examples`).
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from pica.answers import normalize_answer
from pica.errors import InputError
from pica.retrieval.index import ExampleIndex, Hit

# Which vector kinds each --selection uses; "auto" = all kinds the index has.
SELECTION_KINDS = {
    "question": ("question",),
    "image+question": ("question", "image"),
    "caption+question": ("question", "caption"),
}


def kinds_for(selection: str, index: ExampleIndex, have_image: bool) -> tuple[str, ...]:
    """The vector kinds to search with, checked against the index.

    Without an image for the query, ``image`` similarity is left out.

    Raises:
        InputError: the selection needs a kind the index lacks.
    """
    if selection == "random":
        return ()
    kinds = tuple(index.kinds) if selection == "auto" else SELECTION_KINDS[selection]
    missing = [k for k in kinds if k not in index.kinds]
    if missing:
        raise InputError(
            f"--selection {selection} needs '{missing[0]}' vectors but index {index.path} has"
            f" {', '.join(index.kinds)}; use --selection auto"
        )
    if not have_image:
        kinds = tuple(k for k in kinds if k != "image")
    return kinds or ("question",)


def random_hits(index: ExampleIndex, k: int, seed: int, question_id: str) -> list[Hit]:
    """``k`` random examples, reproducible per (seed, question id) whatever the run order."""
    return index.random(k, seed=zlib.crc32(f"{seed}:{question_id}".encode()))


def ensemble_slices(hits: Sequence[Hit], shots: int, n: int) -> list[list[Hit]]:
    """Split the nearest ``shots x n`` hits into ``n`` disjoint slices (PICa)."""
    return [list(hits[i * shots:(i + 1) * shots]) for i in range(n)]


def candidates_from(
    index: ExampleIndex, hits: Sequence[Hit], top: int, temperature: float = 0.05
) -> list[tuple[str, float]]:
    """Answer candidates with confidences from the neighbours' answers.

    Each neighbour votes for its answers with weight ``softmax(similarity / temperature)`` times
    the answer's share of that neighbour's answer weights.

    Returns:
        Up to ``top`` ``(answer, confidence)`` pairs, confidences summing to <= 1, best first.
    """
    if not hits or top <= 0:
        return []
    scores = np.array([h.score for h in hits], dtype=np.float64)
    weights = np.exp((scores - scores.max()) / temperature) if scores.any() else np.ones(len(hits))
    weights /= weights.sum()
    votes: dict[str, float] = defaultdict(float)
    for hit, w in zip(hits, weights):
        ex = index.example(hit.row)
        answers = ex.answers or {ex.answer: 1.0}
        total = sum(answers.values()) or 1.0
        for answer, weight in answers.items():
            key = normalize_answer(answer)
            if key:
                votes[key] += w * weight / total
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:top]


def answer_aware(index: ExampleIndex, hits: Sequence[Hit], n: int, top: int) -> list[Hit]:
    """``n`` examples among ``hits`` (most similar first), preferring those whose shown answer is
    among the neighbours' ``top`` candidate answers (Prophet's answer-aware examples); each group
    keeps similarity order, so the preferred ones end up nearest the query in the prompt."""
    good = {answer for answer, _ in candidates_from(index, hits, top)}
    first = [h for h in hits if normalize_answer(index.example(h.row).answer) in good]
    chosen = {h.row for h in first}
    return (first + [h for h in hits if h.row not in chosen])[:n]


def file_examples(index: ExampleIndex, ids: Sequence[str], n: int, seed: int, question_id: str,
                  source: str = "the examples file") -> list[Hit]:
    """The first ``n`` example ids of a question in Prophet's answer-aware examples file, shuffled
    as Prophet's ``prompt.py`` shuffles them before slicing them into the ensemble's prompts (here
    seeded per (seed, question id), so runs are reproducible whatever their order).

    Raises:
        InputError: an id is not in the index (naming it and the question).
    """
    chosen = list(ids[:n])
    random.Random(zlib.crc32(f"{seed}:{question_id}".encode())).shuffle(chosen)
    hits = []
    for example_id in chosen:
        row = index.row_of_id(example_id)
        if row is None:
            raise InputError(f"example {example_id} of question {question_id} in {source} is not in"
                             f" index {index.path}; build the index from the questions the file's ids name")
        hits.append(Hit(row, 0.0))
    return hits


def example_candidates(index: ExampleIndex, hits: Sequence[Hit], top: int, pool: int,
                       weights: dict[str, float]) -> dict[str, list[tuple[str, float]]]:
    """The answer candidates of each hit's example, from that example's own ``pool`` nearest
    neighbours (itself and its image's examples left out), by example id."""
    rows = [h.row for h in hits]
    if not rows:
        return {}
    queries = {kind: index.row_vectors(kind, rows) for kind in index.kinds}
    found = index.nearest(queries, pool, weights, exclude=[[row] for row in rows],
                          exclude_images=[index.example(row).image_id for row in rows])
    return {index.example(row).id: candidates_from(index, nb, top) for row, nb in zip(rows, found)}
