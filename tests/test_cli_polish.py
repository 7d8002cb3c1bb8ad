"""CLI surface: real on/off switches, --version, `pica report` (and its `eval report` alias),
indented --json, the rationale in plain output, the calibrate hint, `index list` and the
progress bar's final line."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest
from typer.testing import CliRunner

import pica
from pica.choice.chooser import calibrate_command, find_chooser
from pica.cli import app, json_text
from pica.errors import InputError
from pica.types import Answer

runner = CliRunner()
COMMANDS = [["answer"], ["serve"], ["eval"], ["report"], ["eval", "report"], ["index", "build"],
            ["index", "info"], ["index", "calibrate"], ["index", "list"], []]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "pica")
def test_help_shows_switches_without_a_bool_placeholder(command):
    result = runner.invoke(app, [*command, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "Usage: pica" in result.output


def test_boolean_options_are_on_off_switches():
    answer = runner.invoke(app, ["answer", "--help"], terminal_width=200).output
    assert "--json / --no-json" in answer and "--show-prompt / --no-show-prompt" in answer
    assert "--rationale / --no-rationale" in answer
    evaluate = runner.invoke(app, ["eval", "--help"], terminal_width=200).output
    assert "--force-new / --no-force-new" in evaluate and "--progress / --no-progress" in evaluate


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"pica {pica.__version__}\n"


def test_report_is_its_own_command_and_eval_is_not_a_group(tmp_path):
    evaluate = runner.invoke(app, ["eval", "--help"], terminal_width=200).output
    assert evaluate.startswith("Usage: pica eval [OPTIONS] [RUN]\n") and "COMMAND" not in evaluate
    report = runner.invoke(app, ["report", "--help"]).output
    assert report.startswith("Usage: pica report [OPTIONS] RUN")
    assert runner.invoke(app, ["eval", "report", "--help"]).output == report  # the alias
    missing = tmp_path / "nothing"
    new, old = (runner.invoke(app, [*c, str(missing)]) for c in (["report"], ["eval", "report"]))
    assert new.exit_code == old.exit_code == 2
    assert new.stderr == old.stderr and new.stderr.startswith("error: ") and "Traceback" not in new.output


def test_json_is_indented_on_a_terminal_or_by_indent(monkeypatch):
    data = {"answer": "tennis", "example_ids": [["a", "b"]]}
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert json_text(data, None) == json.dumps(data)  # a pipe: one line
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert json_text(data, None) == json.dumps(data, indent=2)
    assert json_text(data, 0) == json.dumps(data)
    assert json_text(data, 4) == json.dumps(data, indent=4)


class _Pipeline:
    """Stands in for the pipeline: the CLI's printing is under test, not the answer."""

    zero_shot = False
    index = None
    backend = type("B", (), {"id": "fake"})()
    choice_info = {"method": "logprob", "requested": "auto", "chooser": None}

    def __init__(self, settings):
        self.settings = settings

    def answer(self, question):
        return Answer(question_id=question.id, question=question.question, answer="tennis",
                      raw=" tennis because the man holds a racket", caption=question.caption,
                      logprob=-0.5, prompts=["p"], example_ids=[["e"]], rationale="the man holds a racket")

    def to_json(self, answer):
        return {**answer.to_dict(llm=self.backend.id, index=None), "choice": self.choice_info}


@pytest.fixture
def photo(tmp_path):
    from PIL import Image

    path = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 32), (90, 140, 60)).save(path)
    return path


def test_rationale_shows_in_plain_output_and_json_indents(monkeypatch, photo):
    monkeypatch.setattr("pica.pipeline.Pipeline", _Pipeline)
    args = ["answer", str(photo), "Which sport?", "--caption", "a man on a court", "--rationale"]
    plain = runner.invoke(app, args)
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == "tennis\nbecause the man holds a racket\n"
    indented = runner.invoke(app, [*args, "--json", "--indent", "2"])
    assert indented.stdout.startswith('{\n  "answer": "tennis",\n')
    assert json.loads(indented.stdout)["rationale"] == "the man holds a racket"
    assert "\n" not in runner.invoke(app, [*args, "--json"]).stdout.strip()  # not a terminal
    assert runner.invoke(app, [*args, "--no-json"]).stdout == plain.stdout


def test_calibrate_hint_names_the_flags_in_use(tmp_path):
    wanted = {"llm": "openai:m@http://127.0.0.1:9/v1", "template": "lean", "shots": 8,
              "candidate_answers": 8, "candidate_neighbours": 16}
    assert calibrate_command(tmp_path / "my idx", wanted) == (
        f"pica index calibrate '{tmp_path / 'my idx'}' --llm openai:m --api-base http://127.0.0.1:9/v1"
        " --template lean --shots 8 --candidate-neighbours 16")
    local = {**wanted, "llm": "gemma3-270m", "candidate_neighbours": 32}
    with pytest.raises(InputError) as e:
        find_chooser(tmp_path, local, required=True)
    assert f"run `pica index calibrate {tmp_path} --llm gemma3-270m --template lean --shots 8`" in str(e.value)
    assert "..." not in str(e.value)


def test_index_list_names_the_starter_index_before_it_is_built(tmp_path, monkeypatch):
    monkeypatch.setenv("PICA_CACHE", str(tmp_path / "cache"))
    result = runner.invoke(app, ["index", "list", "--root", str(tmp_path / "none")])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("no indexes under")
    assert lines[1].startswith("starter") and "not built yet" in lines[1]
    assert str(tmp_path / "cache") in lines[1]


@pytest.mark.slow
def test_index_list_includes_the_built_starter_index(tmp_path, monkeypatch):
    from pica.retrieval.build import build_starter
    from pica.retrieval.store import starter_index

    monkeypatch.setenv("PICA_CACHE", str(tmp_path / "cache"))
    path = starter_index(build_starter)
    result = runner.invoke(app, ["index", "list", "--root", str(tmp_path / "none")])
    starter = [line for line in result.stdout.splitlines() if line.startswith("starter")]
    assert len(starter) == 1 and "96 examples" in starter[0] and str(path) in starter[0]


def test_progress_bar_prints_its_final_line_once(capsys):
    from pica.util.progress import progress_bar

    with progress_bar(total=3, desc="indexing", unit="ex") as bar:
        for _ in range(3):
            time.sleep(0.12)  # past tqdm's redraw interval: every update would draw
            bar.update(1)
    err = capsys.readouterr().err
    assert err.count("3/3") == 1 and err.count("100%") == 1, err
    assert "2/3" in err  # the bar still moves before the end
