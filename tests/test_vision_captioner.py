"""Vision-language captioners against a real chat-completions server that decodes the image it
receives (tests/servers.VisionServer), and the `pica caption` job: question-aware prompts, resume,
requests in flight, shards, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from servers import VisionServer, vision_caption
from typer.testing import CliRunner

from pica.caption import make_captioner
from pica.caption.cached import CachedCaptioner
from pica.caption.job import finished_keys
from pica.cli import app
from pica.datasets import read_captions
from pica.errors import BackendError
from pica.types import Question

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def photo(seed: int, size=(64, 48)) -> Image.Image:
    """A distinct picture per seed (coarse noise, so each has its own mean colour)."""
    cells = np.random.default_rng(seed).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize(size, Image.NEAREST)


@pytest.fixture
def folder(tmp_path):
    """Eight PNG images named like COCO files; returns (folder, {image_id: image})."""
    root = tmp_path / "images"
    root.mkdir()
    images = {}
    for i in range(8):
        image = photo(i)
        image.save(root / f"COCO_val2014_{i + 1:012d}.png")
        images[str(i + 1)] = image
    return root, images


def one_error_line(result, fragment, code=1):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip() and "captioning" not in line]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_the_server_receives_the_image_that_was_sent(tmp_path):
    image = photo(3)
    path = tmp_path / "a.png"
    image.save(path)
    with VisionServer() as server:
        cap = make_captioner("openai:vlm", api_base=server.base_url)
        [caption] = cap.caption([Question(id="1", question="what?", image_id="1", image_path=path)])
        body = server.received[0]
    assert np.array_equal(np.asarray(server.images[0].convert("RGB")), np.asarray(image))
    assert caption == vision_caption(image, cap.instructions["plain"])
    assert body["model"] == "vlm" and body["temperature"] == 0 and body["max_tokens"] > 0
    [message] = body["messages"]
    assert message["role"] == "user" and [p["type"] for p in message["content"]] == ["text", "image_url"]
    assert message["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_large_images_are_downscaled_and_decoded_ones_sent_as_jpeg():
    big = photo(1, size=(2000, 1000))
    with VisionServer() as server:
        cap = make_captioner("openai:vlm", api_base=server.base_url, max_side=256)
        cap.caption([Question(id="1", question="q", image_id="1", image=lambda: big)])
        url = server.received[0]["messages"][0]["content"][1]["image_url"]["url"]
    assert server.images[0].size == (256, 128)
    assert url.startswith("data:image/jpeg;base64,")


def test_question_aware_prompts_carry_the_question(tmp_path):
    photo(2).save(tmp_path / "b.png")
    with VisionServer() as server:
        cap = make_captioner("openai:vlm", api_base=server.base_url, question_aware=True)
        [caption] = cap.caption([Question(id="7", question="What sport is this?", image_id="2",
                                          image_path=tmp_path / "b.png")])
        text = server.received[0]["messages"][0]["content"][0]["text"]
    assert "What sport is this?" in text and caption.endswith("for What sport is this?")


def test_caption_folder_then_read_back_with_captions(folder, tmp_path):
    root, images = folder
    out = tmp_path / "caps.jsonl"
    with VisionServer() as server:
        result = run("caption", out, "--images", root, "--captioner", "openai:vlm",
                     "--captioner-api-base", server.base_url, "--no-progress")
    assert result.exit_code == 0, result.output
    captions = read_captions(out)
    plain = make_captioner("openai:vlm", api_base="http://127.0.0.1:1/v1").instructions["plain"]
    assert captions == {k: vision_caption(im, plain) for k, im in images.items()}
    cached = CachedCaptioner(out)
    assert cached.caption([Question(id="x", question="?", image_id="COCO_val2014_000000000003")]) == \
        [captions["3"]]


def dataset(tmp_path, root):
    """Two questions on image 1, one on image 2 (LXMERT format)."""
    rows = [{"question_id": "11", "img_id": "COCO_val2014_000000000001", "sent": "What colour is it?",
             "label": {"red": 1}},
            {"question_id": "12", "img_id": "COCO_val2014_000000000001", "sent": "How many?",
             "label": {"2": 1}},
            {"question_id": "21", "img_id": "COCO_val2014_000000000002", "sent": "Where is this?",
             "label": {"park": 1}}]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows))
    return path


def test_question_aware_dataset_captions_are_keyed_by_question(folder, tmp_path):
    root, _ = folder
    out = tmp_path / "qa.jsonl"
    with VisionServer() as server:
        result = run("caption", out, "--images", root, "--dataset", dataset(tmp_path, root),
                     "--question-aware", "--captioner", "openai:vlm", "--api-base", server.base_url,
                     "--no-progress")
        assert result.exit_code == 0, result.output
        assert server.count == 3
    mark, *rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert mark["pica_captions"] == 1 and mark["captioners"][0]["question_aware"] is True
    assert sorted(r["question_id"] for r in rows) == ["11", "12", "21"]
    cached = CachedCaptioner(out)
    caps = cached.caption([Question(id="12", question="How many?", image_id="1"),
                           Question(id="11", question="What colour is it?", image_id="1")])
    assert caps[0].endswith("for How many?") and caps[1].endswith("for What colour is it?")
    # plain mode on the same dataset: one caption per image
    with VisionServer() as server:
        result = run("caption", tmp_path / "plain.jsonl", "--images", root, "--dataset",
                     tmp_path / "data.json", "--captioner", "openai:vlm", "--api-base",
                     server.base_url, "--no-progress")
        assert result.exit_code == 0 and server.count == 2


def test_resume_asks_nothing_already_answered(folder, tmp_path):
    root, images = folder
    out = tmp_path / "caps.jsonl"
    args = ["caption", out, "--images", root, "--captioner", "openai:vlm", "--no-progress",
            "--concurrency", "1"]
    with VisionServer(mode="fail_after", fail_after=3) as server:
        result = run(*args, "--api-base", server.base_url)
    one_error_line(result, "refuses images")
    assert len(finished_keys(out, False)) == 3
    with out.open("a") as f:
        f.write('{"image_id": "8", "capt')  # a torn last line: killed mid-write
    with VisionServer() as server:
        result = run(*args, "--api-base", server.base_url)
        assert result.exit_code == 0, result.output
        assert server.count == 5
    lines = out.read_text().splitlines()
    assert len(lines) == 1 + 8 and sorted(read_captions(out)) == sorted(images)
    with VisionServer() as server:
        assert run(*args, "--api-base", server.base_url).exit_code == 0 and server.count == 0


def test_concurrency_keeps_several_requests_in_flight(folder, tmp_path):
    root, images = folder
    with VisionServer(slots=16, latency=0.3) as server:
        result = run("caption", tmp_path / "c.jsonl", "--images", root, "--captioner", "openai:vlm",
                     "--api-base", server.base_url, "--concurrency", "4", "--no-progress")
        assert result.exit_code == 0, result.output
    assert server.max_in_flight == 4
    assert len(read_captions(tmp_path / "c.jsonl")) == len(images)


def test_caption_shards_cover_every_image_once(folder, tmp_path):
    root, images = folder
    seen = []
    with VisionServer() as server:
        for k in range(3):
            out = tmp_path / f"part{k}.jsonl"
            result = run("caption", out, "--images", root, "--captioner", "openai:vlm",
                         "--api-base", server.base_url, "--shard", f"{k}/3", "--no-progress")
            assert result.exit_code == 0, result.output
            seen.append(sorted(read_captions(out), key=int))
    assert [len(s) for s in seen] == [2, 3, 3]
    assert sorted(sum(seen, []), key=int) == sorted(images, key=int)
    assert seen[0] == ["1", "2"]  # contiguous blocks of the sorted ids
    one_error_line(run("caption", tmp_path / "x.jsonl", "--images", root, "--shard", "3/3"),
                   "--shard must be K/N", code=2)


def test_server_that_refuses_images_or_answers_nothing_is_one_line(folder, tmp_path):
    root, _ = folder
    for mode, fragment in (("refuse", "refuses images"), ("empty", "empty caption")):
        with VisionServer(mode=mode) as server:
            result = run("caption", tmp_path / f"{mode}.jsonl", "--images", root, "--captioner",
                         "openai:vlm", "--api-base", server.base_url, "--no-progress")
        one_error_line(result, fragment)


def test_server_down_fails_at_once_naming_api_wait(tmp_path):
    from servers import free_port

    photo(0).save(tmp_path / "a.png")
    cap = make_captioner("openai:vlm", api_base=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(BackendError, match="connection refused.*--api-wait SECONDS"):
        cap.caption_one(Question(id="1", question="", image_id="1", image_path=tmp_path / "a.png"))


def test_missing_api_base_and_projector_are_input_errors(folder, tmp_path, monkeypatch):
    root, _ = folder
    for name in ("PICA_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    one_error_line(run("caption", tmp_path / "a.jsonl", "--images", root, "--captioner", "openai:vlm"),
                   "--captioner-api-base URL", code=2)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    one_error_line(run("caption", tmp_path / "b.jsonl", "--images", root, "--captioner",
                       f"gguf:{model}"), "--mmproj", code=2)
    assert not (tmp_path / "a.jsonl").exists() or not (tmp_path / "a.jsonl").read_text()
