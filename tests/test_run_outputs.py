"""What a finished run states: accuracy ± 1 SE with its n, no accuracy without gold answers, the
learned chooser's candidates on the report's cards (fast: fake LLM and embedder, real files)."""

from __future__ import annotations

import json
import re

import pytest
from fakes import FakeBackend, FakeEmbedder, fake_index
from test_chooser import examples
from typer.testing import CliRunner

from pica.answers import mean_se
from pica.choice.calibrate import calibrate
from pica.cli import app
from pica.config import Settings
from pica.datasets import load_questions
from pica.evaluation import evaluate
from pica.evaluation.summary import summarize
from pica.pipeline import Pipeline
from pica.types import Question

runner = CliRunner()


def pipeline(index, **settings) -> Pipeline:
    return Pipeline(Settings(index=str(index.path), **settings), backend=FakeBackend(reply=lambda p: " dog"),
                    embedder=FakeEmbedder(), index=index)


@pytest.fixture
def index(tmp_path):
    return fake_index(tmp_path / "idx", examples())


def test_summary_has_one_standard_error_overall_per_category_and_type():
    rows = [{"score": s, "gold": ["x"], "category": c, "question_type": "what", "seconds": 1.0,
             "prompt_tokens": 10} for s, c in ((1.0, "1"), (0.0, "1"), (1.0, "2"), (0.0, "2"), (0.3, "2"))]
    summary = summarize(rows, {})
    assert (summary["accuracy"], summary["se"], summary["n"]) == (*mean_se([1, 0, 1, 0, 0.3]), 5)
    assert summary["se"] == pytest.approx(100 * (1.032 / 4) ** 0.5 / 5 ** 0.5, abs=0.01)  # sample sd
    assert summary["per_category"]["1"] == {"accuracy": 50.0, "se": 50.0, "n": 2, "name": "Vehicles and Transportation"}
    assert summary["per_category"]["2"]["se"] == mean_se([1, 0, 0.3])[1]
    assert summary["per_question_type"]["what"]["se"] == summary["se"]


def test_run_without_annotations_claims_no_accuracy_but_writes_predictions(index, tmp_path):
    qfile = tmp_path / "OpenEnded_questions.json"
    qfile.write_text(json.dumps({"questions": [
        {"question_id": 100 + i, "image_id": 90 + i, "question": f"what is thing {i}?"} for i in range(4)]}))
    questions = load_questions(questions=qfile)
    assert all(not q.answers and not q.label for q in questions)
    for q in questions:
        q.caption = "a photo"
    out = tmp_path / "run"
    summary = evaluate(Settings(index=str(index.path)), questions, out, dataset={"questions": str(qfile)},
                       progress=False, pipeline=pipeline(index))
    assert summary["accuracy"] is None and summary["se"] is None and summary["n"] == 0
    assert summary["questions"] == 4 and summary["annotations"] is False
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["accuracy"] is None and on_disk["annotations"] is False
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["score"] for r in rows] == [None] * 4 and not any(r["counted"] for r in rows)
    predictions = json.loads((out / "predictions.json").read_text())
    assert [p["question_id"] for p in predictions] == [100, 101, 102, 103]
    page = (out / "report.html").read_text()
    assert 'id="no-annotations"' in page and "accuracy: no annotations" in page
    shown = runner.invoke(app, ["eval", "report", str(out)])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("no annotations: 4 questions answered, no accuracy")
    assert "accuracy 0" not in shown.stdout and "accuracy -" not in shown.stdout
    # rows of older runs had score 0.0 with empty gold: they are not counted as wrong either
    old = [{**r, "score": 0.0, "counted": True, "gold": {}} for r in rows]
    assert summarize(old, {})["accuracy"] is None


def test_report_shows_every_learned_candidate_with_features_and_score(index, tmp_path):
    calibrate(pipeline(index), n=20, progress=False, model="logistic")
    questions = [Question(id=f"d{i}", question=f"what is thing {i}?", caption=f"a photo {i}",
                          image_id=f"9{i}", label={"dog": 1.0}) for i in range(3)]
    out = tmp_path / "run"
    summary = evaluate(Settings(index=str(index.path), choose="learned"), questions, out,
                       dataset={"d": "x"}, progress=False, pipeline=pipeline(index, choose="learned"))
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    page = (out / "report.html").read_text()
    tables = re.findall(r'<table class="candidates">(.*?)</table>', page, re.S)
    assert len(tables) == len(rows) == 3
    for row, table in zip(rows, tables):
        cands = row["candidates"]
        assert len(cands) > 1 and all("features" in c and "score" in c for c in cands)
        cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td><small>(.*?)</small></td></tr>", table)
        assert len(cells) == len(cands)  # every candidate, none dropped
        best = max(cands, key=lambda c: c["score"])
        assert cells[0][1] == f"{best['score']:.3f}"
        assert all(f"{name} " in cells[0][2] for name in best["features"])
        assert sum("<b>" in answer for answer, _, _ in cells) == 1  # the winner
    # the closing line: accuracy ± 1 SE (n); below n = 10 the SE is a dash (it would mean little)
    shown = runner.invoke(app, ["eval", "report", str(out)])
    acc = summary["accuracy"]
    assert shown.stdout.splitlines()[0].startswith(f"accuracy {acc:.2f} ± – (n=3)")
    assert f"{acc:.2f} ± –%" in page
