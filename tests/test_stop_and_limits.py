"""Every job stops when asked, and one bad input does not sink a batch (issue 27): real SIGTERM and
SIGINT to `pica caption` and `pica eval` against a real server that never answers, real rotated and
16-bit image files, a question that overflows the real llama.cpp context, `--skip-bad`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from servers import HangingServer, VisionServer
from typer.testing import CliRunner

from pica.cli import app
from pica.datasets import read_captions
from pica.util.images import file_data_url, load_image

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def pica(*args: object) -> subprocess.Popen:
    """``python -m pica ARGS`` in a child process (this checkout first on the path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "pica", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextlib.contextmanager
def child(*args: object) -> Iterator[subprocess.Popen]:
    """:func:`pica` ARGS, killed on the way out if a failed check left it running."""
    proc = pica(*args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def signal_and_wait(proc: subprocess.Popen, sig: int = signal.SIGTERM, seconds: float = 10) -> str:
    """Send ``sig`` and wait ``seconds`` for the process to end (the default API time-outs are 60 and
    120 s, so ending in time means the signal was honoured); its stderr."""
    proc.send_signal(sig)
    return proc.communicate(timeout=seconds)[1]


def wait_for(condition, seconds: float = 120) -> None:
    """Poll ``condition`` until it holds (a readiness poll, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the job never got there"
        time.sleep(0.1)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cells = np.random.default_rng(i).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(cells).resize((64, 48), Image.NEAREST).save(folder / f"p{i}.jpg")
    return folder


# -- 3. SIGTERM / SIGINT end a caption job whose server never answers ------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                  (signal.SIGINT, 130, "interrupted")])
def test_a_signal_ends_a_caption_job_stuck_on_a_hung_server_keeping_every_caption(
        tmp_path, sig, code, said):
    images = photos(tmp_path / "img", 8)
    out = tmp_path / "caps.jsonl"
    with (HangingServer(answer_first=2) as server,
          child("caption", out, "--images", images, "--captioner", "openai:vlm", "--api-base",
                server.base_url, "--concurrency", "3", "--no-progress") as proc):
        wait_for(lambda: len(lines(out)) == 1 + 2 and server.held >= 1)
        err = signal_and_wait(proc, sig)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == f"error: {said}"
    assert len(read_captions(out)) == 2 and out.read_text().endswith("\n")


@pytest.mark.slow
def test_sigterm_ends_an_eval_whose_llm_server_never_answers_keeping_finished_rows(
        tmp_path, okvqa_files):
    out = tmp_path / "run"
    results = out / "results.jsonl"
    with (HangingServer(answer_first=3) as server,
          child("eval", "--dataset", okvqa_files["dev"], "--captions", okvqa_files["captions"],
                "--index", "none", "--llm", "openai:m", "--api-base", server.base_url,
                "--concurrency", "2", "--out", out, "--no-progress") as proc):
        wait_for(lambda: len(lines(results)) >= 1 and server.held >= 1)
        kept = len(lines(results))
        err = signal_and_wait(proc)
    assert proc.returncode == 143, err
    rows = [json.loads(line) for line in lines(results)]
    assert len(rows) >= kept and all("question_id" in r for r in rows)


# -- 6, 7. images as a viewer shows them ----------------------------------------------------------
def rotated_photo(path: Path) -> None:
    """A 40x20 picture, left half white, stored with EXIF orientation 6 (a phone held upright):
    shown upright it is 20x40 with the white half on top."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(path, exif=exif, quality=95)


def test_a_rotated_phone_photo_is_loaded_and_sent_upright(tmp_path):
    import base64
    import io

    rotated_photo(tmp_path / "phone.jpg")
    image = load_image(tmp_path / "phone.jpg")
    assert image.size == (20, 40)
    top, bottom = np.asarray(image)[:20].mean(), np.asarray(image)[20:].mean()
    assert top > 200 > 50 > bottom  # orientation 6: the stored left side is the top
    url = file_data_url(tmp_path / "phone.jpg", 768)  # never the stored (sideways) bytes
    sent = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))
    assert sent.size == (20, 40)


def test_pica_caption_sends_a_phone_photo_upright(tmp_path):
    (tmp_path / "img").mkdir()
    rotated_photo(tmp_path / "img" / "phone.jpg")
    with VisionServer() as server:
        result = runner.invoke(app, ["caption", str(tmp_path / "c.jsonl"), "--images",
                                     str(tmp_path / "img"), "--captioner", "openai:vlm",
                                     "--api-base", server.base_url, "--no-progress"])
        assert result.exit_code == 0, result.output
        assert server.images[0].size == (20, 40)


def test_16_bit_greys_are_scaled_not_clipped_to_white(tmp_path):
    from pica.util.images import to_rgb

    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")  # a real 16-bit grey PNG
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    for loaded in (load_image(tmp_path / "deep.png"), to_rgb(Image.open(tmp_path / "deep.png").convert("I"))):
        grey = np.asarray(loaded, dtype=float)[..., 0]
        assert abs(grey - ramp / 257.0).max() <= 1.0  # not clipped: mid grey stays mid grey
        assert grey.min() == 0 and grey.max() == 255


def test_palette_and_alpha_images_are_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    rgba.save(tmp_path / "clear.png")
    rgba.convert("LA").save(tmp_path / "clear-la.png")
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0] * 256)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "clear-p.png", transparency=0)
    for name in ("clear.png", "clear-la.png", "clear-p.png"):
        assert np.asarray(load_image(tmp_path / name)).min() == 255, name


# -- one bad image does not sink a caption job: --skip-bad -----------------------------------------
def test_skip_bad_records_an_unreadable_image_and_goes_on(tmp_path):
    images = photos(tmp_path / "img", 3)
    (images / "p1.jpg").write_bytes(b"not a picture at all")
    out = tmp_path / "caps.jsonl"
    args = ["caption", str(out), "--images", str(images), "--captioner", "openai:vlm", "--no-progress",
            "--concurrency", "1"]
    with VisionServer() as server:
        stopped = runner.invoke(app, [*args, "--api-base", server.base_url])
        assert stopped.exit_code == 2 and "--skip-bad" in stopped.stderr
        result = runner.invoke(app, [*args, "--api-base", server.base_url, "--skip-bad"])
        assert result.exit_code == 0, result.output
    assert "1 unreadable" in result.stdout
    rows = [json.loads(line) for line in lines(out)[1:]]
    bad = [r for r in rows if "error" in r]
    assert [r["image_id"] for r in bad] == ["p1"] and "not an image" in bad[0]["error"]
    assert sorted(read_captions(out)) == ["p0", "p2"]  # readers skip the error row


# -- 12. a question that overflows the context is an error row; the run goes on ------------------------
@pytest.mark.slow
def test_a_question_that_overflows_the_context_is_an_error_row_and_the_run_goes_on(tmp_path, okvqa_files):
    rows = json.loads(Path(okvqa_files["dev"]).read_text())[:4]
    rows[1] = {**rows[1], "sent": "What is it? " + "Tell me more about it. " * 300}
    dataset = tmp_path / "dev.json"
    dataset.write_text(json.dumps(rows))
    out = tmp_path / "run"
    args = ["eval", "--dataset", str(dataset), "--captions", str(okvqa_files["captions"]), "--index",
            "none", "--n-ctx", "512", "--out", str(out), "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    bad = str(rows[1]["question_id"])
    assert f"question {bad}:" in result.stderr and "overflow" in result.stderr
    assert "(1 error rows)" in result.stdout
    results = [json.loads(line) for line in lines(out / "results.jsonl")]
    assert [r["question_id"] for r in results] == [str(r["question_id"]) for r in rows]
    [error] = [r for r in results if r.get("error")]
    assert error["question_id"] == bad and error["score"] == 0.0 and error["answer"] == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"] == 1 and summary["n"] == 4
    again = runner.invoke(app, args)  # resumes past it: nothing left to answer
    assert again.exit_code == 0 and len(lines(out / "results.jsonl")) == 4


@pytest.mark.slow
def test_sigterm_ends_serve_while_an_answer_hangs_on_the_llm_server():
    import contextlib
    import threading
    import urllib.request

    from serve_server import pica_server

    with HangingServer(answer_first=1) as llm, pica_server(  # the warm-up answer, then nothing
            "--index", "none", "--llm", "openai:m", "--api-base", llm.base_url, "--captioner",
            "openai:vlm", "--timeout", "900") as server:
        body = json.dumps({"question": "What is it?", "caption": "a dog"}).encode()
        request = urllib.request.Request(f"{server.base_url}/v1/answer", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})

        def ask() -> None:
            with contextlib.suppress(OSError):  # the server goes away: expected
                urllib.request.urlopen(request, timeout=120).read()

        threading.Thread(target=ask, daemon=True).start()
        wait_for(lambda: llm.held >= 1)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)  # uvicorn gives requests in progress 5 s
        assert server.process.returncode == 143, server.log()[-2000:]


@pytest.mark.slow
def test_sigterm_ends_an_index_build_whose_captioner_server_never_answers(tmp_path, okvqa_files):
    pool = json.loads(Path(okvqa_files["pool"]).read_text())[:12]
    (tmp_path / "pool.json").write_text(json.dumps(pool))
    images = tmp_path / "img"
    images.mkdir()
    for i, row in enumerate(pool):
        cells = np.random.default_rng(i).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        Image.fromarray(cells).resize((64, 48), Image.NEAREST).save(images / f"{row['img_id']}.jpg")
    out = tmp_path / "idx"
    with (HangingServer(answer_first=2) as server,
          child("index", "build", out, "--dataset", tmp_path / "pool.json", "--images", images,
                "--captioner", "openai:vlm", "--api-base", server.base_url, "--concurrency", "2",
                "--embedder", "sentence-transformers:all-MiniLM-L6-v2", "--batch-size", "4") as proc):
        wait_for(lambda: server.held >= 2)
        err = signal_and_wait(proc)
    assert proc.returncode == 143, err
    assert not out.exists() and not list(tmp_path.glob(".idx.tmp-*"))  # nothing half-written
