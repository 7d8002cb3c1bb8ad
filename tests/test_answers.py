"""The official VQA normalization and accuracy, against hand-computed tables."""

import pytest

from pica.answers import majority_answer, normalize_answer, score, soft_score, vqa_accuracy


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Baseball Glove", "baseball glove"),
        ("  the dog\n", "dog"),
        ("A cat", "cat"),
        ("an apple", "apple"),
        ("Two", "2"),
        ("ten dogs", "10 dogs"),
        ("none", "0"),
        ("dont", "don't"),
        ("its dont know", "its don't know"),
        ("yes.", "yes"),
        ("3.5", "3.5"),
        ("1,000", "1000"),  # a number with a comma: every listed mark is deleted
        ("t-shirt", "t shirt"),  # no space next to the mark: it becomes a space
        ("dog , cat", "dog cat"),  # mark next to a space: deleted (split() folds the gap)
        ("hot dog!", "hot dog"),
        ("fish\tchips", "fish chips"),
        ("(tennis)", "tennis"),
        ("mom's", "mom's"),  # apostrophes are not punctuation in the official list
        ("The Three", "3"),
        ("", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        # 10 identical answers: every leave-one-out subset has 9 matches -> 1.0
        ("dog", ["dog"] * 10, 1.0),
        # 3 matches: subsets dropping a match have 2 (2/3), the other 7 have 3 (1.0)
        ("dog", ["dog"] * 3 + ["cat"] * 7, (3 * (2 / 3) + 7 * 1.0) / 10),
        # 2 matches: dropping a match leaves 1 (1/3) twice; otherwise 2 (2/3) eight times
        ("dog", ["dog"] * 2 + ["cat"] * 8, (2 * (1 / 3) + 8 * (2 / 3)) / 10),
        # 1 match: 0 when dropped, 1/3 in the other 9 subsets -> 0.3
        ("dog", ["dog"] + ["cat"] * 9, 0.3),
        ("dog", ["cat"] * 10, 0.0),
        # 4 matches: dropping one leaves 3 -> 1.0 everywhere
        ("dog", ["dog"] * 4 + ["cat"] * 6, 1.0),
        # normalization applies to both sides: articles, case, number words
        ("The Dog", ["dog", "a dog", "DOG"] + ["cat"] * 7, (3 * (2 / 3) + 7) / 10),
        ("two", ["2", "2", "two", "3"] + ["x"] * 6, (3 * (2 / 3) + 7) / 10),
        ("", ["dog"] * 10, 0.0),
    ],
)
def test_vqa_accuracy(prediction, gold, expected):
    assert vqa_accuracy(prediction, gold) == pytest.approx(expected)


def test_vqa_accuracy_without_gold_is_zero():
    assert vqa_accuracy("dog", []) == 0.0


def test_soft_score_uses_label_of_normalized_prediction():
    label = {"stuffed animal": 1.0, "teddy bear": 0.667}
    assert soft_score("A Teddy Bear.", label) == pytest.approx(0.667)
    assert soft_score("stuffed animal", label) == 1.0
    assert soft_score("doll", label) == 0.0


def test_score_prefers_raw_answers_over_labels():
    assert score("dog", ["dog"] * 10, {"cat": 1.0}) == 1.0
    assert score("cat", [], {"cat": 0.667}) == pytest.approx(0.667)
    assert score("cat", [], None) == 0.0


def test_majority_answer_breaks_ties_by_first_seen():
    assert majority_answer(["Cat", "dog", "cat", "dog"]) == "cat"
    assert majority_answer(["the dog", "dog", "cat"]) == "dog"
    assert majority_answer(["", " "]) == ""
