"""The openai:MODEL captioner in every command that captions: `answer`, `index build` and
`serve`, against a real vision server (the LLM is a scripted OpenAI server, the starter index the
packaged MiniLM)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from serve_server import pica_server
from servers import FlakyServer, VisionServer, completion_json, vision_caption
from typer.testing import CliRunner

from pica.caption.vlm import caption_instructions
from pica.cli import app
from pica.retrieval.index import ExampleIndex

PLAIN = caption_instructions()["plain"]


def picture(path, seed):
    cells = np.random.default_rng(seed).integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(cells).resize((32, 32), Image.NEAREST)
    image.save(path)
    return image


@pytest.mark.slow
def test_answer_and_serve_caption_with_the_served_model(tmp_path):
    image = picture(tmp_path / "photo.png", 5)
    with VisionServer() as vision, FlakyServer([(200, completion_json(" red", [-0.1]))]) as llm:
        common = ["--captioner", "openai:vlm", "--captioner-api-base", vision.base_url,
                  "--llm", "openai:test", "--api-base", llm.base_url]
        result = CliRunner().invoke(app, ["answer", str(tmp_path / "photo.png"), "What colour?",
                                          *common, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["caption"] == vision_caption(image, PLAIN)
        with pica_server(*common) as server:
            reply = server.post_form("/v1/answer", {"question": "What colour?"},
                                     {"image": ("p.png", (tmp_path / "photo.png").read_bytes(), "image/png")})
            assert reply.status == 200, reply.text
            assert reply.json["caption"] == vision_caption(image, PLAIN)
    assert vision.count == 2


def test_index_build_captions_images_with_the_served_model(okvqa_files, tmp_path):
    rows = json.loads(okvqa_files["pool"].read_text())[:6]
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(rows))
    (tmp_path / "images").mkdir()
    images = {str(r["question_id"]): picture(tmp_path / "images" / f"{r['img_id']}.png", i)
              for i, r in enumerate(rows)}
    with VisionServer() as vision:
        result = CliRunner().invoke(app, [
            "index", "build", str(tmp_path / "index"), "--dataset", str(data), "--images",
            str(tmp_path / "images"), "--captioner", "openai:vlm", "--captioner-api-base",
            vision.base_url, "--embedder", "sentence-transformers:all-MiniLM-L6-v2"])
        assert result.exit_code == 0, result.output
    index = ExampleIndex.load(tmp_path / "index")
    assert index.kinds == ["question", "caption"]
    for row in range(len(index)):
        example = index.example(row)
        assert example.caption == vision_caption(images[example.id], PLAIN)
