"""Batch evaluation: outputs, scoring, resume after SIGKILL, refusal of changed configurations,
one writer per run folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from pica.cli import app
from pica.config import Settings
from pica.datasets import load_questions
from pica.errors import RunConfigError
from pica.evaluation import evaluate
from pica.evaluation.results import RESULTS_FILE, read_results
from pica.evaluation.runlock import RunLock
from pica.pipeline import Pipeline

runner = CliRunner()


def settings_for(okvqa_files, text_index, **kw):
    return Settings(captioner=str(okvqa_files["captions"]), index=str(text_index), shots=4, **kw)


def eval_args(okvqa_files, text_index, out, *extra):
    return ["eval", "--dataset", str(okvqa_files["dev"]), "--captions", str(okvqa_files["captions"]),
            "--index", str(text_index), "--shots", "4", "--out", str(out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def finished_run(okvqa_files, text_index, gemma, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "dev"
    settings = settings_for(okvqa_files, text_index)
    questions = load_questions(dataset=okvqa_files["dev"])
    summary = evaluate(settings, questions, out, dataset={"dataset": str(okvqa_files["dev"])},
                       progress=False, pipeline=Pipeline(settings, backend=gemma))
    return out, summary, questions


def test_outputs_are_complete_and_consistent(finished_run):
    out, summary, questions = finished_run
    predictions = json.loads((out / "predictions.json").read_text())
    assert [p["question_id"] for p in predictions] == [int(q.id) for q in questions]
    assert all(isinstance(p["answer"], str) for p in predictions)
    frame = pd.read_parquet(out / "results.parquet")
    for column in ("question", "caption", "prompt", "raw", "logprob", "answer", "score", "example_ids",
                   "seconds"):
        assert column in frame.columns
    assert len(frame) == len(questions) == summary["n"]
    assert summary["accuracy"] == pytest.approx(100 * frame["score"].mean(), abs=0.01)
    assert set(summary["per_category"]) == {str(q.category) for q in questions}
    assert summary["per_category"]["8"]["name"] == "Plants and Animals"  # OK-VQA class 8
    assert summary["config"]["settings"]["shots"] == 4
    assert json.loads((out / "summary.json").read_text()) == summary
    html = (out / "report.html").read_text()
    assert "<svg" in html and frame["question"][0] in html


def test_scores_follow_the_soft_labels(finished_run):
    out, _, questions = finished_run
    label = {q.id: q.label for q in questions}
    for row in read_results(out / RESULTS_FILE):
        from pica.answers import normalize_answer

        expected = max([s for a, s in label[row["question_id"]].items()
                        if normalize_answer(a) == row["answer"]], default=0.0)
        assert row["score"] == pytest.approx(expected)
    # The fixture is easy: retrieval finds same-topic examples, so the model gets some right.
    assert any(row["score"] > 0 for row in read_results(out / RESULTS_FILE))


def test_rerun_skips_finished_questions(finished_run, okvqa_files, text_index, gemma):
    out, summary, questions = finished_run
    before = (out / RESULTS_FILE).read_bytes()
    settings = settings_for(okvqa_files, text_index)

    class Exploding:
        def __getattr__(self, name):
            raise AssertionError("the backend must not be used: every question is done")

    again = evaluate(settings, questions, out, dataset={"dataset": str(okvqa_files["dev"])}, progress=False,
                     pipeline=Pipeline(settings, backend=Exploding()))
    assert (out / RESULTS_FILE).read_bytes() == before
    assert again["accuracy"] == summary["accuracy"]


def test_changed_configuration_is_refused_unless_force_new(finished_run, okvqa_files, text_index):
    out, _, questions = finished_run
    result = runner.invoke(app, eval_args(okvqa_files, text_index, out, "--shots", "2"))
    assert result.exit_code == 2
    assert "different configuration" in result.stderr and "shots: 4 -> 2" in result.stderr
    with pytest.raises(RunConfigError):
        evaluate(settings_for(okvqa_files, text_index, template="lean"), questions, out,
                 dataset={"dataset": str(okvqa_files["dev"])}, progress=False)


@pytest.mark.slow
def test_force_new_starts_over_and_keeps_a_backup(okvqa_files, text_index, tmp_path):
    out = tmp_path / "run"
    first = runner.invoke(app, eval_args(okvqa_files, text_index, out, "--limit", "2"))
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, eval_args(okvqa_files, text_index, out, "--limit", "2", "--shots", "1",
                                          "--force-new"))
    assert second.exit_code == 0, second.output
    assert len(list(out.glob("results.*.jsonl.bak"))) == 1
    rows = read_results(out / RESULTS_FILE)
    assert len(rows) == 2 and all(len(r["example_ids"][0]) == 1 for r in rows)


def test_torn_last_line_is_cut_and_redone(finished_run, okvqa_files, text_index, tmp_path):
    src, _, questions = finished_run
    out = tmp_path / "torn"
    out.mkdir()
    (out / "run.json").write_bytes((src / "run.json").read_bytes())
    lines = (src / RESULTS_FILE).read_bytes().splitlines(keepends=True)
    (out / RESULTS_FILE).write_bytes(b"".join(lines[:3]) + lines[3][:25])  # died mid-write of line 4
    result = runner.invoke(app, eval_args(okvqa_files, text_index, out))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("examples: index pool (30 examples, ")  # the example pool, named
    assert lines[1] == "answer choice: logprob (the index has no chooser for these settings)"
    summary = json.loads((out / "summary.json").read_text())
    assert lines[2].startswith(f"accuracy {summary['accuracy']:.2f} ± {summary['se']:.2f} (n={summary['n']})")
    rows = read_results(out / RESULTS_FILE)
    assert [r["question_id"] for r in rows] == [q.id for q in questions]
    assert (out / RESULTS_FILE).read_bytes().count(b"\n") == len(questions)


def start_until_results(cmd: list[str], out, lines: int) -> subprocess.Popen:
    """Start ``pica eval`` and return once ``lines`` results are written (or it ended, or 240 s)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results = out / RESULTS_FILE
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.05)
    return proc


def resume_and_check(cmd: list[str], out, src) -> subprocess.CompletedProcess:
    """Run ``cmd`` again to the end; check each question is in results.jsonl once and the
    predictions equal those of the uninterrupted run in ``src``."""
    resumed = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"}, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ids = [json.loads(line)["question_id"] for line in (out / RESULTS_FILE).read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 10  # nothing lost, nothing twice
    assert json.loads((out / "predictions.json").read_text()) == json.loads((src / "predictions.json").read_text())
    return resumed


def signal_mid_run(okvqa_files, text_index, out, lines: int, sig: int) -> tuple[list[str], subprocess.Popen]:
    """Start ``pica eval`` into ``out``, send ``sig`` once ``lines`` results are written, wait."""
    cmd = [sys.executable, "-m", "pica", *eval_args(okvqa_files, text_index, out)]
    proc = start_until_results(cmd, out, lines)
    assert proc.poll() is None, f"run ended before the signal: {proc.stderr.read()[-500:]}"
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return cmd, proc


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(finished_run, okvqa_files, text_index,
                                                                  tmp_path):
    src, _, _ = finished_run
    out = tmp_path / "killed"
    cmd, _ = signal_mid_run(okvqa_files, text_index, out, 3, signal.SIGKILL)
    killed_at = len(read_results(out / RESULTS_FILE))
    assert 3 <= killed_at < 10
    resume_and_check(cmd, out, src)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def test_eval_and_report_on_a_folder_in_use_exit_2_naming_the_holder(finished_run, okvqa_files, text_index):
    out, _, _ = finished_run
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with RunLock(out):  # this test process plays the running `pica eval`
        result = runner.invoke(app, eval_args(okvqa_files, text_index, out))
        assert result.exit_code == 2, result.output
        line = one_error_line(result.stderr)
        assert f"run folder {out} is in use by pid {os.getpid()} on host " in line
        assert "wait for it or use another run folder" in line
        report = runner.invoke(app, ["eval", "report", str(out)])
        assert report.exit_code == 2, report.output
        assert f"is in use by pid {os.getpid()}" in one_error_line(report.stderr)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {k: v for k, v in after.items() if k != ".lock"} == {k: v for k, v in before.items() if k != ".lock"}
    assert runner.invoke(app, ["eval", "report", str(out)]).exit_code == 0  # free again


@pytest.mark.slow
def test_two_concurrent_evals_give_one_error_and_one_complete_run(finished_run, okvqa_files, text_index,
                                                                   tmp_path):
    src, _, _ = finished_run
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "pica", *eval_args(okvqa_files, text_index, out)]
    first = start_until_results(cmd, out, 1)
    results, env = out / RESULTS_FILE, {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        assert first.poll() is None, f"first run ended too soon: {first.stderr.read()[-500:]}"
        first.send_signal(signal.SIGSTOP)  # frozen mid-run, holding the lock, however slow the second start is
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stderr[-2000:]
    line = one_error_line(second.stderr)
    assert f"run folder {out} is in use by pid {first.pid} on host " in line, line
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    ids = [json.loads(line)["question_id"] for line in results.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 10  # each question once: the second run wrote nothing
    assert json.loads((out / "predictions.json").read_text()) == json.loads((src / "predictions.json").read_text())


def test_sigterm_mid_run_exits_143_releases_the_lock_and_resumes(finished_run, okvqa_files, text_index,
                                                                 tmp_path):
    src, _, _ = finished_run
    out = tmp_path / "terminated"
    # SIGTERM is what timeout, Slurm and Kubernetes send.
    cmd, proc = signal_mid_run(okvqa_files, text_index, out, 2, signal.SIGTERM)
    assert proc.returncode == 143
    assert one_error_line(proc.stderr.read()) == "error: terminated (SIGTERM)"
    assert (out / ".lock").read_text() == ""  # released, no stale holder
    results = out / RESULTS_FILE
    assert results.read_bytes().endswith(b"\n")
    assert len(read_results(results)) >= 2
    resume_and_check(cmd, out, src)


def test_full_disk_mid_run_stops_with_one_line_and_resumes_once_space_is_back(finished_run, okvqa_files,
                                                                              text_index, tmp_path):
    from test_faults import fill, tmpfs

    src, _, _ = finished_run
    with tmpfs(tmp_path / "disk", "2m") as disk:
        out = disk / "run"
        cmd = [sys.executable, "-m", "pica", *eval_args(okvqa_files, text_index, out)]
        proc = start_until_results(cmd, out, 2)
        filler = fill(disk)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 74, err[-2000:]
        message = one_error_line(err)
        assert f"cannot write {out}/" in message and "No space left on device" in message, message
        results = out / RESULTS_FILE
        assert results.read_bytes().endswith(b"\n")  # no fragment: rolled back to the last line
        stopped_at = len(read_results(results, warn=None))
        assert 2 <= stopped_at <= 10
        filler.unlink()
        resumed = resume_and_check(cmd, out, src)
        assert "warning" not in resumed.stderr  # nothing torn, nothing to move aside
        assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_same_dataset_by_another_path_resumes_and_other_content_is_refused(finished_run, okvqa_files,
                                                                           text_index, tmp_path):
    src, _, _ = finished_run
    out = tmp_path / "moved"
    shutil.copytree(src, out)
    copy = tmp_path / "elsewhere" / "dev.json"
    copy.parent.mkdir()
    shutil.copy(okvqa_files["dev"], copy)
    before = (out / RESULTS_FILE).read_bytes()
    # The folder was made without digests (as by older pica): it resumes by path and records them.
    upgraded = runner.invoke(app, eval_args(okvqa_files, text_index, out))
    assert upgraded.exit_code == 0, upgraded.output
    assert "content" in json.loads((out / "run.json").read_text())["config"]["dataset"]
    args = eval_args(okvqa_files, text_index, out)
    args[args.index("--dataset") + 1] = str(copy)
    same = runner.invoke(app, args)
    assert same.exit_code == 0, same.output
    assert (out / RESULTS_FILE).read_bytes() == before  # resumed: nothing redone
    rows = json.loads(copy.read_text())
    copy.write_text(json.dumps(rows[:5]))  # another dataset under the same path
    other = runner.invoke(app, args)
    assert other.exit_code == 2
    line = one_error_line(other.stderr)
    assert "another dataset" in line and line.count(str(copy)) == 1 and str(okvqa_files["dev"]) in line
    assert (out / RESULTS_FILE).read_bytes() == before
