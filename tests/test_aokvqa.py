"""A-OKVQA without a model: reader, official scoring, choice mapping and picking, prompts,
prediction files, and one-line errors for bad input. The packaged model is in test_aokvqa_e2e."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from fakes import FakeBackend, FakeEmbedder, fake_index
from typer.testing import CliRunner

from pica.answers import aokvqa_direct_accuracy, mean_se, split_rationale
from pica.cli import app
from pica.config import Settings
from pica.datasets import load_questions, scan_images
from pica.errors import InputError
from pica.evaluation import evaluate
from pica.llm.prompts import build_prompt, load_choices_template, load_template
from pica.pipeline import Pipeline
from pica.tasks.aokvqa import official_predictions, split_name, task_summary
from pica.tasks.base import resolve_task
from pica.tasks.multiple_choice import map_to_choice
from pica.types import Example, Question

runner = CliRunner()


# -- reader ------------------------------------------------------------------------------------
def test_reader_keeps_choices_answers_difficulty_and_rationales(aokvqa_files):
    qs = load_questions(dataset=aokvqa_files["val"])
    q = qs[0]
    assert q.id == "valQ000" and q.image_id == "500000" and q.scoring == "aokvqa"
    assert len(q.choices) == 4 and q.correct_choice_idx == 2
    assert q.choices[q.correct_choice_idx] == q.answers[0] and len(q.answers) == 10
    assert len(q.rationales) == 3 and not q.difficult
    assert qs[1].difficult
    assert load_questions(aokvqa=aokvqa_files["val"])[1].difficult  # --aokvqa reads the same


def test_okvqa_rows_stay_vqa_scored(okvqa_files):
    q = load_questions(dataset=okvqa_files["dev"])[0]
    assert q.scoring == "vqa" and q.choices == [] and q.correct_choice_idx is None


def test_coco_2017_ids_and_both_file_name_styles_resolve(tmp_path):
    for name in ("000000500000.jpg", "COCO_val2014_000000500001.jpg"):
        (tmp_path / name).write_bytes(b"x")
    found = scan_images(tmp_path)
    assert found["500000"].name == "000000500000.jpg"
    assert found["500001"].name == "COCO_val2014_000000500001.jpg"


@pytest.mark.parametrize("change, match", [
    ({"correct_choice_idx": 4}, "correct_choice_idx 4 is out of range for 4 choices"),
    ({"correct_choice_idx": -1}, "out of range"),
    ({"correct_choice_idx": "2"}, "must be an integer"),
    ({"choices": "a, b"}, "'choices' must be a list of strings"),
    ({"choices": ["a", "a", "b", "c"]}, "duplicates"),
])
def test_bad_choices_are_input_errors(aokvqa_files, tmp_path, change, match):
    rows = json.loads(aokvqa_files["val"].read_text())
    rows[3].update(change)
    path = tmp_path / "aokvqa_v1p0_val.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(InputError, match=match):
        load_questions(dataset=path)


def test_index_keeps_choices_and_rationales(aokvqa_index):
    frame = pd.read_parquet(aokvqa_index / "examples.parquet")
    assert {"choices", "correct_choice_idx", "rationales"} <= set(frame.columns)
    from pica.retrieval.index import ExampleIndex

    ex = ExampleIndex.load(aokvqa_index).example(0)
    assert len(ex.choices) == 4 and ex.correct_choice_idx == 2 and len(ex.rationales) == 3


# -- official scoring --------------------------------------------------------------------------
DIRECT = ["bus"] * 4 + ["van"] * 2 + ["car"] + ["school bus"] * 3


@pytest.mark.parametrize("prediction, expected", [
    ("bus", 1.0),            # 4 matches: min(1, 4/3)
    ("school bus", 1.0),     # 3 matches
    ("van", 2 / 3),          # 2 matches: no leave-one-out averaging (it would give 0.6)
    ("car", 1 / 3),
    ("truck", 0.0),
    ("Bus", 0.0),            # compared as strings, as the official script does
])
def test_aokvqa_direct_accuracy_table(prediction, expected):
    assert aokvqa_direct_accuracy(prediction, DIRECT) == pytest.approx(expected)


def test_summary_leaves_difficult_questions_out_of_da_only():
    rows = [
        {"task": "both", "da_score": 1.0, "difficult": False, "mc_correct": 1.0},
        {"task": "both", "da_score": 1 / 3, "difficult": False, "mc_correct": 0.0},
        {"task": "both", "da_score": 0.0, "difficult": True, "mc_correct": 1.0},
    ]
    summary = task_summary(rows)
    # SE: sample sd / sqrt(n), in points: DA scores (1, 1/3) -> 33.33; MC (1, 0, 1) -> 33.33
    assert summary["da"] == {"accuracy": pytest.approx(66.67), "se": pytest.approx(33.33), "n": 2,
                             "difficult_left_out": 1}
    assert summary["mc"] == {"accuracy": pytest.approx(66.67), "se": pytest.approx(33.33), "n": 3}
    assert task_summary([{"score": 1.0}]) == {}


@pytest.mark.parametrize("identity, split", [
    ({"dataset": "data/aokvqa_v1p0_val.json"}, "val"),
    ({"aokvqa": "aokvqa_v1p0_test.json"}, "test"),
    ({"dataset": "bench/out/okvqa_mc_dev.json"}, "okvqa_mc_dev"),
    ({"dataset": "x/aokvqa_v1p0_val.json", "split_name": "test"}, "test"),
    ({"hf_dataset": "HuggingFaceM4/A-OKVQA", "split": "validation"}, "validation"),
])
def test_split_name(identity, split):
    assert split_name(identity) == split


@pytest.mark.parametrize("text, expected", [
    (" umbrella because it is raining.", ("umbrella", "it is raining")),
    ("umbrella", ("umbrella", "")),
    ("because it rains", ("", "it rains")),
])
def test_split_rationale(text, expected):
    assert split_rationale(text) == expected


# -- mapping a free answer to a choice ------------------------------------------------------------
def test_map_to_choice_exact_after_normalization_then_similarity():
    choices = ["a dog", "two cats", "the horse", "bird"]
    assert map_to_choice("Dog", choices, None) == (0, "exact")
    assert map_to_choice("2 cats", choices, None) == (1, "exact")
    table = {"pony": [1.0, 0.1], "a dog": [0, 1], "two cats": [0.1, 0.9], "the horse": [0.9, 0.2],
             "bird": [-1, 0]}
    index, how = map_to_choice("pony", choices, lambda texts: np.array([table[t] for t in texts]))
    assert index == 2 and how.startswith("similarity 0.99")


def test_resolve_task():
    plain = Question(id="1", question="q?")
    mc = Question(id="2", question="q?", choices=["a", "b"])
    assert resolve_task("auto", [mc]) == "both"
    assert resolve_task("auto", [mc, plain]) == "da"
    assert resolve_task("da", [mc]) == "da"
    with pytest.raises(InputError, match="--task mc needs choices, and 1 of 2 questions have none"):
        resolve_task("mc", [mc, plain])


# -- prompts -----------------------------------------------------------------------------------
def test_choices_template_lists_choices_and_shows_the_correct_choice_and_rationale():
    template = load_choices_template("pica")
    assert template.name == "pica_mc" and not load_template("pica").uses_choices
    ex = Example(id="e", question="What sport?", answer="tennis ball", caption="a court",
                 choices=("golf", "tennis", "polo", "chess"), correct_choice_idx=1,
                 rationales=("The man holds a racket.",))
    prompt = build_prompt(template, "a racket", "Which sport?", [ex], choices=["a", "b", "c", "d"])
    assert "Choices: golf, tennis, polo, chess\nA: tennis\n" in prompt.text
    assert prompt.text.endswith("Q: Which sport?\nChoices: a, b, c, d\nA:")
    reasoned = build_prompt(template, "a racket", "Which sport?", [ex], choices=["a"], rationale=True)
    assert "A: tennis because The man holds a racket\n" in reasoned.text
    assert "because" in reasoned.text.split("===")[0]  # the rationale header asks for it
    plain = build_prompt(load_template("pica"), "c", "q?", [ex], rationale=True)
    assert "A: tennis ball because The man holds a racket\n" in plain.text
    with pytest.raises(InputError, match="no multiple-choice variant"):
        load_choices_template("lean")


# -- the pipeline with fakes ---------------------------------------------------------------------
class ScoringBackend(FakeBackend):
    """Scores the continuation named in ``favourite`` highest; records score calls."""

    def __init__(self, favourite: str, **kw) -> None:
        super().__init__(**kw)
        self.favourite = favourite
        self.scored: list[tuple[str, list[str]]] = []

    def score(self, prompt, continuations):
        self.scored.append((prompt, list(continuations)))
        return [-0.5 if c.strip() == self.favourite else -3.0 for c in continuations]


EXAMPLES = [Example(id=f"e{i}", question=f"What sport {i}?", answer="tennis", caption=f"court {i}",
                    choices=("golf", "tennis", "polo", "chess"), correct_choice_idx=1)
            for i in range(8)]
QUESTION = Question(id="q1", question="What sport 3?", caption="court 3", scoring="aokvqa",
                    choices=["golf", "tennis", "polo", "chess"], correct_choice_idx=1,
                    answers=["tennis"] * 10)


@pytest.fixture
def index(tmp_path):
    return fake_index(tmp_path / "idx", EXAMPLES)


def test_score_method_picks_the_best_scored_choice(index):
    backend = ScoringBackend("polo")
    pipeline = Pipeline(Settings(index=None, task="mc", mc_method="score", shots=2), backend=backend,
                        index=index, embedder=FakeEmbedder())
    answer = pipeline.answer(QUESTION)
    assert answer.answer == "polo" and answer.mc["index"] == 2 and answer.mc["method"] == "score"
    prompt, continuations = backend.scored[0]
    assert continuations == [" golf", " tennis", " polo", " chess"]  # the prompt is shared
    assert prompt.endswith("Choices: golf, tennis, polo, chess\nA:") and backend.calls == []


def test_score_method_scores_each_prompt_in_one_call_from_a_fresh_cache(index):
    class Batched(ScoringBackend):
        def score_candidates(self, prompt, continuations, reset=False):
            self.resets = [*getattr(self, "resets", []), reset]
            return [(lp, 1) for lp in self.score(prompt, continuations)]

    backend = Batched("polo")
    pipeline = Pipeline(Settings(index=None, task="mc", mc_method="score", shots=2, ensemble=2),
                        backend=backend, index=index, embedder=FakeEmbedder())
    assert pipeline.answer(QUESTION).answer == "polo"
    assert backend.resets == [True, True] and len(backend.scored) == 2  # one call per prompt


def test_generate_method_maps_the_free_answer(index):
    backend = FakeBackend(reply=lambda p: " The Chess")
    pipeline = Pipeline(Settings(task="both", mc_method="generate", shots=2), backend=backend,
                        index=index, embedder=FakeEmbedder())
    answer = pipeline.answer(QUESTION)
    assert answer.answer == "chess"  # the direct answer
    assert answer.mc["chosen"] == "chess" and answer.mc["mapped"] == ["exact"]
    assert len(backend.calls) == 2 and "Choices:" in backend.calls[1][0]


def test_auto_falls_back_to_generate_when_the_backend_cannot_score(index):
    pipeline = Pipeline(Settings(task="mc", shots=2), backend=FakeBackend(reply=lambda p: " golf"),
                        index=index, embedder=FakeEmbedder())
    assert pipeline.answer(QUESTION).mc["method"] == "generate"
    strict = Pipeline(Settings(task="mc", mc_method="score", shots=2), backend=FakeBackend(),
                      index=index, embedder=FakeEmbedder())
    with pytest.raises(InputError, match="use --mc-method generate"):
        strict.answer(QUESTION)


@pytest.mark.parametrize("how, expected", [("logprob", "polo"), ("vote", "golf")])
def test_ensemble_and_choose_apply_to_choices(index, how, expected):
    # Prompt 1 prefers polo (confidently), prompts 2 and 3 golf (less so).
    class Backend(FakeBackend):
        def __init__(self):
            super().__init__()
            self.n = 0

        def score(self, prompt, continuations):
            self.n += 1
            best, lp = ("polo", -0.1) if self.n == 1 else ("golf", -0.6)
            return [lp if c.strip() == best else -5.0 for c in continuations]

    pipeline = Pipeline(Settings(task="mc", mc_method="score", shots=2, ensemble=3, choose=how),
                        backend=Backend(), index=index, embedder=FakeEmbedder())
    answer = pipeline.answer(QUESTION)
    assert answer.answer == expected and len(answer.mc["scores"]) == 3


def test_rationale_is_parsed_after_the_answer(index):
    backend = FakeBackend(reply=lambda p: " tennis because the man holds a racket.")
    pipeline = Pipeline(Settings(task="da", rationale=True, shots=2), backend=backend, index=index,
                        embedder=FakeEmbedder())
    answer = pipeline.answer(QUESTION)
    assert answer.answer == "tennis" and answer.rationale == "the man holds a racket"
    assert answer.to_dict()["rationale"] == "the man holds a racket"


# -- evaluation outputs ---------------------------------------------------------------------------
def test_eval_writes_official_prediction_files_and_both_accuracies(aokvqa_files, aokvqa_index, tmp_path):
    settings = Settings(captioner=str(aokvqa_files["captions"]), index=str(aokvqa_index), shots=2)
    questions = load_questions(dataset=aokvqa_files["val"])
    correct = {q.id: q.choices[q.correct_choice_idx] for q in questions}
    backend = ScoringBackend(favourite="tennis", reply=lambda p: " tennis")
    out = tmp_path / "run"
    summary = evaluate(settings, questions, out, dataset={"dataset": str(aokvqa_files["val"])},
                       progress=False, pipeline=Pipeline(settings, backend=backend))
    da = json.loads((out / "predictions_val-da.json").read_text())
    mc = json.loads((out / "predictions_val-mc.json").read_text())
    assert set(da) == set(mc) == {q.id for q in questions} and set(da.values()) == {"tennis"}
    assert all(mc[qid] in q.choices for qid, q in zip(mc, questions))
    tennis = [qid for qid, c in correct.items() if c == "tennis"]
    assert summary["task"] == "both"
    mc_scores = [float(qid in tennis) for qid in correct]
    assert summary["mc"] == {"accuracy": pytest.approx(100 * len(tennis) / 10, abs=0.01),
                             "se": mean_se(mc_scores)[1], "n": 10}
    assert summary["da"]["n"] == 9 and summary["da"]["difficult_left_out"] == 1
    assert summary["accuracy"] == summary["da"]["accuracy"] and summary["n"] == 9
    # the leaderboard's unified file, as allenai/aokvqa's prepare_predictions.py makes it
    unified = json.loads((out / "predictions_val.json").read_text())
    assert unified == {qid: {"multiple_choice": mc[qid], "direct_answer": da[qid]} for qid in da}
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    row = rows[0]
    assert {"task", "choices", "correct_choice_idx", "chosen", "mc_correct", "da_score"} <= set(row)
    # each question's time by stage; the total is their sum, and the summary has their means
    stages = ("caption", "retrieval", "llm", "mc")
    assert all(r["seconds"] == pytest.approx(sum(r[f"seconds_{s}"] for s in stages)) for r in rows)
    assert all(r["seconds_mc"] > 0 and r["seconds_llm"] > 0 for r in rows)
    assert summary["seconds_per_stage"]["mc"] == pytest.approx(
        sum(r["seconds_mc"] for r in rows) / 10, abs=1e-4)
    run = json.loads((out / "run.json").read_text())["config"]
    assert run["settings"]["task"] == "both" and run["dataset"]["split_name"] == "val"
    page = (out / "report.html").read_text()
    assert "multiple choice" in page and "direct answer" in page and 'class="choices"' in page
    # headline: DA and MC side by side (each ± SE, n), the DA figure not repeated as "accuracy"
    headline = page[page.index('id="summary"'):page.index("<h2>Configuration")]
    labels = re.findall(r"<span>(.*?)</span>", headline)
    assert labels[:2] == ["direct answer (A-OKVQA) ± 1 SE (n=9)", "multiple choice ± 1 SE (n=10)"]
    assert f"<b>{summary['mc']['accuracy']:.2f} ± {summary['mc']['se']:.2f}%</b>" in headline
    assert not any(label.startswith("accuracy") for label in labels)
    assert "Accuracy per category" not in page  # no categories in A-OKVQA: no empty section
    assert "Time per question, by stage" in page and "MC scoring" in page
    # every card shows its multiple-choice prompt beside the direct answer's
    assert page.count('<details class="mc-prompt"><summary>multiple-choice prompt</summary>') == 10
    mc_prompt = row["mc"]["prompts"][0]
    assert html.escape(mc_prompt, quote=False).split("\n")[-2] in page
    assert official_predictions([row])["mc"] == {row["question_id"]: row["chosen"]}


def test_choice_marks_for_the_report():
    from pica.tasks.aokvqa import choice_marks

    row = {"choices": json.dumps(["a", "b", "c"]), "chosen_idx": 1.0, "correct_choice_idx": float("nan")}
    assert choice_marks(row) == [("a", ""), ("b", "chosen"), ("c", "")]
    assert choice_marks({"choices": ["a", "b"], "chosen_idx": 0, "correct_choice_idx": 0}) == [
        ("a", "chosen correct"), ("b", "")]
    assert choice_marks({"choices": None}) == []


def test_okvqa_run_config_is_unchanged_by_task_settings():
    assert "task" not in Settings().fingerprint() and "task" not in Settings(task="da").fingerprint()
    assert Settings(task="mc").fingerprint()["task"] == "mc"
    assert Settings(rationale=True).fingerprint()["rationale"] is True


# -- CLI errors ----------------------------------------------------------------------------------
def one_line_error(result, fragment):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_task_mc_without_choices_exits_2(okvqa_files, text_index, tmp_path):
    result = runner.invoke(app, ["eval", "--dataset", str(okvqa_files["dev"]), "--captions",
                                 str(okvqa_files["captions"]), "--index", str(text_index),
                                 "--task", "mc", "--out", str(tmp_path / "r"), "--no-progress"])
    one_line_error(result, "--task mc needs choices")


def test_choice_index_out_of_range_exits_2(aokvqa_files, tmp_path):
    rows = json.loads(aokvqa_files["val"].read_text())
    rows[0]["correct_choice_idx"] = 7
    path = tmp_path / "aokvqa_v1p0_val.json"
    path.write_text(json.dumps(rows))
    result = runner.invoke(app, ["eval", "--dataset", str(path), "--captions", str(aokvqa_files["captions"]),
                                 "--task", "both", "--out", str(tmp_path / "r"), "--no-progress"])
    one_line_error(result, "correct_choice_idx 7 is out of range")


def test_bad_task_name_exits_2(aokvqa_files, tmp_path):
    result = runner.invoke(app, ["eval", "--dataset", str(aokvqa_files["val"]), "--captions",
                                 str(aokvqa_files["captions"]), "--task", "multiple",
                                 "--out", str(tmp_path / "r"), "--no-progress"])
    one_line_error(result, "--task 'multiple' is not valid")
