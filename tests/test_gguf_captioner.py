"""A local GGUF vision model end to end: the packaged Gemma 3 270M with a random-weight LLaVA-style
mmproj the test writes with the ``gguf`` package, through llama-cpp-python's chat handlers."""

from __future__ import annotations

import pytest
from PIL import Image
from typer.testing import CliRunner

from pica.caption import make_captioner
from pica.cli import app
from pica.datasets import read_captions
from pica.errors import BackendError, InputError, ModelLoadError
from pica.types import Question

pytest.importorskip("gguf")
GEMMA_WIDTH = 640  # n_embd of Gemma 3 270M


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    from tiny_models import make_tiny_mmproj

    from pica.util.llama import resolve_gguf

    root = tmp_path_factory.mktemp("vlm")
    return str(resolve_gguf("gemma3-270m")), str(make_tiny_mmproj(root / "mmproj.gguf", GEMMA_WIDTH))


@pytest.mark.slow
def test_gguf_model_and_projector_caption_images_and_pica_caption_writes_them(vlm, tmp_path):
    model, mmproj = vlm
    images = tmp_path / "images"
    images.mkdir()
    for i, colour in enumerate([(200, 10, 10), (10, 200, 10)]):
        Image.new("RGB", (40, 30), colour).save(images / f"{i + 1}.png")
    cap = make_captioner(f"gguf:{model}", mmproj=mmproj, threads=1)
    assert cap.id == "gguf:gemma-3-270m-q4_k_m.gguf+mmproj.gguf"
    [text] = cap.caption([Question(id="1", question="", image_id="1", image_path=images / "1.png")])
    assert text and "\n" not in text  # random weights: some words, one line
    result = CliRunner().invoke(app, ["caption", str(tmp_path / "c.jsonl"), "--images", str(images),
                                      "--captioner", f"gguf:{model}", "--mmproj", mmproj,
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(read_captions(tmp_path / "c.jsonl")) == ["1", "2"]


def test_projector_that_does_not_fit_the_model_is_a_load_error(tmp_path):
    from tiny_models import make_tiny_mmproj

    from pica.caption.gguf import GGUFCaptioner
    from pica.util.llama import resolve_gguf

    wrong = make_tiny_mmproj(tmp_path / "wrong.gguf", n_embd_text=64)
    cap = GGUFCaptioner(str(resolve_gguf("gemma3-270m")), mmproj=str(wrong), threads=1, n_ctx=512)
    image = tmp_path / "a.png"
    Image.new("RGB", (20, 20)).save(image)
    with pytest.raises(BackendError, match="failed on an image: Failed to load mtmd context"):
        cap.caption([Question(id="1", question="", image_id="1", image_path=image)])
    with pytest.raises(InputError, match="--mmproj"):
        GGUFCaptioner(str(resolve_gguf("gemma3-270m")))
    with pytest.raises(ModelLoadError, match="not found"):
        GGUFCaptioner(str(tmp_path / "missing.gguf"), mmproj=str(wrong))
