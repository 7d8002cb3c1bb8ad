"""The pipeline's own logic on fakes (no model, no torch): fast unit tests.

Ensemble choice, trimming to the context window, own-image exclusion, zero-shot, candidates.
"""

from __future__ import annotations

import pytest
from fakes import FakeBackend, FakeEmbedder, fake_index

from pica.config import Settings
from pica.errors import InputError
from pica.pipeline import Pipeline
from pica.types import Example, Question

TOPICS = ["surfing", "baseball", "tennis", "skiing", "pizza", "broccoli", "london", "paris"]


def examples() -> list[Example]:
    """Two examples per image; the question of example ``t-k`` names topic ``t``."""
    rows = []
    for i, topic in enumerate(TOPICS):
        for k in range(2):
            rows.append(Example(id=f"{topic}-{k}", question=f"what about {topic} number {k}?",
                                answer=topic, caption=f"a photo of {topic}", image_id=str(100 + i),
                                answers={topic: 3.0, f"{topic} {k}": 1.0}))
    return rows


@pytest.fixture
def index(tmp_path):
    return fake_index(tmp_path / "idx", examples())


def pipeline(index, backend=None, **settings) -> Pipeline:
    return Pipeline(Settings(index=str(index.path), **settings), backend=backend or FakeBackend(),
                    index=index, embedder=FakeEmbedder())


def ask(text: str, caption: str = "a photo of something", image_id: str | None = None) -> Question:
    return Question(id="q1", question=text, caption=caption, image_id=image_id)


def test_the_most_similar_example_comes_last_in_the_prompt(index):
    backend = FakeBackend()
    answer = pipeline(index, backend, shots=2).answer(ask("what about tennis number 1?"))
    assert answer.example_ids[0][-1] == "tennis-1"  # exact question match: most similar, last
    prompt = backend.prompts[0]
    assert prompt.rindex("Q: what about tennis number 1?\nA: tennis") < prompt.rindex("Q: what about tennis number 1?\nA:")
    assert prompt.endswith("Context: a photo of something\n===\nQ: what about tennis number 1?\nA:")


def test_own_image_examples_are_never_shown(index):
    backend = FakeBackend()
    p = pipeline(index, backend, shots=4)
    shown = p.answer(ask("what about tennis number 1?", image_id="102")).example_ids[0]
    assert shown and not {"tennis-0", "tennis-1"} & set(shown)  # image 102 holds both tennis examples
    assert "tennis-1" in p.answer(ask("what about tennis number 1?", image_id="999")).example_ids[0]


def test_zero_shot_without_index_or_with_zero_shots(index):
    backend = FakeBackend()
    answer = pipeline(index, backend, shots=0).answer(ask("what sport?"))
    assert answer.example_ids == [[]]
    assert "A: " not in backend.prompts[0].replace("\nA:", "")  # no solved example in the prompt
    assert Pipeline(Settings(index="none"), backend=FakeBackend()).zero_shot


def test_ensemble_prompts_use_disjoint_slices_and_the_best_logprob_wins(index):
    replies = iter([" dog", " cat", " dog"])
    logprobs = iter([-2.0, -0.1, -1.0])
    backend = FakeBackend(reply=lambda p: next(replies), logprob=lambda p: next(logprobs))
    answer = pipeline(index, backend, shots=2, ensemble=3).answer(ask("what about pizza number 0?"))
    ids = answer.example_ids
    assert len(ids) == 3 and all(len(s) == 2 for s in ids)
    assert len({e for s in ids for e in s}) == 6  # disjoint
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 3  # one call per question
    assert answer.answer == "cat" and answer.logprob == -0.1
    assert [c["answer"] for c in answer.candidates] == ["dog", "cat", "dog"]


def test_vote_sums_probabilities_per_answer(index):
    replies = iter([" dog", " cat", " dog"])
    logprobs = iter([-1.0, -0.5, -1.2])
    backend = FakeBackend(reply=lambda p: next(replies), logprob=lambda p: next(logprobs))
    answer = pipeline(index, backend, shots=1, ensemble=3, choose="vote").answer(ask("what?"))
    assert answer.answer == "dog"


def test_prompts_are_trimmed_to_the_context_window(index):
    full = FakeBackend()
    pipeline(index, full, shots=8).answer(ask("what about paris number 0?"))
    words = full.count_tokens(full.prompts[0])
    small = FakeBackend(n_ctx=words - 20)  # room for fewer examples
    answer = pipeline(index, small, shots=8, max_tokens=5).answer(ask("what about paris number 0?"))
    kept = answer.example_ids[0]
    assert 0 < len(kept) < 8
    assert small.count_tokens(small.prompts[0]) + 5 <= words - 20
    assert kept[-1] == "paris-0"  # the least similar examples go first


def test_a_question_that_cannot_fit_is_an_input_error(index):
    with pytest.raises(InputError, match="overflow the LLM context"):
        pipeline(index, FakeBackend(n_ctx=5)).answer(ask("what about paris number 0?"))


def test_candidates_template_lists_the_neighbours_answers(index):
    backend = FakeBackend()
    pipeline(index, backend, shots=2, template="prophet", candidates=2).answer(
        ask("what about london number 1?", caption="a photo of london"))
    prompt = backend.prompts[0]
    query = prompt[prompt.rindex("Context: a photo of london.\n"):]
    assert "london(" in query  # the query's candidates come from its neighbours' answers


def test_empty_question_and_normalized_answer(index):
    with pytest.raises(InputError, match="empty"):
        pipeline(index).answer(ask("   "))
    backend = FakeBackend(reply=lambda p: " The Dogs.")
    assert pipeline(index, backend).answer(ask("what?")).answer == "dogs"


def test_answers_stream_in_input_order_with_a_thread_safe_backend(index):
    backend = FakeBackend(reply=lambda p: " " + p.rsplit("Q: ", 1)[1].split("?")[0].split()[-1],
                          thread_safe=True)
    questions = [Question(id=str(i), question=f"what about {t} number {i % 2}?", caption="x")
                 for i, t in enumerate(TOPICS)]
    p = pipeline(index, backend, shots=1, concurrency=4)
    assert [a.question_id for a in p.answer_stream(questions)] == [q.id for q in questions]
    assert [a.answer for a in p.answer_stream(questions)] == [str(i % 2) for i in range(len(TOPICS))]


def test_question_from_image_takes_the_image_id_from_the_file_name(tmp_path):
    q = Question.from_image(tmp_path / "COCO_val2014_000000297147.jpg", "  What is this? ")
    assert (q.image_id, q.question, q.caption) == ("297147", "What is this?", None)
    with pytest.raises(InputError, match="question is empty"):
        Question.from_image(tmp_path / "x.jpg", " ")


def test_default_choice_without_a_chooser_is_picas_logprob(index):
    # --choose auto (the default) with an index that has no fitted chooser: the ensemble answer
    # is the most confident completion, not a vote.
    replies = iter([" dog", " cat", " dog"])
    logprobs = iter([-1.0, -0.5, -1.2])
    backend = FakeBackend(reply=lambda p: next(replies), logprob=lambda p: next(logprobs))
    p = pipeline(index, backend, shots=1, ensemble=3)
    assert p.settings.choose == "auto" and p.choice["method"] == "logprob"
    assert p.answer(ask("what?")).answer == "cat"
