"""--device / --dtype / --n-gpu-layers, and index builds through the loader threads (CPU only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pica.config import Settings
from pica.errors import InputError

runner = CliRunner()


def one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture
def no_gpu(monkeypatch):
    """torch sees neither CUDA nor MPS, whatever machine runs the test."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


# --- device and dtype resolution -------------------------------------------------------------------

def test_auto_is_the_cpu_without_a_gpu_and_float32_there(no_gpu):
    import torch

    from pica.util.devices import resolve_device, resolve_dtype

    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


@pytest.mark.parametrize("spec", ["cuda", "cuda:1", "mps"])
def test_a_device_that_is_not_there_is_one_input_error(no_gpu, spec):
    from pica.util.devices import resolve_device

    with pytest.raises(InputError, match=f"^{spec} requested but torch sees no .*; use --device cpu$"):
        resolve_device(spec)


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("device", "tpu", "--device 'tpu' is not valid"), ("device", "cuda:x", "is not valid"),
    ("dtype", "float8", "--dtype 'float8' is not valid"), ("n_gpu_layers", -2, "--n-gpu-layers"),
])
def test_settings_refuse_bad_device_dtype_and_layers(field, value, fragment):
    with pytest.raises(InputError, match=fragment):
        Settings(**{field: value}).validate()


def test_dtype_changes_the_run_fingerprint_and_device_does_not():
    base = Settings().fingerprint()
    assert Settings(dtype="float16").fingerprint() != base
    assert Settings(device="cpu", n_gpu_layers=0).fingerprint() == base


def test_cli_cuda_without_a_gpu_exits_2_with_one_line(no_gpu, tmp_path):
    from pica.cli import app

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 32), "red").save(photo)
    (tmp_path / "blip").mkdir()  # found (its files are looked for first), then the device is checked
    (tmp_path / "blip" / "config.json").write_text("{}")
    result = runner.invoke(app, ["answer", str(photo), "What is it?",
                                 "--captioner", str(tmp_path / "blip"), "--device", "cuda"])
    one_line_error(result, 2, "cuda requested but torch sees no GPU")
    result = runner.invoke(app, ["answer", str(photo), "What is it?", "--device", "gpu"])
    one_line_error(result, 2, "--device 'gpu' is not valid")
    (tmp_path / "pica.toml").write_text('device = "cuda:0"\n')
    result = runner.invoke(app, ["index", "build", str(tmp_path / "idx"), "--examples", str(tmp_path / "x"),
                                 "--config", str(tmp_path / "pica.toml"), "--dtype", "half"])
    one_line_error(result, 2, "--dtype 'half' is not valid")


# --- llama.cpp GPU layers ----------------------------------------------------------------------------

class LlamaReached(Exception):
    pass


@pytest.fixture
def llama_spy(monkeypatch):
    """Replace ``llama_cpp.Llama`` by a recorder of its keyword arguments that stops the load."""
    import llama_cpp

    seen: dict = {}

    def fake_llama(**kwargs):
        seen.update(kwargs)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(llama_cpp, "Llama", fake_llama)
    return seen


@pytest.mark.parametrize(("offload", "flag", "expected"), [
    (True, [], -1), (False, [], 0), (True, ["--n-gpu-layers", "7"], 7), (False, ["--n-gpu-layers", "0"], 0),
])
def test_n_gpu_layers_reaches_llama_cpp(llama_spy, monkeypatch, offload, flag, expected, tmp_path):
    import llama_cpp

    from pica.cli import app

    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: offload)
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 32)).save(photo)
    result = runner.invoke(app, ["answer", str(photo), "What?", "--caption", "a cat", *flag])
    one_line_error(result, 2, "llama.cpp could not load")
    assert llama_spy["n_gpu_layers"] == expected


def test_gpu_layers_on_a_cpu_only_build_is_an_input_error(llama_spy, monkeypatch, tmp_path):
    import llama_cpp

    from pica.cli import app

    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 32)).save(photo)
    result = runner.invoke(app, ["answer", str(photo), "What?", "--caption", "a cat",
                                 "--n-gpu-layers", "-1"])
    one_line_error(result, 2, "needs a GPU build of llama-cpp-python")
    assert not llama_spy


def test_the_installed_llama_cpp_loads_with_the_detected_default(gemma_path):
    import llama_cpp

    from pica.llm.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(gemma_path, n_ctx=256)
    try:
        assert backend.n_gpu_layers == (-1 if llama_cpp.llama_supports_gpu_offload() else 0)
        assert backend.complete(["The capital of France is"], max_tokens=2)[0].text
    finally:
        backend.close()


# --- the loader threads: same captions and vectors as the sequential path -------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_models import make_tiny_blip, make_tiny_open_clip

    root = tmp_path_factory.mktemp("tiny")
    return {"blip": make_tiny_blip(root / "blip"), "clip": make_tiny_open_clip(root / "clip")}


@pytest.fixture(scope="module")
def pictures():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, size=(30 + i, 40, 3), dtype=np.uint8)) for i in range(5)]


@pytest.mark.slow
@pytest.mark.parametrize("question_aware", [False, True])
def test_preprocessed_pixels_equal_the_processor_batch(tiny, pictures, question_aware):
    import torch

    from pica.caption.hf import HFCaptioner

    cap = HFCaptioner(str(tiny["blip"]), question_aware=question_aware, device="cpu")
    batch = cap.processor(images=pictures, return_tensors="pt")["pixel_values"]
    assert torch.equal(torch.stack([cap.preprocess(p) for p in pictures]), batch)
    questions = ["what is it?", "why?", "what color is the car?", "who?", "where is this?"]
    assert cap.caption_images([cap.preprocess(p) for p in pictures], questions) == \
        cap.caption_images(pictures, questions)


@pytest.mark.slow
def test_open_clip_vectors_from_preprocessed_pixels(tiny, pictures):
    from pica.retrieval.embedders import OpenClipEmbedder

    clip = OpenClipEmbedder(str(tiny["clip"]), device="cpu")
    np.testing.assert_array_equal(clip.embed_images([clip.preprocess(p) for p in pictures]),
                                  clip.embed_images(pictures))


@pytest.mark.slow
def test_index_build_with_loader_threads_equals_the_sequential_build(okvqa_files, tiny, tmp_path):
    import faiss
    import pandas as pd
    from test_index_cli import write_images

    from pica.datasets import load_questions
    from pica.retrieval.build import build_index

    images = write_images(tmp_path / "images", okvqa_files["pool"])
    questions = load_questions(dataset=okvqa_files["pool"], images_dir=images)
    built = {}
    for workers, batch in ((0, 32), (0, 4), (2, 4), (3, 7)):
        out = build_index(tmp_path / f"w{workers}b{batch}", questions, captioner=str(tiny["blip"]),
                          embedder=f"open_clip:{tiny['clip']}", batch_size=batch, workers=workers,
                          device="cpu", progress=False)
        vectors = {k: faiss.read_index(str(out / f"{k}.faiss")).reconstruct_n(0, 30) for k in ("question", "image")}
        built[workers, batch] = (pd.read_parquet(out / "examples.parquet"), vectors)
    rows, vectors = built[0, 32]
    assert rows["caption"].str.len().min() > 0
    for key, (other_rows, other_vectors) in built.items():
        pd.testing.assert_frame_equal(other_rows, rows)
        for kind in vectors:
            np.testing.assert_allclose(other_vectors[kind], vectors[kind], atol=1e-6, err_msg=str(key))
    manifest = json.loads((tmp_path / "w2b4" / "manifest.json").read_text())
    assert manifest["count"] == 30
