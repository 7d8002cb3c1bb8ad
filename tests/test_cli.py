"""The CLI end to end through Typer's CliRunner: real Gemma, real indexes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from pica.cli import app
from pica.config import Settings

runner = CliRunner()
CAPTION = "a young boy putting on a baseball glove"


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.jpg"
    Image.new("RGB", (64, 64), (90, 140, 60)).save(path)
    return path


def assert_one_line_error(result, code: int, fragment: str):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]


@pytest.mark.slow
def test_answer_json_with_the_starter_index_and_packaged_model(photo):
    result = run("answer", photo, "What sport is the boy going to play?", "--caption", CAPTION, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["answer"] and data["answer"] == data["answer"].lower()
    assert data["caption"] == CAPTION
    assert data["logprob"] < 0
    assert data["llm"] == "llama-cpp:gemma3-270m"
    assert len(data["example_ids"]) == 1 and len(data["example_ids"][0]) == Settings().shots
    assert all(i.startswith("starter-") for i in data["example_ids"][0])
    assert {"caption", "retrieval", "llm", "total"} <= set(data["seconds"])


@pytest.mark.slow
def test_plain_answer_is_one_line_and_show_prompt_prints_the_pica_prompt(photo):
    result = run("answer", photo, "What is the boy putting on?", "--caption", CAPTION,
                 "--show-prompt", "--shots", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Please answer the question according to the above context.\n===\n" in out
    assert out.count("\nA: ") == 2  # two shots
    assert f"Context: {CAPTION}\n===\nQ: What is the boy putting on?\nA:\n" in out
    assert out.strip().splitlines()[-1].strip()  # the answer line


@pytest.mark.slow
def test_no_index_answers_zero_shot_and_says_so(photo):
    result = run("answer", photo, "What is the boy putting on?", "--caption", CAPTION, "--index", "none",
                 "--json")
    assert result.exit_code == 0, result.output
    assert "zero-shot" in result.stderr
    assert json.loads(result.stdout)["example_ids"] == [[]]


@pytest.mark.slow
def test_ensemble_makes_disjoint_prompts(photo):
    result = run("answer", photo, "What sport is this?", "--caption", CAPTION, "--shots", "3",
                 "--ensemble", "3", "--json")
    assert result.exit_code == 0, result.output
    ids = json.loads(result.stdout)["example_ids"]
    assert len(ids) == 3 and all(len(p) == 3 for p in ids)
    assert len({i for p in ids for i in p}) == 9


def bad_files(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    full = tmp_path / "full.jpg"
    Image.new("RGB", (256, 256), (1, 2, 3)).save(full)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(full.read_bytes()[:400])
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(bomb)
    return {"missing": tmp_path / "nope.jpg", "empty": empty, "text": text, "cut": cut, "bomb": bomb}


@pytest.mark.parametrize(
    ("case", "fragment"),
    [("missing", "image not found"), ("empty", "empty"), ("text", "not an image"),
     ("cut", "truncated"), ("bomb", "too large")],
)
def test_bad_images_exit_2_with_one_line(tmp_path, case, fragment):
    path = bad_files(tmp_path)[case]
    assert_one_line_error(run("answer", path, "What is this?", "--caption", CAPTION), 2, fragment)


def test_bad_arguments_exit_2_with_one_line(photo, tmp_path):
    broken = tmp_path / "broken-index"
    broken.mkdir()
    (broken / "manifest.json").write_text("{")
    cases = [
        (["   "], "question is empty"),
        (["q?", "--index", str(tmp_path / "no-such-index")], "index not found"),
        (["q?", "--index", str(broken)], "corrupt manifest.json"),
        (["q?", "--llm", str(tmp_path / "missing.gguf")], "GGUF model file not found"),
        (["q?", "--llm", "gemma3-27m"], "did you mean 'gemma3-270m'"),
        (["q?", "--template", "picaa"], "did you mean 'pica'"),
        (["q?", "--choose", "votes"], "did you mean 'vote'"),
        (["q?", "--shots", "-1"], "--shots must be at least 0"),
        (["q?", "--weights", "question"], "kind=number"),
        (["q?", "--embedder", "open_clip:ViT-B-32@openai"], "built with embedder"),
        (["q?", "--config", str(tmp_path / "none.toml")], "config file not found"),
    ]
    for extra, fragment in cases:
        result = run("answer", photo, *extra[:1], "--caption", CAPTION, *extra[1:])
        assert_one_line_error(result, 2, fragment)


@pytest.mark.slow
def test_config_file_is_read_and_cli_wins(photo, tmp_path):
    config = tmp_path / "pica.toml"
    config.write_text('[pica]\nshots = 2\ntemplate = "lean"\n')
    result = run("answer", photo, "What is this?", "--caption", CAPTION, "--config", config, "--json")
    assert len(json.loads(result.stdout)["example_ids"][0]) == 2
    result = run("answer", photo, "What is this?", "--caption", CAPTION, "--config", config, "--shots", "3",
                 "--json")
    assert len(json.loads(result.stdout)["example_ids"][0]) == 3
    config.write_text("shotz = 2\n")
    assert_one_line_error(run("answer", photo, "q?", "--caption", CAPTION, "--config", config), 2,
                          "did you mean 'shots'")


@pytest.mark.slow
def test_help_is_light_and_python_dash_m_works():
    code = "import pica.cli, sys; assert not {'torch', 'llama_cpp', 'faiss'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "pica", "--help"], capture_output=True, text=True, check=True)
    assert "answer" in out.stdout and "index" in out.stdout and "eval" in out.stdout


@pytest.mark.slow
def test_cached_captions_are_found_by_the_image_file_name(tmp_path):
    photo = tmp_path / "COCO_val2014_000000000123.jpg"
    Image.new("RGB", (32, 32)).save(photo)
    tsv = tmp_path / "captions.tsv"
    tsv.write_text('123\t[{"caption": "a kite flying over a beach", "conf": 0.8}]\n')
    result = run("answer", photo, "What is flying?", "--captions", tsv, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["caption"] == "a kite flying over a beach"
    other = tmp_path / "COCO_val2014_000000000999.jpg"
    Image.new("RGB", (32, 32)).save(other)
    assert_one_line_error(run("answer", other, "What is flying?", "--captions", tsv), 2, "no caption")
    assert_one_line_error(run("answer", photo, "q?", "--captions", tsv, "--captioner", "x"), 2, "not both")


def test_eval_without_arguments_shows_its_help():
    result = run("eval")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Usage: pica eval" in result.output and "--dataset" in result.output and "report" in result.output


def test_eval_out_that_is_a_file_exits_2_with_one_line(okvqa_files, text_index, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_text("not a run folder\n")
    result = run("eval", "--dataset", okvqa_files["dev"], "--captions", okvqa_files["captions"],
                 "--index", text_index, "--out", out, "--no-progress")
    assert_one_line_error(result, 2, f"run folder {out} is a file")
    assert out.read_text() == "not a run folder\n"
