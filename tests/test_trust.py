"""A chooser is the ``--choose auto`` default only when calibration showed it helps
(pica.choice.trust): the rule, old files, the seam with run folders, and where the choice is shown."""

from __future__ import annotations

import json
import re

import pytest
from fakes import FakeBackend, FakeEmbedder, fake_index
from test_chooser import examples
from typer.testing import CliRunner

from pica.choice.calibrate import calibrate
from pica.choice.chooser import Chooser
from pica.choice.trust import choice_line, judge
from pica.cli import app
from pica.config import Settings
from pica.errors import RunConfigError
from pica.evaluation import evaluate
from pica.pipeline import Pipeline
from pica.types import Question

WORDS = ["dog", "cat", "two", "red", "The Dog"]


def figures(greedy: float, chooser: float, se: float, n: int) -> dict:
    return {"heldout_questions": n, "heldout_greedy_accuracy": greedy,
            "heldout_chooser_accuracy": chooser, "heldout_difference_se": se}


def test_rule_needs_a_positive_gain_of_at_least_two_standard_errors():
    assert judge(figures(20.0, 22.0, 1.0, 400))["trusted"]
    assert not judge(figures(20.0, 22.0, 1.01, 400))["trusted"]  # 2.00 < 2 x 1.01
    assert not judge(figures(20.0, 20.0, 0.0, 400))["trusted"]  # no gain at all
    tiny = judge(figures(5.56, 2.22, 6.7, 15))  # the issue's --n 60 calibration
    assert not tiny["trusted"] and (tiny["gain"], tiny["se"], tiny["n"]) == (-3.34, 6.7, 15)
    assert "-3.34 ± 6.70 points (n=15)" in tiny["reason"] and "13.40" in tiny["reason"]
    assert not judge(figures(0.0, 100.0, 0.0, 1))["trusted"]  # one question has no SE
    assert not judge({"heldout_questions": 0})["trusted"]  # nothing held back
    # the unrounded gain wins over the difference of rounded accuracies
    assert judge({**figures(20.0, 22.0, 1.0, 400), "heldout_gain": 1.996})["gain"] == 2.0


def chooser_file(training: dict, verdict: dict | None = None) -> dict:
    data = {"format": "pica-chooser", "version": 2, "model": "logistic", "features": ["log_freq"],
            "mean": [0.0], "scale": [1.0], "coef": [1.0], "intercept": 0.0, "fitted_for": {},
            "training": training}
    return data if verdict is None else {**data, "verdict": verdict}


def test_old_files_without_a_verdict_are_judged_by_the_same_rule(tmp_path):
    good, bad = figures(20.0, 25.0, 1.0, 500), figures(5.56, 2.22, 6.7, 15)
    assert Chooser.from_dict(chooser_file(good)).trusted
    assert not Chooser.from_dict(chooser_file(bad)).trusted
    # a recorded verdict is read back as written, and round-trips through the file
    recorded = Chooser.from_dict(chooser_file(good, verdict={"trusted": False, "reason": "kept"}))
    assert not recorded.trusted and recorded.verdict["reason"] == "kept"
    path = tmp_path / "c.json"
    path.write_text(recorded.dumps())
    assert json.loads(path.read_text())["verdict"]["trusted"] is False and not Chooser.load(path).trusted


def right_answer(prompt: str) -> str:
    """The asked example's own answer: greedy is always right, so no chooser can beat it."""
    asked = re.findall(r"what is thing (\d+)\?", prompt)[-1]
    return " " + WORDS[int(asked) % 5]


def pipeline(index, **settings) -> Pipeline:
    return Pipeline(Settings(index=str(index.path), **settings), backend=FakeBackend(reply=right_answer),
                    embedder=FakeEmbedder(), index=index)


def dev_questions() -> list[Question]:
    return [Question(id=f"d{i}", question=f"what is thing {i}?", caption=f"a photo {i}", image_id=f"9{i}",
                     label={WORDS[i % 5]: 1.0}) for i in range(6)]


def test_untrusted_chooser_is_not_the_default_and_earlier_run_folders_still_resume(tmp_path):
    index = fake_index(tmp_path / "idx", examples())
    out = tmp_path / "run"
    before = evaluate(Settings(index=str(index.path)), dev_questions(), out, dataset={"d": "x"},
                      progress=False, pipeline=pipeline(index))
    assert before["choice"]["method"] == "logprob" and before["choice"]["chooser"] is None
    file, chooser = calibrate(pipeline(index), n=20, progress=False, model="logistic")
    assert not chooser.trusted and chooser.verdict["gain"] <= 0  # greedy is always right here
    assert json.loads(file.read_text())["verdict"]["trusted"] is False
    auto = pipeline(index)
    assert auto.choice["method"] == "logprob" and auto.choice["chooser"] is None
    info = auto.choice_info
    assert info["untrusted_chooser"] == str(file) and info["n"] == chooser.verdict["n"] > 0
    assert "kept for --choose learned only" in choice_line(info) and "points (n=" in choice_line(info)
    # the resolved choice did not change, so the earlier folder resumes (nothing is redone)
    again = evaluate(Settings(index=str(index.path)), dev_questions(), out, dataset={"d": "x"},
                     progress=False, pipeline=auto)
    assert again["choice"]["untrusted_chooser"] == str(file)
    assert len((out / "results.jsonl").read_text().splitlines()) == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["choice"]["method"] == "logprob" and summary["choice"]["gain"] == chooser.verdict["gain"]
    # --choose learned still uses it (and is a different run configuration)
    learned = pipeline(index, choose="learned")
    assert learned.choice["method"] == "learned" and learned.choice_info["trusted"] is False
    assert "not trusted as the auto default" in choice_line(learned.choice_info)
    with pytest.raises(RunConfigError, match="choice"):
        evaluate(Settings(index=str(index.path), choose="learned"), dev_questions(), out,
                 dataset={"d": "x"}, progress=False, pipeline=learned)
    shown = CliRunner().invoke(app, ["index", "info", str(index.path)])
    assert shown.exit_code == 0, shown.output
    assert "not trusted: kept for --choose learned only; held-back gain over greedy" in shown.stdout


def test_trusted_chooser_is_the_auto_default_and_named_everywhere(tmp_path):
    index = fake_index(tmp_path / "idx", examples())
    file, chooser = calibrate(pipeline(index), n=20, progress=False, model="logistic")
    data = json.loads(file.read_text())
    data["verdict"] = {**data["verdict"], "trusted": True}  # as a calibration that showed a gain
    file.write_text(json.dumps(data))
    auto = pipeline(index)
    assert auto.choice["method"] == "learned"
    assert auto.choice_info["chooser"] == str(file) and auto.choice_info["trusted"] is True
    line = choice_line(auto.choice_info)
    assert line.startswith(f"answer choice: learned (chooser {file}; held-back gain")
    shown = CliRunner().invoke(app, ["index", "info", str(index.path)])
    assert "trusted: the --choose auto default" in shown.stdout
