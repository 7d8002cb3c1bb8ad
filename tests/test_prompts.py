"""Prompt building: PICa format, most-similar-last order, trimming, templates as package data."""

import pytest

from pica.errors import InputError
from pica.llm.prompts import build_prompt, format_candidates, list_templates, load_template
from pica.types import Example

EXAMPLES = [  # as retrieval returns them: most similar first
    Example(id="near", question="What sport is this?", answer="tennis", caption="a man holding a racket."),
    Example(id="mid", question="What brand is the bike?", answer="honda", caption="a red motorcycle"),
    Example(id="far", question="What is he eating?", answer="pizza", caption="a boy eating"),
]


def test_pica_format_matches_the_paper_code():
    prompt = build_prompt(load_template("pica"), "a boy with a glove.", "What is he wearing?", EXAMPLES[:1])
    assert prompt.text == (
        "Please answer the question according to the above context.\n===\n"
        "Context: a man holding a racket\n===\nQ: What sport is this?\nA: tennis\n\n===\n"
        "Context: a boy with a glove\n===\nQ: What is he wearing?\nA:"
    )


def test_most_similar_example_comes_last():
    prompt = build_prompt(load_template("pica"), "c", "q?", EXAMPLES)
    assert prompt.example_ids == ["far", "mid", "near"]
    assert prompt.text.index("pizza") < prompt.text.index("honda") < prompt.text.index("tennis")


def test_overflow_drops_the_least_similar_examples_first():
    limit = len(build_prompt(load_template("pica"), "c", "q?", EXAMPLES[:2]).text)
    prompt = build_prompt(load_template("pica"), "c", "q?", EXAMPLES, fits=lambda t: len(t) <= limit)
    assert prompt.example_ids == ["mid", "near"]


def test_even_zero_shot_overflow_is_an_input_error():
    with pytest.raises(InputError, match="context"):
        build_prompt(load_template("pica"), "c", "q?", EXAMPLES, fits=lambda t: False)


def test_candidates_template_shows_candidates_for_examples_and_query():
    template = load_template("prophet")
    assert template.uses_candidates and not load_template("pica").uses_candidates
    prompt = build_prompt(template, "c", "q?", EXAMPLES[:1], candidates=format_candidates([("dog", 0.9)]),
                          example_candidates=lambda ex: f"cands of {ex.id}")
    assert "Candidates: cands of near\n===\nAnswer: tennis\n\n" in prompt.text
    assert prompt.text.endswith("===\nContext: c.\n===\nQuestion: q?\n===\nCandidates: dog(0.90)\n===\nAnswer:")


def test_packaged_templates_and_errors(tmp_path):
    assert {"pica", "lean", "prophet"} <= set(list_templates())
    with pytest.raises(InputError, match="did you mean 'pica'"):
        load_template("picaa")
    bad = tmp_path / "bad.toml"
    bad.write_text('header = "h"\nexample = "{nope}"\nquery = "q"\n')
    with pytest.raises(InputError, match="invalid"):
        load_template(str(bad))
    with pytest.raises(InputError, match="not found"):
        load_template(str(tmp_path / "missing.toml"))
    good = tmp_path / "mine.toml"
    good.write_text('header = ""\nexample = "{question} {answer}\\n"\nquery = "{question}"\n')
    prompt = build_prompt(load_template(str(good)), "c", "q", EXAMPLES[:1])
    assert prompt.text == "What sport is this? tennis\nq"
