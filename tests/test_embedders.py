"""Embedders: a tiny random open_clip folder, the packaged MiniLM, and every load error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image
from tiny_models import make_tiny_open_clip

from pica.errors import InputError, ModelLoadError
from pica.retrieval.embedders import OpenClipEmbedder, SentenceTransformerEmbedder, make_embedder, normalize


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_open_clip(tmp_path_factory.mktemp("open_clip"))


@pytest.fixture(scope="module")
def clip(clip_dir):
    return OpenClipEmbedder(str(clip_dir))


@pytest.fixture(scope="module")
def minilm():
    return make_embedder("sentence-transformers:all-MiniLM-L6-v2")


IMAGES = [Image.new("RGB", (40, 30), "red"), Image.new("L", (50, 20), 200).convert("RGB"),
          Image.new("RGB", (64, 64), "navy")]
TEXTS = ["what color is the bus?", "a dog on a couch", "how many people are skiing?"]


def assert_unit_rows(vectors, rows, dim):
    assert isinstance(vectors, np.ndarray)
    assert vectors.shape == (rows, dim)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


# --- tiny open_clip ------------------------------------------------------------------------------

def test_open_clip_vectors(clip, clip_dir):
    assert clip.dim == 32
    assert clip.can_embed_images
    assert clip.id == f"open_clip:local-dir:{clip_dir.resolve()}"
    images = clip.embed_images(IMAGES)
    texts = clip.embed_texts(TEXTS)
    assert_unit_rows(images, 3, 32)
    assert_unit_rows(texts, 3, 32)
    # Same input, same vector; different inputs, different vectors.
    np.testing.assert_allclose(clip.embed_images(IMAGES[:1])[0], images[0], atol=1e-5)
    np.testing.assert_allclose(clip.embed_texts(TEXTS[::-1]), texts[::-1], atol=1e-5)
    assert not np.allclose(texts[0], texts[1])
    assert not np.allclose(images[0], images[2])


def test_open_clip_batches_and_empty_input(clip):
    full = clip.embed_texts(TEXTS)
    np.testing.assert_allclose(clip.embed_texts(TEXTS, batch_size=2), full, atol=1e-5)
    np.testing.assert_allclose(clip.embed_images(IMAGES, batch_size=1), clip.embed_images(IMAGES), atol=1e-5)
    assert clip.embed_texts([]).shape == (0, 32)
    assert clip.embed_images([]).shape == (0, 32)


def test_open_clip_through_make_embedder(clip_dir, clip):
    by_folder = make_embedder(f"open_clip:{clip_dir}")
    by_schema = make_embedder(f"open_clip:local-dir:{clip_dir}")
    assert by_folder.id == by_schema.id == clip.id
    assert make_embedder(f"open_clip:{clip_dir}") is by_folder  # built once per process
    np.testing.assert_allclose(by_schema.embed_texts(TEXTS), clip.embed_texts(TEXTS), atol=1e-5)


def test_unknown_open_clip_arch():
    with pytest.raises(ModelLoadError, match="did you mean 'ViT-B-32'"):
        OpenClipEmbedder("ViT-B-23@laion2b_s34b_b79k")


def test_unknown_pretrained_tag():
    with pytest.raises(ModelLoadError) as excinfo:
        OpenClipEmbedder("ViT-B-32@laion2b_s34b_b80k")
    message = str(excinfo.value)
    assert "did you mean 'laion2b_s34b_b79k'" in message
    assert "available:" in message and "openai" in message


def test_arch_without_weights_is_refused():
    # open_clip would otherwise build a randomly initialised model without a word.
    with pytest.raises(ModelLoadError, match="needs pretrained weights.*laion2b_s34b_b79k"):
        OpenClipEmbedder("ViT-B-32")


def test_missing_open_clip_folder(tmp_path):
    for spec in (f"local-dir:{tmp_path / 'nope'}", str(tmp_path / "nope")):
        with pytest.raises(ModelLoadError, match="folder not found"):
            OpenClipEmbedder(spec)


def test_open_clip_folder_without_weights_or_config(tmp_path, clip_dir):
    shutil.copy(clip_dir / "open_clip_config.json", tmp_path / "open_clip_config.json")
    with pytest.raises(ModelLoadError, match="no weights"):
        OpenClipEmbedder(str(tmp_path))
    (tmp_path / "open_clip_config.json").unlink()
    shutil.copy(clip_dir / "open_clip_model.safetensors", tmp_path / "open_clip_model.safetensors")
    with pytest.raises(ModelLoadError, match="open_clip_config.json"):
        OpenClipEmbedder(str(tmp_path))


def test_open_clip_folder_with_bad_config(tmp_path, clip_dir):
    shutil.copy(clip_dir / "open_clip_model.safetensors", tmp_path / "open_clip_model.safetensors")
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"no": "model_cfg"}))
    with pytest.raises(ModelLoadError, match="could not load open_clip model"):
        OpenClipEmbedder(str(tmp_path))


# --- make_embedder -------------------------------------------------------------------------------

def test_make_embedder_needs_a_kind():
    with pytest.raises(InputError, match="needs a kind"):
        make_embedder("all-MiniLM-L6-v2")


def test_make_embedder_unknown_kind():
    with pytest.raises(InputError, match="did you mean 'open_clip'"):
        make_embedder("open-clip:ViT-B-32")


def test_normalize_keeps_zero_rows():
    out = normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


# --- packaged MiniLM -----------------------------------------------------------------------------

def test_minilm_text_vectors(minilm):
    assert minilm.id == "sentence-transformers:all-MiniLM-L6-v2"
    assert minilm.dim == 384
    assert not minilm.can_embed_images
    vectors = minilm.embed_texts(["what color is the bus?", "which colour is the bus?",
                                  "how many dogs are on the beach?"])
    assert_unit_rows(vectors, 3, 384)
    paraphrase, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert paraphrase > unrelated + 0.3
    np.testing.assert_allclose(minilm.embed_texts(["which colour is the bus?"])[0], vectors[1], atol=1e-5)
    assert minilm.embed_texts([]).shape == (0, 384)


def test_minilm_refuses_images(minilm):
    with pytest.raises(InputError, match="cannot embed images"):
        minilm.embed_images(IMAGES)


def test_sentence_transformers_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="folder not found"):
        SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))
