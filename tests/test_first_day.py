"""A new user's first day (issue 33): results that name their example pool and how many of the
dataset's questions they cover, run folders claimed only by results, fast failures whose advice
names the printing command's options, conventional help, output control, the one-line Python API.

The LLM is the fake backend (tests/fakes.py): the CLI's and the run folder's behaviour is under
test here, not the answers; retrieval uses the real packaged MiniLM and FAISS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import FakeBackend
from PIL import Image
from typer.testing import CliRunner

from pica.cli import app
from pica.pipeline import Pipeline

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


class FakeLLMPipeline(Pipeline):
    """The real pipeline with the fake LLM (what the CLI builds, minus llama.cpp)."""

    def __init__(self, settings=None, **kwargs):
        kwargs.setdefault("backend", FakeBackend(reply=lambda prompt: " tennis"))
        super().__init__(settings, **kwargs)


@pytest.fixture
def fake_llm(monkeypatch):
    monkeypatch.setattr("pica.pipeline.Pipeline", FakeLLMPipeline)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "COCO_val2014_000000297147.jpg"
    Image.new("RGB", (48, 48), (90, 140, 60)).save(path)
    return path


def eval_args(okvqa_files, run_folder, *more):
    return ["eval", run_folder, "--dataset", okvqa_files["dev"], "--captions", okvqa_files["captions"],
            "--no-progress", *more]


# -- 1. the example pool is named; the starter set is called what it is ------------------------
@pytest.mark.slow
def test_eval_without_index_says_it_uses_the_starter_examples(fake_llm, okvqa_files, tmp_path):
    result = run(*eval_args(okvqa_files, tmp_path / "run", "--limit", "3"))
    assert result.exit_code == 0, result.output
    warning = ("starter examples (96, hand-written): not comparable to published numbers;"
               " build an index from the training split")
    assert result.stdout.splitlines()[0] == f"warning: examples: {warning} (pica index build)"  # first
    quiet = run(*eval_args(okvqa_files, tmp_path / "quiet", "--limit", "2", "--quiet"))
    assert quiet.stdout.startswith("warning: examples: starter examples (96, hand-written)")
    line = next(x for x in result.stdout.splitlines() if x.startswith("accuracy "))
    assert "examples: STARTER (96 hand-written; not comparable)" in line  # the closing summary too
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["examples"]["starter"] is True and summary["examples"]["index"] == "starter"
    assert summary["examples"]["count"] == 96
    report = (tmp_path / "run" / "report.html").read_text()
    assert 'id="examples"' in report and "not comparable to published numbers" in report


@pytest.mark.slow
def test_eval_with_an_index_names_it(fake_llm, okvqa_files, text_index, tmp_path):
    result = run(*eval_args(okvqa_files, tmp_path / "run", "--index", text_index, "--limit", "2"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"examples: index pool (30 examples, {text_index})"
    assert "starter" not in result.output.lower()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["examples"] == {"index": "pool", "path": str(text_index), "count": 30, "starter": False,
                                   "line": f"examples: index pool (30 examples, {text_index})"}


def test_every_readme_eval_example_passes_an_index():
    from test_readme import readme_commands

    evals = [c for c in readme_commands() if c.startswith("pica eval ")]
    assert len(evals) >= 5
    assert all("--index " in c for c in evals), [c for c in evals if "--index " not in c]


# -- 2. a folder is claimed only by a result ----------------------------------------------------
@pytest.mark.slow
def test_a_run_that_answered_nothing_does_not_claim_its_folder(fake_llm, okvqa_files, text_index,
                                                                tmp_path):
    folder = tmp_path / "run"
    failed = run("eval", folder, "--dataset", okvqa_files["dev"], "--index", text_index,
                 "--captioner", tmp_path / "no-such-captioner", "--no-progress")
    assert failed.exit_code == 2 and "no-such-captioner" in failed.stderr
    assert (folder / "run.json").is_file()
    assert not (folder / "results.jsonl").exists()  # no empty results file left behind
    # Fixed flags (another captioner, another limit): the folder holds no result, so it is reused.
    fixed = run(*eval_args(okvqa_files, folder, "--index", text_index, "--limit", "2"))
    assert fixed.exit_code == 0, fixed.output
    record = json.loads((folder / "run.json").read_text())
    assert record["config"]["settings"]["captioner"] == str(okvqa_files["captions"])
    # Once it holds results it is claimed: other settings are refused as before.
    again = run(*eval_args(okvqa_files, folder, "--index", text_index, "--limit", "2", "--shots", "1"))
    assert again.exit_code == 2 and "--force-new" in again.stderr


# -- 3. n of N and --limit ----------------------------------------------------------------------
@pytest.mark.slow
def test_limit_is_recorded_as_n_of_the_datasets_questions(fake_llm, okvqa_files, text_index, tmp_path):
    folder = tmp_path / "run"
    result = run(*eval_args(okvqa_files, folder, "--index", text_index, "--limit", "3"))
    assert result.exit_code == 0, result.output
    total = len(json.loads(Path(okvqa_files["dev"]).read_text()))
    for name in ("run.json", "summary.json"):
        data = json.loads((folder / name).read_text())
        assert data["questions_total"] == total and data["limit"] == 3, name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["questions"] == 3 and summary["dataset"] == "dev.json"
    line = next(x for x in result.stdout.splitlines() if x.startswith("accuracy "))
    assert f"3 of {total} questions of dev.json (--limit 3)" in line, line
    report = (folder / "report.html").read_text()
    assert f"3 of {total}" in report and "questions of dev.json" in report
    # A full run says so too, with limit null.
    full = run(*eval_args(okvqa_files, tmp_path / "full", "--index", text_index))
    assert f"{total} of {total} questions of dev.json" in full.stdout
    data = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert data["limit"] is None and data["questions_total"] == total


# -- 5. model checks before heavy loading, advice in the command's own options ------------------
@pytest.mark.slow
def test_a_missing_captioner_fails_before_torch_or_transformers_load(tmp_path):
    code = ("import sys\n"
            "from pica.caption.hf import HFCaptioner\n"
            "from pica.errors import CaptionError\n"
            f"try:\n    HFCaptioner({str(tmp_path / 'nothing')!r})\n"
            "except CaptionError as e:\n    print(e)\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, check=True).stdout.splitlines()
    assert "captioner model folder not found" in out[0] and "captioner=FOLDER" in out[0]
    assert out[1] == "[]"


@pytest.mark.parametrize("command, wanted, unwanted", [
    ("answer", "--caption TEXT", None),
    ("eval", "--captions FILE", "--caption TEXT"),
    ("caption", "--captioner", "--caption TEXT"),
])
def test_captioner_advice_names_the_commands_own_options(command, wanted, unwanted, okvqa_files,
                                                         text_index, photo, tmp_path):
    missing = tmp_path / "no-such-captioner"
    args = {"answer": ["answer", photo, "What sport?", "--index", text_index, "--captioner", missing],
            "eval": ["eval", tmp_path / "run", "--dataset", okvqa_files["dev"], "--index", text_index,
                     "--captioner", missing, "--no-progress"],
            "caption": ["caption", tmp_path / "c.jsonl", "--images", photo.parent, "--captioner", missing,
                        "--no-progress"]}[command]
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: captioner model folder not found")
    assert wanted in lines[0] and "captioner=" not in lines[0]
    assert unwanted is None or unwanted not in lines[0]


def test_the_servers_503_names_the_request_field_not_cli_options():
    from pica.errors import CaptionError
    from pica.serve.service import SERVE_CAPTION_HINT

    message = CaptionError("captioner 'x' cannot load").with_hint(SERVE_CAPTION_HINT)
    assert "caption field" in message and "--" not in message


def test_long_error_lines_are_never_cut_inside_a_url():
    from pica.util.hub import first_line

    url = "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/config.json"
    error = OSError("We couldn't connect and you are in offline mode " + "x " * 70 + f"at '{url}'. more")
    line = first_line(error)
    assert url in line or "https" not in line
    assert not re.search(r"https?:/*'?$|https?://\S*\.\.\.$", line)


# -- 6. answer: one question's options, --choices -----------------------------------------------
def test_answer_help_has_no_dataset_options_and_offers_choices():
    text = run("answer", "--help").output
    options = re.findall(r"^  (--[a-z-]+)", text, re.M)
    assert "--candidates-file" not in options and "--examples-file" not in options
    assert "--choices" in options and "--caption" in options
    assert "--candidates-file" in re.findall(r"^  (--[a-z-]+)", run("eval", "--help").output, re.M)


def test_answer_task_mc_without_choices_names_the_choices_option(photo):
    result = run("answer", photo, "What sport?", "--caption", "a man on a court", "--task", "mc")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --task mc needs the choices: pass --choices 'A|B|C|D'"


def test_answer_with_choices_answers_multiple_choice(fake_llm, photo):
    result = run("answer", photo, "What sport?", "--caption", "a man on a court", "--index", "none",
                 "--choices", "tennis|golf|chess|rugby", "--task", "mc", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mc"]["choices"] == ["tennis", "golf", "chess", "rugby"]
    assert data["answer"] in data["mc"]["choices"]


# -- 7. help conventions -----------------------------------------------------------------------
COMMANDS = [["answer"], ["serve"], ["eval"], ["report"], ["caption"], ["index", "build"],
            ["index", "merge"], ["index", "info"], ["index", "calibrate"], ["index", "list"], ["plugins"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_upper_case_metavars_and_output_switches(command):
    text = runner.invoke(app, [*command, "--help"], terminal_width=200).output
    assert not re.search(r"\{[A-Z_]+\}|<(str|int|float|path)>", text), text
    usage = text.splitlines()[0]
    assert usage == usage.replace(usage.split("[OPTIONS]")[-1], usage.split("[OPTIONS]")[-1].upper())
    assert "-q, --quiet" in text and "-v, --verbose" in text


def test_every_command_takes_quiet_and_verbose():
    import typer

    def leaves(command, path):
        subs = getattr(command, "commands", None) or {}
        if not subs:
            yield path, command
        for name, sub in subs.items():
            yield from leaves(sub, [*path, name])

    found = list(leaves(typer.main.get_command(app), []))
    assert len(found) >= len(COMMANDS)
    for path, command in found:
        names = {opt for param in command.params for opt in getattr(param, "opts", ())}
        assert {"--quiet", "-q", "--verbose", "-v"} <= names, path


def test_enumerated_options_list_their_values():
    text = runner.invoke(app, ["answer", "--help"], terminal_width=250).output
    for option, values in [("--choose", "auto|learned|logprob|vote|prophet"),
                           ("--selection", "auto|random|question|image+question|caption+question"),
                           ("--task", "auto|da|mc|both|scienceqa"), ("--device", "auto|cpu|cuda|cuda:N|mps"),
                           ("--dtype", "auto|float32|float16|bfloat16"), ("--mc-method", "auto|score|generate"),
                           ("--mc-score", "auto|sum|mean|calibrated"), ("--example-order", "similar|answer-aware")]:
        assert f"{option} [{values}]" in text, option


def test_a_bad_enumerated_value_is_still_one_line_with_a_suggestion(photo):
    result = run("answer", photo, "What?", "--caption", "a court", "--choose", "lerned")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "did you mean 'learned'" in result.stderr


def test_calibrate_takes_its_index_as_path_only():
    assert "--index" not in runner.invoke(app, ["index", "calibrate", "--help"]).output
    result = run("index", "calibrate", "x", "--index", "y")
    assert result.exit_code == 2 and "No such option: --index" in result.output


@pytest.mark.slow
def test_eval_takes_the_run_folder_first_and_out_still_works(fake_llm, okvqa_files, text_index, tmp_path):
    old = run("eval", "--dataset", okvqa_files["dev"], "--captions", okvqa_files["captions"], "--index",
              text_index, "--limit", "2", "--no-progress", "--out", tmp_path / "old")
    assert old.exit_code == 0, old.output
    assert (tmp_path / "old" / "summary.json").is_file()
    assert "--out is deprecated: pass the run folder first" in old.stderr
    missing = run("eval", "--dataset", okvqa_files["dev"])
    assert missing.exit_code == 2 and "RUN is required" in missing.stderr


# -- 8. from pica import Pipeline ----------------------------------------------------------------
@pytest.mark.slow
def test_import_pica_stays_light_and_pipeline_is_lazy():
    code = ("import sys, pica\nprint('pica.pipeline' in sys.modules)\n"
            "from pica import Pipeline\nprint(Pipeline.__module__, 'pica.pipeline' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, check=True).stdout.split()
    assert out == ["False", "pica.pipeline", "True"]


def test_pipeline_is_called_with_a_path_a_pil_image_or_bytes(photo):
    from pica import Pipeline as Public

    pipe = Public(index="none", llm="gemma3-270m", shots=0, backend=FakeBackend(reply=lambda p: " tennis"))
    assert pipe.settings.index == "none" and pipe.settings.shots == 0
    caption = "a man swinging a tennis racket"
    by_path = pipe(photo, "What sport?", caption=caption)
    by_pil = pipe(Image.open(photo), "What sport?", caption=caption)
    by_bytes = pipe(photo.read_bytes(), "What sport?", caption=caption)
    assert by_path.answer == by_pil.answer == by_bytes.answer == "tennis"
    many = pipe([photo, photo.read_bytes()], ["What sport?", "Which game?"], caption=[caption, caption])
    assert [a.answer for a in many] == ["tennis", "tennis"]
    assert [a.question for a in pipe([photo, photo], "What sport?", caption=caption)] == ["What sport?"] * 2
    data = pipe.to_json(by_path)
    assert data["answer"] == "tennis" and data["llm"] == "fake:backend" and data["choice"]["method"]


def test_pipeline_kwargs_are_settings_and_a_typo_is_named():
    from pica.errors import InputError

    with pytest.raises(InputError, match="unknown setting 'shot'; did you mean 'shots'"):
        Pipeline(shot=3)
    with pytest.raises(InputError, match="image must be a file path, a PIL image or bytes"):
        Pipeline(index="none", backend=FakeBackend())(123, "What?", caption="a cat")


def test_pipeline_answer_equals_the_cli_json(fake_llm, photo):
    cli = run("answer", photo, "What sport?", "--caption", "a man on a court", "--index", "none", "--json")
    assert cli.exit_code == 0, cli.output
    pipe = FakeLLMPipeline(index="none")
    api = pipe.to_json(pipe(photo, "What sport?", caption="a man on a court"))
    from_cli = json.loads(cli.stdout)
    assert {k: v for k, v in api.items() if k != "seconds"} == {k: v for k, v in from_cli.items()
                                                               if k != "seconds"}


# -- 9. the report -----------------------------------------------------------------------------
@pytest.mark.slow
def test_report_reads_plainly(fake_llm, okvqa_files, text_index, tmp_path):
    folder = tmp_path / "run"
    assert run(*eval_args(okvqa_files, folder, "--index", text_index, "--limit", "4")).exit_code == 0
    html = (folder / "report.html").read_text()
    config = html[html.index('<table class="config"'):html.index("</table>", html.index('<table class="config"'))]
    assert "<td>shots</td><td>4</td>" in config and "{" not in config  # readable rows, no JSON blobs
    assert '<details id="config-json">' in html and "&#34;shots&#34;: 4" in html  # the JSON behind a toggle
    assert "total (mean of all questions)" in html and "first question (loads the models)" not in html
    assert 'id="first-question"' in html
    assert html.count('<span class="gold-label">gold answers</span>') == 4
    assert "accuracy ± 1 SE (n=4)" in html
    stats = html[html.index('id="summary"'):html.index("</div>\n\n", html.index('id="summary"'))]
    assert "± –%" in stats  # n = 4: no SE that would read as certainty
    per_category = html[html.index('id="per-category"'):]
    assert re.search(r'<td class="num">–</td><td class="num">[1-4]</td>', per_category)


# -- 10. --quiet / --verbose, --json ------------------------------------------------------------
@pytest.mark.slow
def test_quiet_leaves_out_progress_bars_and_notes(fake_llm, okvqa_files, text_index, tmp_path):
    base = ["eval", None, "--dataset", okvqa_files["dev"], "--captions", okvqa_files["captions"],
            "--index", text_index, "--limit", "2"]
    loud = run(*[tmp_path / "a" if a is None else a for a in base])
    assert loud.exit_code == 0 and "eval: 100%" in loud.stderr  # a progress bar on stderr
    quiet = run(*[tmp_path / "b" if a is None else a for a in base], "--quiet")
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and quiet.stdout.startswith("accuracy ")


def test_verbose_prints_the_resolved_settings(fake_llm, photo):
    args = ["answer", photo, "What sport?", "--caption", "a court", "--index", "none", "--choose", "vote"]
    assert "settings:" not in run(*args).stderr
    shown = run(*args, "--verbose").stderr
    assert shown.startswith('settings: {"captioner": ') and '"choose": "vote"' in shown


@pytest.mark.slow
def test_json_on_eval_index_info_and_index_list(fake_llm, okvqa_files, text_index, tmp_path):
    result = run(*eval_args(okvqa_files, tmp_path / "run", "--index", text_index, "--limit", "2", "--json"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # stdout is the JSON alone; the header went to stderr
    assert summary["n"] == 2 and summary["limit"] == 2 and summary["run"] == str(tmp_path / "run")
    assert "examples: index pool" in result.stderr
    info = json.loads(run("index", "info", text_index, "--json").stdout)
    assert info["count"] == 30 and info["path"] == str(text_index) and info["choosers"] == []
    listed = json.loads(run("index", "list", "--root", Path(text_index).parent, "--json").stdout)
    assert any(row["name"] == "pool" and row["count"] == 30 for row in listed)
    assert any(row["name"] == "starter" for row in listed)


def test_eval_reports_a_bad_setting_before_reading_the_dataset(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the dataset was read before the settings were checked")

    monkeypatch.setattr("pica.datasets.load_questions", never)
    result = run("eval", tmp_path / "run", "--dataset", tmp_path / "big.json", "--index", "none",
                 "--shots", "-1")
    assert result.exit_code == 2 and "--shots must be at least 0" in result.stderr
    assert not (tmp_path / "run").exists()
