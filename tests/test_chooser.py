"""Learned answer choice: candidates, features, the chooser model and file, calibration."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from fakes import FakeBackend, FakeEmbedder, fake_index
from PIL import Image
from typer.testing import CliRunner

from pica.answers import normalize_answer
from pica.choice.calibrate import calibrate, target
from pica.choice.candidates import FEATURES, SCORING, answer_end, featurize, gather, scored_end
from pica.choice.chooser import Chooser, chooser_path, find_chooser, fit
from pica.cli import app
from pica.config import Settings
from pica.errors import InputError
from pica.pipeline import Pipeline
from pica.retrieval.index import Hit
from pica.types import Example, Question

runner = CliRunner()


def examples(n: int = 40) -> list[Example]:
    """Two examples per image; answers cycle through a few so frequencies differ."""
    words = ["dog", "cat", "two", "red", "The Dog"]
    return [Example(id=str(i), question=f"what is thing {i}?", answer=words[i % 5], caption=f"a photo {i // 2}",
                    image_id=str(i // 2), answers={words[i % 5]: 1.0, "blue": 0.3}) for i in range(n)]


@pytest.fixture
def index(tmp_path):
    return fake_index(tmp_path / "idx", examples())


def test_gather_dedups_after_normalization(index):
    hits = [Hit(4, 0.9), Hit(0, 0.8), Hit(1, 0.5)]  # answers "the dog" -> "dog", "dog", "cat"
    cands = gather(["dog", "2", "dog", ""], index, hits, top=8)
    answers = [c["answer"] for c in cands]
    assert answers[:2] == ["dog", "2"] and len(answers) == len(set(answers)) and "" not in answers
    assert cands[0]["greedy"] and cands[0]["conf"] > 0 and not cands[-1]["greedy"]
    assert "cat" in answers and "blue" in answers


def test_features_and_own_image_frequency(index):
    hits = [Hit(4, 0.9), Hit(1, 0.5)]
    cands = gather(["dog"], index, hits, top=3)
    featurize(cands, [(-1.0, 2), (-3.0, 1), (-6.0, 3)][:len(cands)], question="is it a dog?",
              caption="a dog on grass", index=index, neighbours=hits, exclude_rows=[0, 1])
    f = cands[0]["features"]
    assert list(f) == list(FEATURES)
    assert f["lp_rel"] == 0 and f["lp_mean"] == -0.5 and f["is_greedy"] == 1
    assert f["caption_overlap"] == 1 and f["question_overlap"] == 1 and f["n_neighbours"] == 1
    # "dog" / "The Dog" answer 16 of 40 rows; rows 0 and 1 (own image) are not counted
    assert f["log_freq"] == pytest.approx(np.log1p(15))
    assert cands[1]["features"]["lp_rel"] == -2.0


def test_features_without_logprobs(index):
    cands = gather(["dog"], index, [Hit(1, 0.5)], top=2)
    featurize(cands, None, question="q", caption="c", index=index, neighbours=[Hit(1, 0.5)])
    assert all(c["features"]["lp_sum"] == 0 and c["features"]["n_tokens"] == 0 for c in cands)


def test_answer_end_and_target():
    assert answer_end("Context: {caption}\nQ: {question}\nA: {answer}\n\n===\n") == "\n\n"
    assert target("dog", {"dog": 0.6, "cat": 1.0}) == 0.6
    assert target("dog", {"dog": 3.0, "cat": 7.0}) == pytest.approx(0.9)
    assert target("bird", {"dog": 3.0}) == 0.0


def linear_signal(rng, f: dict, good: bool) -> None:
    """The right candidate has a higher conf: a linear score finds it."""
    f["conf"] = float(rng.normal()) + (2.0 if good else 0.0)


def interaction_signal(rng, f: dict, good: bool) -> None:
    """The right candidate has lp_mean and conf of the same sign: no linear score finds it."""
    a, b = abs(rng.normal()) + 0.2, abs(rng.normal()) + 0.2
    sign = 1.0 if good else -1.0
    f["lp_mean"], f["conf"] = (a, sign * b) if rng.random() < 0.5 else (-a, -sign * b)


def synthetic(n: int, seed: int, signal=linear_signal) -> list[list[dict]]:
    """``n`` questions of 4 candidates with random features, one right answer marked by ``signal``."""
    rng = np.random.default_rng(seed)
    questions = []
    for _ in range(n):
        good = int(rng.integers(0, 4))
        q = []
        for i in range(4):
            f = {name: float(rng.normal()) for name in FEATURES}
            signal(rng, f, i == good)
            q.append({"answer": str(i), "greedy": i == 0, "features": f, "target": float(i == good)})
        questions.append(q)
    return questions


def interaction(n: int, seed: int) -> list[list[dict]]:
    return synthetic(n, seed, interaction_signal)


def test_fit_predict_and_json_round_trip(tmp_path, few_trees):
    chooser = fit(synthetic(200, 0))
    test = synthetic(100, 1)
    hits = sum(q[chooser.pick(q)]["target"] for q in test) / len(test)
    assert hits > 0.6  # chance is 0.25
    assert chooser.coef[FEATURES.index("conf")] == max(chooser.coef)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(chooser.to_dict()))
    again = Chooser.load(path)
    assert again.scores(test[0]) == pytest.approx(chooser.scores(test[0]))


@pytest.fixture
def few_trees(monkeypatch):
    """Fewer boosting rounds: the same code, fast enough for the quick tests."""
    from pica.choice import chooser

    monkeypatch.setitem(chooser.TREES, "n_estimators", 60)
    monkeypatch.setitem(chooser.TREES, "learning_rate", 0.2)


def test_trees_learn_an_interaction_and_auto_keeps_the_better_model(tmp_path, few_trees):
    train, test = interaction(300, 0), interaction(150, 1)

    def hits(chooser):
        return sum(q[chooser.pick(q)]["target"] for q in test) / len(test)

    trees, linear = fit(train, model="trees"), fit(train, model="logistic")
    assert trees.model == "trees" and linear.model == "logistic"
    assert hits(trees) > 0.9 and hits(linear) < 0.5  # chance is 0.25
    auto = fit(train)
    assert auto.model == "trees" and set(auto.training["cv_accuracy"]) >= {"trees", "logistic l2=1.0"}
    assert fit(synthetic(200, 0)).model == "logistic"  # a linear signal: logistic wins the CV
    path = tmp_path / "trees.json"
    path.write_text(trees.dumps())
    again = Chooser.load(path)
    assert again.model == "trees" and again.scores(test[0]) == pytest.approx(trees.scores(test[0]))
    assert len(path.read_text().splitlines()) < len(trees.trees) + 100  # one line per tree


def test_exported_trees_predict_as_scikit_learn_does():
    from sklearn.ensemble import GradientBoostingRegressor

    from pica.choice.chooser import export_trees, predict_trees

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] * x[:, 1] > 0).astype(float) + 0.1 * x[:, 2]
    model = GradientBoostingRegressor(max_depth=3, n_estimators=40, random_state=0).fit(x, y)
    test = rng.normal(size=(50, 5))
    ours = predict_trees(export_trees(model), model.learning_rate, float(model.init_.constant_.ravel()[0]), test)
    assert ours == pytest.approx(model.predict(test), abs=1e-5)


def test_tree_and_version_checks_on_load(tmp_path, few_trees):
    trees = fit(interaction(60, 0), model="trees")
    path = tmp_path / "c.json"
    broken = trees.to_dict()
    first = broken["trees"][0]
    assert len(first["value"]) > 1  # a split to break
    first["left"] = [len(first["value"]) + 3] + first["left"][1:]
    path.write_text(json.dumps(broken))
    with pytest.raises(InputError, match="corrupt.*outside the tree"):
        Chooser.load(path)
    path.write_text(json.dumps(dict(trees.to_dict(), model="forest")))
    with pytest.raises(InputError, match="unknown chooser model 'forest'"):
        Chooser.load(path)
    old = fit(synthetic(40, 0), model="logistic").to_dict()
    path.write_text(json.dumps(dict(old, version=1)))  # files of the previous release still load
    assert Chooser.load(path).model == "logistic"
    path.write_text(json.dumps(dict(old, version=99)))
    with pytest.raises(InputError, match="version 99"):
        Chooser.load(path)


def test_corrupt_and_mismatched_chooser_files(tmp_path):
    wanted = {"llm": "m", "template": "pica", "shots": 4, "candidate_answers": 8, "candidate_neighbours": 32}
    chooser = fit(synthetic(30, 0))
    chooser.fitted_for = dict(wanted, llm="other")
    path = chooser_path(tmp_path, chooser.fitted_for)
    path.parent.mkdir()
    path.write_text(json.dumps(chooser.to_dict()))
    assert find_chooser(tmp_path, wanted, required=False) is None
    with pytest.raises(InputError, match="llm 'm'.*fitted for llm 'other'"):
        find_chooser(tmp_path, wanted, required=True)
    mine = chooser_path(tmp_path, wanted)
    mine.write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        find_chooser(tmp_path, wanted, required=True)
    mine.write_text(json.dumps(dict(chooser.to_dict(), coef=[1.0])))
    with pytest.raises(InputError, match="lengths disagree"):
        find_chooser(tmp_path, wanted, required=True)
    mine.write_text(json.dumps(chooser.to_dict()))  # right place, wrong contents
    with pytest.raises(InputError, match="was fitted for llm 'other' but 'm'"):
        find_chooser(tmp_path, wanted, required=True)
    (tmp_path / "choosers" / "x.json").write_text("[]")
    assert find_chooser(tmp_path, wanted, required=False) is None


def test_choosers_fitted_with_another_candidate_scoring_are_not_used(tmp_path):
    # Files from before issue 22 scored " answer\n\n" (the end of answer too) and record no
    # candidate_scoring: their features mean something else, so they are never applied.
    old = {"llm": "m", "template": "pica", "shots": 4, "candidate_answers": 8, "candidate_neighbours": 32}
    chooser = fit(synthetic(30, 0))
    chooser.fitted_for = old
    data = chooser.to_dict()
    data["fitted_for"] = old
    path = chooser_path(tmp_path, old)
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    assert Chooser.load(path).fitted_for["candidate_scoring"] == "answer+end"
    wanted = dict(old, candidate_scoring="answer")
    assert chooser_path(tmp_path, wanted) != path
    assert find_chooser(tmp_path, wanted, required=False) is None
    with pytest.raises(InputError, match="candidate_scoring 'answer'.*fitted for candidate_scoring 'answer\\+end'"):
        find_chooser(tmp_path, wanted, required=True)


def test_index_info_and_choose_on_a_chooser_of_another_candidate_scoring(index, tmp_path):
    old = {"llm": "gemma3-270m", "template": "pica", "shots": 4, "candidate_answers": 8,
           "candidate_neighbours": 32}
    data = fit(synthetic(30, 0)).to_dict()
    data["fitted_for"] = old
    path = chooser_path(index.path, old)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))
    info = runner.invoke(app, ["index", "info", str(index.path)])
    assert info.exit_code == 0, info.output
    assert re.search(r"never used: fitted on answer\+end candidate scores and pica scores answer; re-fit with"
                     r" `pica index calibrate \S+ --llm gemma3-270m --template pica --shots 4`", info.stdout)
    assert fake_pipeline(index).choice["method"] == "logprob"  # auto: as without a chooser
    with pytest.raises(InputError, match="candidate_scoring 'answer'"):
        _ = fake_pipeline(index, choose="learned").choice


def test_candidates_are_scored_as_their_answers_tokens_alone(index):
    pipeline = fake_pipeline(index)
    assert pipeline.chooser_target()["candidate_scoring"] == SCORING == "answer"
    seen = []

    def score_candidates(prompt, continuations, reset=False):
        seen.append(list(continuations))
        return [(-1.0 - i, 1) for i in range(len(continuations))]

    pipeline.backend.score_candidates = score_candidates
    [item] = pipeline.prepare([Question(id="q", question="what is thing 3?", caption="a photo 1")],
                              neighbours=True)
    greedy = pipeline.greedy(item)
    table = pipeline.candidate_table(item, greedy.prompts[0].text, greedy.answers, greedy.completions)
    assert seen == [[" " + c["answer"] for c in table]] and len(table) > 1
    assert [c["logprob_scored"] for c in table] == [-1.0 - i for i in range(len(table))]
    assert scored_end("Q: {question}\nA: {answer}\n\n", "answer+end") == "\n\n"
    assert scored_end("Q: {question}\nA: {answer}\n\n") == ""
    with pytest.raises(ValueError, match="unknown candidate scoring"):
        scored_end("A: {answer}\n", "end")


def fake_pipeline(index, **settings) -> Pipeline:
    return Pipeline(Settings(index=str(index.path), **settings), backend=FakeBackend(reply=lambda p: " dog"),
                    embedder=FakeEmbedder(), index=index)


def test_calibrate_leaves_own_image_out_and_learned_choice_uses_it(index, monkeypatch):
    pipeline = fake_pipeline(index)
    seen = []
    original = Pipeline.candidate_table

    calibrated = []

    def spy(self, item, prompt, answers, completions):
        seen.append(item)
        calibrated.append(original(self, item, prompt, answers, completions))
        return calibrated[-1]

    monkeypatch.setattr(Pipeline, "candidate_table", spy)
    path, chooser = calibrate(pipeline, n=40, progress=False)
    assert len(seen) == 40 and path.is_file()
    for item in seen:
        image = item.question.image_id
        rows = [h.row for h in item.neighbours] + [h.row for h in item.hits]
        assert rows and all(index.example(r).image_id != image for r in rows)
    # Answer frequencies count the other images' examples, each once: as a dev question would see
    # them (the asked example's own answers subtracted twice leaked its label into the features).
    item, table = seen[0], calibrated[0]
    others = [index.example(r) for r in range(len(index)) if index.example(r).image_id != item.question.image_id]
    for cand in table:
        count = sum(cand["answer"] in {normalize_answer(a) for a in ex.answers} for ex in others)
        assert cand["features"]["log_freq"] == pytest.approx(np.log1p(count), abs=1e-6), cand["answer"]
    assert chooser.training["questions"] == 40 and "heldout_chooser_accuracy" in chooser.training
    with pytest.raises(InputError, match="--overwrite"):
        calibrate(fake_pipeline(index), n=40, progress=False)
    # --choose auto now resolves to the chooser (its held-back gain is clearly positive here);
    # logprob stays plain PICa
    assert chooser.trusted and chooser.verdict["gain"] >= 2 * chooser.verdict["se"] > 0
    auto = fake_pipeline(index)
    assert auto.choice["method"] == "learned" and len(auto.choice["sha256"]) == 64
    answer = auto.answer(Question(id="q", question="what is thing 3?", caption="a photo 1", image_id="99"))
    assert any(c.get("chosen") for c in answer.candidates)
    assert all(set(c["features"]) == set(FEATURES) and "score" in c for c in answer.candidates)
    assert fake_pipeline(index, choose="logprob").choice["method"] == "logprob"
    assert fake_pipeline(index, shots=2).choice["method"] == "logprob"
    with pytest.raises(InputError, match="shots 2"):
        _ = fake_pipeline(index, shots=2, choose="learned").choice


def test_answer_aware_prefers_examples_with_top_answers(index):
    from pica.retrieval.selection import answer_aware

    hits = [Hit(r, 1.0 - r / 100) for r in (2, 3, 4, 7, 9)]  # answers two, red, the dog, two, the dog
    picked = answer_aware(index, hits, 2, top=1)
    assert [h.row for h in picked] == [2, 7]


def test_cli_learned_without_or_with_corrupt_chooser_is_one_line_exit_2(index, tmp_path):
    image = tmp_path / "COCO_val2014_000000000099.jpg"
    Image.new("RGB", (8, 8)).save(image)
    args = ["answer", str(image), "what is it?", "--caption", "a dog", "--index", str(index.path),
            "--choose", "learned"]
    for setup, fragment in ((None, "no fitted chooser"), ("corrupt", "is corrupt")):
        if setup:
            wanted = {"llm": "gemma3-270m", "template": "pica", "shots": 4, "candidate_answers": 8,
                      "candidate_neighbours": 32, "candidate_scoring": "answer"}
            path = chooser_path(index.path, wanted)
            path.parent.mkdir(exist_ok=True)
            path.write_text("{")
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and fragment in lines[0], result.stderr


# One batch for every candidate goes through llama.cpp's batched CPU kernels, whose rounding
# differs from one token at a time; on this small quantized model that moves a token's log-prob by
# up to ~0.25 nats here (on 60 OK-VQA dev questions: mean 0.06, p99 0.34, max 0.54 vs one decode
# per candidate).
BATCH_TOLERANCE = {"abs": 0.3, "rel": 0.03}


@pytest.mark.slow
def test_llama_candidate_scorer_matches_per_continuation_score(gemma):
    prompt = "Context: a man riding a horse\n===\nQ: What animal is this?\nA:"
    conts = [" horse\n\n", " dog\n\n", " golden retriever\n\n", " brown and white horse\n\n", " a"]
    single = [gemma.score(prompt, [c])[0] for c in conts]
    many = gemma.score_candidates(prompt, conts, reset=True)
    assert [tokens for _, tokens in many][:4] >= [2, 2, 3, 5] and many[4][1] == 1
    for (lp, _), ref, cont in zip(many, single, conts):
        assert lp == pytest.approx(ref, **BATCH_TOLERANCE), cont
    assert many[4][0] == pytest.approx(single[4], abs=1e-9)  # first tokens: the prompt's own logits
    assert gemma.complete([prompt])[0] == gemma.complete([prompt])[0]  # the cache is left consistent


@pytest.mark.slow
def test_llama_candidate_scores_do_not_depend_on_what_ran_before(gemma):
    prompt = "Context: a plate of food\n===\nQ: What vegetable is green?\nA:"
    conts = [" broccoli\n\n", " peas\n\n", " green beans\n\n", " lettuce\n\n"]
    gemma.complete([prompt])  # as the pipeline does: greedy answer, then its candidates
    first = gemma.score_candidates(prompt, conts)
    gemma.complete(["Q: What sport is this?\nA:"], max_tokens=3)
    gemma.score_candidates("Q: What sport is this?\nA:", [" tennis\n\n"] * 20)
    gemma.complete([prompt])
    assert gemma.score_candidates(prompt, conts) == first
    assert gemma.score_candidates(prompt, conts, reset=True) == first  # the prompt alone decides
    assert gemma.score_candidates(prompt, [" "]) == gemma.score_candidates(prompt, [" "], reset=True)


@pytest.mark.slow
def test_llama_candidate_first_tokens_are_the_greedy_steps_log_probs(gemma):
    prompt = "Q: What colour is the sky on a clear day?\nA:"
    [greedy] = gemma.complete([prompt], max_tokens=1)
    [(lp, tokens)] = gemma.score_candidates(prompt, [greedy.text])
    assert tokens == 1 and lp == greedy.logprob  # the same numbers, not a re-evaluation


@pytest.mark.slow
def test_llama_candidate_scorer_takes_more_candidates_than_sequences(gemma):
    from pica.llm.llama_batch import SCORING_SEQUENCES

    prompt = "Q: What colour is the sky on a clear day?\nA:"
    conts = [f" {w} and blue\n\n" for w in ("light", "dark", "pale", "deep", "sky")] * 5
    assert len(conts) > SCORING_SEQUENCES
    scored = gemma.score_candidates(prompt, conts + ["", " blue"], reset=True)
    assert scored[-2] == (0.0, 0) and scored[-1][1] == 1
    for (lp, _), ref in zip(scored[:5], gemma.score(prompt, conts[:5])):
        assert lp == pytest.approx(ref, **BATCH_TOLERANCE)
    import llama_cpp

    memory = gemma.llm._ctx.memory  # nothing of the candidates is left in the cache
    assert [llama_cpp.llama_memory_seq_pos_max(memory, s) for s in range(SCORING_SEQUENCES)] == [
        gemma.llm.n_tokens - 1] + [-1] * (SCORING_SEQUENCES - 1)


@pytest.mark.slow
def test_index_calibrate_end_to_end(text_index, okvqa_files, tmp_path):
    import shutil

    index = tmp_path / "pool"
    shutil.copytree(text_index, index)
    result = runner.invoke(app, ["index", "calibrate", str(index), "--n", "24", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "held back" in result.stdout
    verdict = re.search(r"^verdict  (trusted: the --choose auto default|not trusted: kept for --choose"
                        r" learned only); held-back gain over greedy [+-]\d+\.\d\d ± \d+\.\d\d points"
                        r" \(n=\d+\)", result.stdout, re.M)
    assert verdict, result.stdout
    files = list((index / "choosers").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["fitted_for"]["llm"] == "gemma3-270m"
    again = runner.invoke(app, ["index", "calibrate", str(index), "--n", "24", "--no-progress"])
    assert again.exit_code == 2 and "--overwrite" in again.stderr
    info = runner.invoke(app, ["index", "info", str(index)])
    assert re.search(r"chooser   (logistic|trees) for gemma3-270m, template pica, 4 shots", info.stdout)
    image = tmp_path / "COCO_val2014_000000999999.jpg"
    Image.new("RGB", (8, 8)).save(image)
    trusted = json.loads(files[0].read_text())["verdict"]["trusted"]
    auto = json.loads(runner.invoke(app, ["answer", str(image), "What animal is this?", "--caption",
                                          "a dog on a couch", "--index", str(index), "--json"]).stdout)
    # a 24-question calibration holds back 6: the default only if that showed a clear gain
    assert auto["choice"]["method"] == ("learned" if trusted else "logprob")
    assert auto["choice"]["gain"] is not None and auto["choice"]["n"] > 0
    assert (auto["choice"]["chooser"] if trusted else auto["choice"]["untrusted_chooser"]) == str(files[0])
    answer = runner.invoke(app, ["answer", str(image), "What animal is this?", "--caption", "a dog on a couch",
                                 "--index", str(index), "--json", "--choose", "learned"])
    assert answer.exit_code == 0, answer.output
    data = json.loads(answer.stdout)
    assert data["choice"]["method"] == "learned" and data["choice"]["chooser"] == str(files[0])
    assert sum(bool(c.get("chosen")) for c in data["candidates"]) == 1
    assert all("features" in c and "score" in c for c in data["candidates"])
    plain = json.loads(runner.invoke(app, ["answer", str(image), "What animal is this?", "--caption",
                                           "a dog on a couch", "--index", str(index), "--json",
                                           "--choose", "logprob"]).stdout)
    assert all("features" not in c for c in plain["candidates"])
