"""`pica eval` through a real OpenAI-compatible server (llama-cpp-python's, with the packaged Gemma)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pica.cli import app
from pica.evaluation.results import RESULTS_FILE, read_results

runner = CliRunner()
SECRET = "sk-test-DO-NOT-LEAK-4242424242"


def run_eval(okvqa_files, text_index, out, *extra):
    return runner.invoke(app, ["eval", "--dataset", str(okvqa_files["dev"]), "--captions",
                               str(okvqa_files["captions"]), "--index", str(text_index), "--shots", "4",
                               "--out", str(out), "--no-progress", *extra])


@pytest.mark.slow
def test_api_backend_matches_local_predictions_and_never_stores_the_key(
        okvqa_files, text_index, gemma_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    local = run_eval(okvqa_files, text_index, tmp_path / "local")
    assert local.exit_code == 0, local.output
    remote = run_eval(okvqa_files, text_index, tmp_path / "api", "--llm", "openai:gemma", "--api-base",
                      gemma_server, "--concurrency", "2")
    assert remote.exit_code == 0, remote.output
    ours = json.loads((tmp_path / "local" / "predictions.json").read_text())
    theirs = json.loads((tmp_path / "api" / "predictions.json").read_text())
    assert [p["question_id"] for p in theirs] == [p["question_id"] for p in ours]  # dataset order
    same = sum(a["answer"] == b["answer"] for a, b in zip(ours, theirs))
    assert same >= 0.9 * len(ours), (ours, theirs)
    rows = read_results(tmp_path / "api" / RESULTS_FILE)
    assert all(r["logprob"] is not None for r in rows)  # /v1/completions with log-probs was used
    for path in (tmp_path / "api").rglob("*"):
        assert SECRET.encode() not in path.read_bytes(), path
        assert SECRET[-8:].encode() not in path.read_bytes(), path
    assert SECRET not in remote.output
