"""A-OKVQA end to end with the packaged Gemma: a chooser that scores choices must pick the choice
the examples make obvious, and `pica eval --task both` writes both official prediction files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pica.cli import app
from pica.config import Settings
from pica.datasets import load_questions
from pica.pipeline import Pipeline

runner = CliRunner()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["score", "generate"])
def test_packaged_model_picks_the_choice_the_examples_make_obvious(aokvqa_files, aokvqa_index, gemma,
                                                                 method):
    settings = Settings(captioner=str(aokvqa_files["captions"]), index=str(aokvqa_index), shots=4,
                        task="mc", mc_method=method)
    questions = load_questions(dataset=aokvqa_files["val"], limit=6)
    pipeline = Pipeline(settings, backend=gemma)
    answers = list(pipeline.answer_stream(questions))
    assert all(a.mc["method"] == method for a in answers)
    right = sum(a.mc["index"] == q.correct_choice_idx for q, a in zip(questions, answers))
    # The nearest examples ask the same question and answer it with the correct choice.
    assert right >= 5, [(q.question, a.mc["chosen"]) for q, a in zip(questions, answers)]


@pytest.mark.slow
def test_eval_task_both_writes_both_official_files(aokvqa_files, aokvqa_index, tmp_path):
    out = tmp_path / "aok"
    result = runner.invoke(app, [
        "eval", "--dataset", str(aokvqa_files["val"]), "--captions", str(aokvqa_files["captions"]),
        "--index", str(aokvqa_index), "--task", "both", "--limit", "4", "--out", str(out),
        "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "multiple choice" in result.stdout and "difficult left out" in result.stdout
    mc = json.loads((out / "predictions_val-mc.json").read_text())
    da = json.loads((out / "predictions_val-da.json").read_text())
    questions = {q.id: q for q in load_questions(dataset=aokvqa_files["val"], limit=4)}
    assert set(mc) == set(da) == set(questions)
    assert all(mc[qid] in questions[qid].choices for qid in mc)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mc"]["n"] == 4 and summary["da"]["n"] + summary["da"]["difficult_left_out"] == 4
