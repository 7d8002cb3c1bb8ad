"""Ensemble slicing, answer choice (PICa log-prob / Prophet vote) and neighbour candidates."""

import math

import numpy as np
import pytest

from pica.choice.rules import choose
from pica.retrieval.index import ExampleIndex, Hit
from pica.retrieval.selection import candidates_from, ensemble_slices
from pica.retrieval.writer import IndexWriter


def test_ensemble_slices_are_disjoint_consecutive_blocks():
    hits = [Hit(i, 1 - i / 100) for i in range(80)]
    slices = ensemble_slices(hits, shots=16, n=5)
    assert [s[0].row for s in slices] == [0, 16, 32, 48, 64]
    assert sum(len(s) for s in slices) == 80
    assert len({h.row for s in slices for h in s}) == 80


def test_choose_by_logprob_takes_the_most_confident():
    assert choose(["dog", "cat", "dog"], [-2.0, -0.5, -1.0], "logprob") == 1


def test_choose_by_vote_sums_probabilities_per_answer():
    # cat: e^-0.5 = 0.61; dog: e^-1 + e^-1.2 = 0.67 -> dog wins; its best member is index 0
    answers, logprobs = ["dog", "cat", "dog"], [-1.0, -0.5, -1.2]
    assert math.exp(-1.0) + math.exp(-1.2) > math.exp(-0.5)
    assert choose(answers, logprobs, "vote") == 0


def test_without_logprobs_both_methods_fall_back_to_frequency():
    assert choose(["cat", "dog", "dog"], [None, None, None], "logprob") == 1
    assert choose(["cat", "dog", "dog"], [None, None, None], "vote") == 1


def test_choose_needs_answers():
    with pytest.raises(ValueError):
        choose([], [], "vote")


def test_candidates_weight_neighbours_by_similarity(tmp_path):
    from pica.types import Example

    examples = [Example(id="a", question="q", answer="dog", caption="c", answers={"dog": 2, "puppy": 1}),
                Example(id="b", question="q", answer="cat", caption="c", answers={"Cat": 1}),
                Example(id="c", question="q", answer="dog", caption="c", answers={})]
    with IndexWriter(tmp_path / "i", "x:y", {"question": 2}) as w:
        w.add(examples, {"question": np.eye(2, dtype=np.float32)[[0, 1, 0]]})
    index = ExampleIndex.load(tmp_path / "i")
    # weights softmax(0.9, 0.5, 0.9): .37, .25, .37; dog = .37 * 2/3 + .37 (c has no answer
    # weights: its answer counts fully), cat = .25 ("Cat" normalized), puppy = .37 / 3
    cands = candidates_from(index, [Hit(0, 0.9), Hit(1, 0.5), Hit(2, 0.9)], top=3, temperature=1.0)
    w = np.exp([0.0, -0.4, 0.0]) / np.exp([0.0, -0.4, 0.0]).sum()
    assert [c[0] for c in cands] == ["dog", "cat", "puppy"]
    assert [c[1] for c in cands] == pytest.approx([w[0] * 2 / 3 + w[2], w[1], w[0] / 3])
    best = candidates_from(index, [Hit(0, 0.9), Hit(1, 0.5), Hit(2, 0.9)], top=1, temperature=1.0)
    assert [c[0] for c in best] == ["dog"]
    assert candidates_from(index, [], top=3) == []
