"""Prophet's stage 2 from its released files: candidates, answer-aware examples, captions.

Fixture files are written in Prophet's own formats; prompts are compared with a transcription of
Prophet's ``prophet/stage2/prompt.py`` (``sample_make`` / ``get_context``) and its
``configs/prompt.yml``.
"""

from __future__ import annotations

import json
import random
import zlib

import pytest
from fakes import FakeBackend, FakeEmbedder, fake_index
from typer.testing import CliRunner

from pica.choice.candidates import FEATURES, featurize, gather
from pica.choice.chooser import Chooser
from pica.choice.ensemble import prophet_vote
from pica.choice.rules import choose
from pica.cli import app
from pica.config import Settings
from pica.datasets import read_captions
from pica.datasets.prophet import read_candidates, read_examples
from pica.errors import InputError
from pica.pipeline import Pipeline
from pica.types import Example, Question

# Prophet's configs/prompt.yml
PROMPT_HEAD = ("Please answer the question according to the context and candidate answers. Each candidate"
               " answer is associated with a confidence score within a bracket. The true answer may not"
               " be included in the candidate answers.\n\n")
LINE_PREFIX = "===\n"
K = 10


def sample_make(ques, capt, cands, ans=None):  # Prophet's Runner.sample_make, verbatim
    cands = cands[:K]
    prompt_text = LINE_PREFIX + f'Context: {capt}\n'
    prompt_text += LINE_PREFIX + f'Question: {ques}\n'
    cands_with_conf = [f'{cand["answer"]}({cand["confidence"]:.2f})' for cand in cands]
    cands = ', '.join(cands_with_conf)
    prompt_text += LINE_PREFIX + f'Candidates: {cands}\n'
    prompt_text += LINE_PREFIX + 'Answer:'
    if ans is not None:
        prompt_text += f' {ans}'
    return prompt_text


def prophet_prompts(qid, question, caption, train, candidates, examples, n, t, seed=0):
    """Prophet's prompts for one question (its shuffle replaced by pica's seeded one)."""
    ids = examples[qid][:n * t]
    random.Random(zlib.crc32(f"{seed}:{qid}".encode())).shuffle(ids)
    query = sample_make(question, caption, candidates[qid])
    out = []
    for i in range(t):
        text = PROMPT_HEAD
        for key in ids[n * i:n * i + n]:
            ex = train[key]
            text += sample_make(ex.question, ex.caption, candidates.get(key, []), ans=ex.answer) + "\n\n"
        out.append(text + query)
    return out


TRAIN = {f"{i}00{i}": Example(id=f"{i}00{i}", question=f"What is thing {i}?", answer=f"answer {i}",
                              caption=f"a photo of thing {i}.", image_id=str(i)) for i in range(1, 9)}


@pytest.fixture
def files(tmp_path):
    """Prophet's three files: candidates (query + examples; example 8008 has none), examples, captions."""
    cands = {"77": [{"answer": "dog", "confidence": 0.8512}, {"answer": "cat", "confidence": 0.1}]}
    for key in TRAIN:
        if key != "8008":
            cands[key] = [{"answer": f"cand {key}", "confidence": 0.5}, {"answer": "other", "confidence": 0.25}]
    paths = {"candidates": tmp_path / "candidates_okvqa.json", "examples": tmp_path / "examples_okvqa.json",
             "captions": tmp_path / "captions_okvqa.json"}
    paths["candidates"].write_text(json.dumps(cands))
    paths["examples"].write_text(json.dumps({"77": list(TRAIN)}))
    paths["captions"].write_text(json.dumps({"123": "a dog on a sofa", "COCO_val2014_000000000456": "x."}))
    return paths


@pytest.fixture
def index(tmp_path):
    return fake_index(tmp_path / "idx", list(TRAIN.values()))


def prophet_pipeline(index, files, backend=None, **settings) -> Pipeline:
    s = Settings(index=str(index.path), candidates_file=str(files["candidates"]),
                 examples_file=str(files["examples"]), **settings)
    return Pipeline(s, backend=backend or FakeBackend(), index=index, embedder=FakeEmbedder())


QUERY = Question(id="77", question="What animal is this?", caption="a dog on a sofa", image_id="123")


def test_prompts_are_prophets_exactly(index, files):
    backend = FakeBackend()
    answer = prophet_pipeline(index, files, backend, shots=3, ensemble=2).answer(QUERY)
    candidates = json.loads(files["candidates"].read_text())
    want = prophet_prompts("77", QUERY.question, "a dog on a sofa.", TRAIN, candidates,
                           json.loads(files["examples"].read_text()), n=3, t=2)
    assert answer.prompts == want
    assert "Candidates: dog(0.85), cat(0.10)\n===\nAnswer:" in want[0]  # Prophet's rendering


def test_examples_are_the_files_first_shots_x_ensemble_split_after_a_seeded_shuffle(index, files):
    def shown(seed):
        return prophet_pipeline(index, files, shots=2, ensemble=3, seed=seed).answer(QUERY).example_ids

    first = shown(0)
    assert [len(p) for p in first] == [2, 2, 2]
    flat = [i for p in first for i in p]
    assert sorted(flat) == sorted(list(TRAIN)[:6]) and flat != list(TRAIN)[:6]  # shuffled, disjoint
    assert shown(0) == first and shown(1) != first


def test_an_example_without_candidates_shows_an_empty_list(index, files):
    backend = FakeBackend()
    prophet_pipeline(index, files, backend, shots=8, ensemble=1).answer(QUERY)
    assert "Question: What is thing 8?\n===\nCandidates: \n===\nAnswer: answer 8\n\n" in backend.prompts[0]
    assert "Candidates: cand 1001(0.50), other(0.25)\n" in backend.prompts[0]


def test_candidates_k_and_template_defaults(index, files):
    s = Settings(candidates_file=str(files["candidates"]))
    assert s.template == "prophet" and Settings().template == "pica"
    assert {"candidates_file", "template"} <= set(s.fingerprint()) and "candidates_file" not in Settings().fingerprint()
    backend = FakeBackend()
    prophet_pipeline(index, files, backend, shots=1, candidates=1).answer(QUERY)
    assert backend.prompts[0].endswith("Candidates: dog(0.85)\n===\nAnswer:")
    backend = FakeBackend()  # the file, shown with an explicit template of another layout: none shown
    prophet_pipeline(index, files, backend, shots=1, template="pica").answer(QUERY)
    assert "Candidates" not in backend.prompts[0]


def test_missing_ids_are_one_line_input_errors(index, files, tmp_path):
    p = prophet_pipeline(index, files)
    with pytest.raises(InputError, match="question 99 has no entry in candidates file"):
        p.check([Question(id="99", question="q?", caption="c")])
    files["examples"].write_text(json.dumps({"77": ["1001", "5555"]}))
    with pytest.raises(InputError, match="example 5555 of question 77 .* is not in index"):
        prophet_pipeline(index, files, shots=2).check([QUERY])
    dataset = tmp_path / "okvqa.json"  # LXMERT rows; the caption from Prophet's captions file
    dataset.write_text(json.dumps([{"sent": QUERY.question, "question_id": 77,
                                    "img_id": "COCO_val2014_000000000123", "label": {"dog": 1}}]))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval", "--dataset", str(dataset), "--captions", str(files["captions"]),
                                      "--out", str(out), "--index", str(index.path), "--no-progress",
                                      "--candidates-file", str(files["candidates"]),
                                      "--examples-file", str(files["examples"]), "--shots", "2"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: example 5555 of question 77"), result.stderr
    assert not (out / "results.jsonl").exists()


def test_prophet_vote_and_its_fallback_to_the_top_candidate(index, files):
    # weighted by probability: two completions of "cat" (0.3 + 0.3) beat one "dog" (0.5)
    assert prophet_vote(["dog", "cat", "cat"], [-0.693, -1.204, -1.204]) in (1, 2)
    assert prophet_vote(["", "", "cat"], [-0.01, -0.01, -3.0]) == 2  # empty answers never win
    assert prophet_vote(["", ""], [-0.1, -0.2]) is None
    assert choose(["", "dog"], [-0.01, -3.0], "vote") == 0 and choose(["", "dog"], [-0.01, -3.0], "prophet") == 1
    empty = FakeBackend(reply=lambda p: " ")
    answer = prophet_pipeline(index, files, empty, shots=2, ensemble=2, choose="prophet").answer(QUERY)
    assert answer.answer == "dog"  # every completion empty: the file's top candidate
    answer = prophet_pipeline(index, files, FakeBackend(reply=lambda p: " Cat"), choose="prophet").answer(QUERY)
    assert answer.answer == "cat"


def test_prophet_files_are_read_and_malformed_ones_are_input_errors(files, tmp_path):
    cands = read_candidates(files["candidates"])
    assert cands["77"] == [("dog", 0.8512), ("cat", 0.1)]
    jsonl = tmp_path / "cands.jsonl"
    jsonl.write_text('{"question_id": 77, "candidates": [{"answer": "dog", "confidence": 0.9}]}\n')
    assert read_candidates(jsonl) == {"77": [("dog", 0.9)]}
    assert read_examples(files["examples"])["77"][:2] == ["1001", "2002"]
    bad = tmp_path / "bad.json"
    for text, fragment in (('{"1": [{"answer": "a"}]}', "confidence"), ("[1]", "expected Prophet"),
                           ('{"1": [{"answer": "a", "confidence": "x"}]}', "not a number")):
        bad.write_text(text)
        with pytest.raises(InputError, match=fragment):
            read_candidates(bad)
    bad.write_text('{"1": 5}')
    with pytest.raises(InputError, match="list of example"):
        read_examples(bad)


def test_prophets_captions_file_is_read(files):
    assert read_captions(files["captions"]) == {"123": "a dog on a sofa", "456": "x."}


def test_chooser_reads_the_files_confidence_and_old_choosers_still_load(index):
    cands = gather(["dog"], index, [], top=3, stage_one=[("Cats", 0.6), ("dog", 0.3)])
    assert [(c["answer"], c["file_conf"]) for c in cands] == [("dog", 0.3), ("cats", 0.6)]
    featurize(cands, None, question="q", caption="c", index=index, neighbours=[])
    assert "file_conf" in FEATURES and cands[1]["features"]["file_conf"] == 0.6
    old = [f for f in FEATURES if f != "file_conf"]  # fitted before the feature existed
    chooser = Chooser(features=old, mean=[0.0] * len(old), scale=[1.0] * len(old),
                      coef=[1.0 if f == "is_greedy" else 0.0 for f in old], intercept=0.0)
    assert Chooser.from_dict(chooser.to_dict()).pick(cands) == 0
