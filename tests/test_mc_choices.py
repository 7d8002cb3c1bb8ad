"""Multiple choice from an index without choices (a plain OK-VQA pool): the choices examples show
(no first-choice lesson), and the scoring rules of ``--mc-score``."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from fakes import FakeBackend, FakeEmbedder, fake_index

from pica.answers import normalize_answer
from pica.config import Settings
from pica.llm.prompts import build_prompt, example_choices, load_choices_template
from pica.pipeline import Pipeline
from pica.tasks.multiple_choice import rank_choices
from pica.types import Example, Question

WORDS = ["tennis", "milk", "london", "winter", "italy", "apple", "surfing", "leaves", "japan", "bus"]


def plain(i: int, answer: str | None = None) -> Example:
    """An OK-VQA-style example: gold answers with weights, no choices."""
    answer = answer or WORDS[i % len(WORDS)]
    return Example(id=f"ex{i}", question=f"question {i}?", answer=answer, caption=f"caption {i}",
                   answers={answer: 1.0, f"{answer}s": 0.6, WORDS[(i + 5) % len(WORDS)] + "-ish": 0.3})


def test_plain_example_shows_its_answer_among_other_examples_answers():
    ex, others = plain(0), [plain(i) for i in range(1, 4)]
    choices, correct = example_choices(ex, others, 4)
    assert len(choices) == 4 and choices[correct] == "tennis"
    assert sum(c == "tennis" for c in choices) == 1
    own = {normalize_answer(a) for a in ex.answers}
    offered = {normalize_answer(a) for o in others for a in (o.answer, *o.answers)}
    assert all(normalize_answer(c) not in own and normalize_answer(c) in offered
               for i, c in enumerate(choices) if i != correct)
    # deterministic, and independent of the order the other examples come in
    assert example_choices(ex, others, 4) == example_choices(ex, list(reversed(others)), 4)


def test_the_answer_position_is_spread_evenly_over_examples():
    others = [plain(i) for i in range(1, 4)]
    positions = Counter(example_choices(Example(id=f"id-{k}", question="q?", answer="zebra", caption="c",
                                                answers={"zebra": 1.0}), others, 4)[1]
                        for k in range(800))
    assert set(positions) == {0, 1, 2, 3}
    assert all(150 <= count <= 250 for count in positions.values()), positions  # 200 expected


def test_few_distractors_give_fewer_choices_and_own_choices_are_kept():
    lone = plain(0)
    assert example_choices(lone, [], 4) == (("tennis",), 0)
    same = Example(id="x", question="q?", answer="tennis", caption="c", answers={"tennis": 1.0})
    assert example_choices(lone, [same], 4) == (("tennis",), 0)  # its answers are not distractors
    own = Example(id="a", question="q?", answer="tennis", caption="c",
                  choices=("golf", "tennis", "polo", "chess"), correct_choice_idx=1)
    assert example_choices(own, [plain(1)], 4) == (("golf", "tennis", "polo", "chess"), 1)


def test_mc_prompt_from_a_plain_index_has_no_first_choice_lesson():
    examples = [plain(i) for i in range(12)]
    template = load_choices_template("pica")
    firsts = []
    for start in range(0, 12, 4):
        text = build_prompt(template, "cap", "which?", examples[start:start + 4],
                            choices=["a", "b", "c", "d"]).text
        blocks = re.findall(r"Choices: (.*)\nA: (.*)\n", text)
        assert len(blocks) == 5 - 1  # four examples (the query has no answer yet)
        for listed, answer in blocks:
            listed = listed.split(", ")
            assert len(listed) == 4 and answer in listed
            firsts.append(listed.index(answer) == 0)
    assert not all(firsts) and any(not f for f in firsts)


def test_rank_choices_rules():
    scores, tokens, prior = [-2.0, -6.0, -3.0], [1, 4, 1], [-1.0, -7.0, -3.5]
    assert rank_choices(scores, tokens, prior, "sum") == scores
    assert rank_choices(scores, tokens, prior, "mean") == [-2.0, -1.5, -3.0]
    assert rank_choices(scores, tokens, prior, "calibrated") == [-1.0, 1.0, 0.5]


class PositionBackend(FakeBackend):
    """Favours whatever choice is listed first in the query's Choices line (a position bias), a
    little more under a real query than under the content-free one, and likes ``polo``."""

    def __init__(self) -> None:
        super().__init__()
        self.scored: list[str] = []

    def score(self, prompt, continuations):
        self.scored.append(prompt)
        first = prompt.rsplit("Choices: ", 1)[1].split(",")[0].strip()
        blank = "Q: N/A" in prompt
        return [(-1.0 if c.strip() == first else -4.0) + (0.0 if blank or c.strip() != "polo" else 2.5)
                for c in continuations]


@pytest.mark.parametrize("rule, expected", [("sum", "golf"), ("calibrated", "polo"), ("auto", "polo")])
def test_calibrated_scoring_removes_the_position_prior(tmp_path, rule, expected):
    index = fake_index(tmp_path / "idx", [plain(i) for i in range(8)])
    backend = PositionBackend()
    pipeline = Pipeline(Settings(index=None, task="mc", mc_method="score", mc_score=rule, shots=2),
                        backend=backend, index=index, embedder=FakeEmbedder())
    question = Question(id="q1", question="Which sport?", caption="a field", scoring="aokvqa",
                        choices=["golf", "tennis", "polo", "chess"], correct_choice_idx=2)
    answer = pipeline.answer(question)
    assert answer.answer == expected
    mc = answer.mc
    assert len(mc["scores"][0]) == len(mc["tokens"][0]) == 4 and mc["tokens"][0] == [1, 1, 1, 1]
    assert mc["rule"] == ("calibrated" if rule == "auto" else rule)  # auto: a plain index
    if mc["rule"] == "calibrated":
        assert len(backend.scored) == 2 and "Context: N/A" in backend.scored[1]
        assert "Q: N/A" in backend.scored[1] and len(mc["prior"][0]) == 4
        assert mc["ranking"][0] == [s - p for s, p in zip(mc["scores"][0], mc["prior"][0])]
    else:
        assert len(backend.scored) == 1 and mc["prior"] == []


def test_auto_scores_by_sum_when_examples_have_their_own_choices(tmp_path):
    examples = [Example(id=f"e{i}", question=f"q {i}?", answer="tennis", caption=f"c {i}",
                        choices=("golf", "tennis", "polo", "chess"), correct_choice_idx=1) for i in range(4)]
    backend = PositionBackend()
    pipeline = Pipeline(Settings(index=None, task="mc", mc_method="score", shots=2), backend=backend,
                        index=fake_index(tmp_path / "idx", examples), embedder=FakeEmbedder())
    question = Question(id="q1", question="Which sport?", caption="a field", scoring="aokvqa",
                        choices=["golf", "tennis", "polo", "chess"], correct_choice_idx=2)
    answer = pipeline.answer(question)
    assert answer.mc["rule"] == "sum" and len(backend.scored) == 1 and answer.answer == "golf"
