"""Nothing the user owns is destroyed (issue 27): files and folders pica did not write are refused
untouched, captions files carry pica's mark and their captioner, appends are all or nothing on a
real full tmpfs, image ids round-trip from `pica caption --images` to `--captions`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from servers import HangingServer, VisionServer
from test_faults import fill, tmpfs
from typer.testing import CliRunner

from pica.caption.job import CaptionTask, folder_tasks, run_caption_job
from pica.cli import app
from pica.datasets import read_captions, scan_images
from pica.errors import InputError, StorageError
from pica.types import Question

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and "captioning" not in line and not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def photos(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cells = np.random.default_rng(i).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(cells).resize((64, 48), Image.NEAREST).save(folder / name)
    return folder


def caption_args(out, images, server):
    return ["caption", out, "--images", images, "--captioner", "openai:vlm", "--api-base",
            server.base_url, "--no-progress"]


# -- 1. a file that is not a captions file is never cut or appended to ---------------------------
@pytest.mark.parametrize("content", [
    '[\n  {"question_id": 1, "sent": "What?"}\n]',  # an indented dataset JSON, no final newline
    '{"question_id": 1, "sent": "What?"}',  # one line of JSON
    "image_id\tcaption\n1\ta dog\n",  # a user's own TSV (or JSONL) of captions
    '{"image_id": "1", "caption": "mine"}\n',
])
def test_caption_refuses_a_file_it_did_not_write_and_leaves_it_untouched(tmp_path, content):
    images = photos(tmp_path / "img", ["a.jpg"])
    out = tmp_path / "data.json"
    out.write_text(content)
    with VisionServer() as server:
        line = error_line(run(*caption_args(out, images, server)), 2)
        assert server.count == 0  # refused before any request
    assert "not a captions file written by pica caption" in line and str(out) in line
    assert out.read_text() == content


def test_torn_line_repair_only_in_files_pica_wrote(tmp_path):
    images = photos(tmp_path / "img", ["a.jpg", "b.jpg"])
    out = tmp_path / "caps.jsonl"
    with VisionServer() as server:
        assert run(*caption_args(out, images, server)).exit_code == 0
    mark = out.read_text().splitlines()[0]
    assert json.loads(mark)["pica_captions"] == 1
    with out.open("a") as f:
        f.write('{"image_id": "c", "capt')  # pica's own file, torn by a kill: repaired
    with VisionServer() as server:
        assert run(*caption_args(out, images, server)).exit_code == 0
    assert out.read_text().endswith("\n") and sorted(read_captions(out)) == ["a", "b"]


# -- 10. an output path that is a folder ---------------------------------------------------------
def test_caption_output_that_is_a_folder_is_one_line_exit_2(tmp_path):
    images = photos(tmp_path / "img", ["a.jpg"])
    with VisionServer() as server:
        line = error_line(run(*caption_args(tmp_path / "img", images, server)), 2)
    assert "is a folder" in line and sorted(p.name for p in (tmp_path / "img").iterdir()) == ["a.jpg"]


# -- 33.2: a job that produced nothing leaves no file ----------------------------------------------
def test_a_caption_job_against_a_server_that_is_down_leaves_no_file(tmp_path):
    from servers import free_port

    images = photos(tmp_path / "img", ["a.jpg"])
    out = tmp_path / "caps.jsonl"
    result = run("caption", out, "--images", images, "--captioner", "openai:vlm", "--api-base",
                 f"http://127.0.0.1:{free_port()}/v1", "--no-progress")
    assert "connection refused" in error_line(result, 1) and "--api-wait SECONDS" in result.stderr
    assert not out.exists()


# -- 11. a resumed captions file records its captioner and refuses another -------------------------
def test_resuming_with_another_captioner_or_side_is_refused_unless_mixed(tmp_path):
    images = photos(tmp_path / "img", ["a.jpg", "b.jpg", "c.jpg"])
    out = tmp_path / "caps.jsonl"
    with VisionServer() as server:
        assert run(*caption_args(out, images, server), "--limit", "1").exit_code == 0
        before = out.read_bytes()
        line = error_line(run(*caption_args(out, images, server), "--caption-max-side", "256"), 2)
        assert "max_side: 768 there, 256 now" in line and "--mix-captioners" in line
        assert out.read_bytes() == before and server.count == 1
        result = run(*caption_args(out, images, server), "--caption-max-side", "256", "--mix-captioners")
        assert result.exit_code == 0, result.output
    mark = json.loads(out.read_text().splitlines()[0])
    assert [c["max_side"] for c in mark["captioners"]] == [768, 256]
    assert sorted(read_captions(out)) == ["a", "b", "c"]


# -- 8. the caption -> --captions round trip for any file names --------------------------------------
def test_captions_of_a_folder_of_any_names_are_found_by_answer(tmp_path, fake_backend, monkeypatch):
    images = photos(tmp_path / "img", ["img00.jpg", "Holiday Photo.PNG", "000000297147.jpg"])
    out = tmp_path / "caps.jsonl"
    with VisionServer() as server:
        assert run(*caption_args(out, images, server)).exit_code == 0
    captions = read_captions(out)
    for name in ("img00.jpg", "Holiday Photo.PNG", "000000297147.jpg"):
        q = Question.from_image(images / name, "What is it?")
        assert captions.find(q.id, q.image_id), name  # the key answer --captions looks up


# -- 9. same.jpg and same.png: refused, never one dropped ---------------------------------------------
def test_two_files_with_one_stem_are_refused_naming_both(tmp_path):
    images = photos(tmp_path / "img", ["same.jpg", "same.png", "other.jpg"])
    out = tmp_path / "caps.jsonl"
    with VisionServer() as server:
        line = error_line(run(*caption_args(out, images, server)), 2)
        assert server.count == 0
    assert "same.jpg" in line and "same.png" in line and not out.exists()
    with pytest.raises(InputError):
        folder_tasks(images)
    assert scan_images(images)["same"].name == "same.jpg"  # lenient readers: the documented first


# -- 5. a full disk leaves no torn line; the message names the file; resume continues -------------------
class WordCaptioner:
    """A parallel captioner answering long captions (fills a small disk fast)."""

    parallel = 1
    reads_pixels = False
    id = "words"

    def caption_one(self, question, image=None):
        return f"{question.image_id} " + "word " * 200


def test_full_disk_leaves_no_torn_line_names_the_file_and_resume_continues(tmp_path):
    disk = tmp_path / "disk"
    tasks = [CaptionTask(str(i), Question(id=str(i), question="", image_id=str(i))) for i in range(20)]
    with tmpfs(disk, "64k"):
        out = disk / "caps.jsonl"
        filler = fill(disk)
        os.truncate(filler, os.path.getsize(filler) - 6000)  # room for a few captions
        with pytest.raises(StorageError) as full:
            run_caption_job(tasks, WordCaptioner(), out, progress=False)
        assert str(out) in str(full.value) and "No space left" in str(full.value)
        text = out.read_text()
        assert text.endswith("\n")  # every line whole
        kept = [json.loads(line) for line in text.splitlines()[1:]]
        assert kept and len(kept) < 20
        read_captions(out)  # --captions reads it as it is
        filler.unlink()  # space is back: the same job resumes where it stopped
        before, written, _ = run_caption_job(tasks, WordCaptioner(), out, progress=False)
        assert (before, written) == (len(kept), 20 - len(kept))
        assert len(read_captions(out)) == 20


# -- 2. --overwrite on a folder that is not an index ------------------------------------------------------
def test_index_build_and_merge_overwrite_refuse_a_folder_that_is_not_an_index(tmp_path):
    docs = tmp_path / "mydocs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("x")
    examples = tmp_path / "ex.jsonl"
    examples.write_text(json.dumps({"id": "1", "question": "q?", "answer": "a"}) + "\n")
    line = error_line(run("index", "build", docs, "--examples", examples, "--overwrite"), 2)
    assert "not a pica index" in line and (docs / "thesis.txt").read_text() == "x"
    line = error_line(run("index", "merge", docs, tmp_path / "s0", "--overwrite"), 2)
    assert "not a pica index" in line and sorted(p.name for p in docs.iterdir()) == ["thesis.txt"]


# -- also seen: a read-only output exits 74 ---------------------------------------------------------------
def test_read_only_output_exits_74(tmp_path, okvqa_files):
    images = photos(tmp_path / "img", ["a.jpg"])
    disk = tmp_path / "ro"
    with tmpfs(disk, "64k"):
        (disk / "run").mkdir()
        done = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True)
        if done.returncode:
            pytest.skip("cannot remount read-only")
        for out in (disk / "run", disk / "new" / "run"):  # an existing folder, one to create
            line = error_line(run("eval", "--dataset", okvqa_files["dev"], "--captions",
                                  okvqa_files["captions"], "--index", "none", "--out", out,
                                  "--no-progress"), 74)
            assert str(disk) in line and "Read-only" in line
        with VisionServer() as server:
            line = error_line(run(*caption_args(disk / "caps.jsonl", images, server)), 74)
        assert "caps.jsonl" in line and "Read-only" in line


def test_a_hung_server_is_given_up_after_api_timeout_and_retries_naming_the_options(tmp_path):
    images = photos(tmp_path / "img", ["a.jpg"])
    with HangingServer() as server:
        result = run("caption", tmp_path / "c.jsonl", "--images", images, "--captioner", "openai:vlm",
                     "--api-base", server.base_url, "--api-timeout", "0.5", "--api-retries", "1",
                     "--no-progress")
        assert server.count == 2  # the first try and one retry
    line = error_line(result, 1)
    assert "timed out after 0.5 s" in line and "--api-retries / --api-timeout" in line
    assert not (tmp_path / "c.jsonl").exists()


def test_api_limits_come_from_the_config_file_too(tmp_path):
    images = photos(tmp_path / "img", ["a.jpg"])
    config = tmp_path / "pica.toml"
    config.write_text("[pica]\napi_timeout = 0.5\napi_retries = 0\n")
    with HangingServer() as server:
        result = run("caption", tmp_path / "c.jsonl", "--images", images, "--captioner", "openai:vlm",
                     "--api-base", server.base_url, "--config", config, "--no-progress")
        assert server.count == 1  # no retry
    assert "timed out after 0.5 s" in error_line(result, 1)


def test_a_dataset_question_whose_image_has_two_files_is_refused(tmp_path):
    from pica.datasets import load_questions

    images = photos(tmp_path / "img", ["COCO_val2014_000000000001.jpg", "000000000001.png",
                                       "COCO_val2014_000000000002.jpg"])
    rows = [{"question_id": 11, "img_id": "COCO_val2014_000000000001", "sent": "What?", "label": {"a": 1}},
            {"question_id": 21, "img_id": "COCO_val2014_000000000002", "sent": "What?", "label": {"a": 1}}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    with pytest.raises(InputError, match="same image id '1' .question 11."):
        load_questions(dataset=tmp_path / "d.json", images_dir=images)
    (tmp_path / "d.json").write_text(json.dumps(rows[1:]))  # an id no question uses: fine
    assert [q.id for q in load_questions(dataset=tmp_path / "d.json", images_dir=images)] == ["21"]
