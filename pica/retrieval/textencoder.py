"""A NumPy inference engine for BERT-style sentence encoders (all-MiniLM-L6-v2 and kin).

sentence-transformers needs torch, and importing the CUDA build of torch alone costs ~600 MB of
resident memory and seconds of start-up. For a plain BERT encoder with mean or CLS pooling (the
packaged all-MiniLM-L6-v2 is one) this module computes the same vectors with NumPy, the
``tokenizers`` library and ``safetensors`` — no torch. Anything it does not support makes
:func:`supports` return False and the caller falls back to sentence-transformers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FILES = ("config.json", "model.safetensors", "tokenizer.json")


def supports(folder: str | Path) -> bool:
    """Whether ``folder`` holds a sentence encoder this engine runs exactly."""
    folder = Path(folder)
    if not all((folder / name).is_file() for name in FILES):
        return False
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8")) \
            if (folder / "modules.json").is_file() else []
    except (OSError, json.JSONDecodeError):
        return False
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    return (
        config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and set(kinds) <= {"Transformer", "Pooling", "Normalize"}
        and _pooling(folder) in ("mean", "cls")
    )


def _pooling(folder: Path) -> str | None:
    config_file = folder / "1_Pooling" / "config.json"
    if not config_file.is_file():
        return "mean"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
    return {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}.get(modes[0]) \
        if len(modes) == 1 else None


class NumpyBertEncoder:
    """Encode texts with a BERT sentence encoder in NumPy (float32).

    Args:
        folder: A sentence-transformers model folder (see :func:`supports`).
        max_length: Token limit per text (sentence-transformers' ``max_seq_length``).
    """

    def __init__(self, folder: str | Path, max_length: int | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        st_config = folder / "sentence_bert_config.json"
        if max_length is None and st_config.is_file():
            max_length = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        self.max_length = int(max_length or self.config.get("max_position_embeddings", 512))
        self.pooling = _pooling(folder)
        self.normalize = (folder / "modules.json").is_file() and "Normalize" in \
            (folder / "modules.json").read_text(encoding="utf-8")
        weights = load_file(str(folder / "model.safetensors"))
        prefix = "bert." if any(k.startswith("bert.") for k in weights) else ""
        self.w = {k.removeprefix(prefix): v.astype(np.float32) for k, v in weights.items()
                  if v.dtype != np.int64}
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.heads = int(self.config["num_attention_heads"])
        self.layers = int(self.config["num_hidden_layers"])
        self.eps = float(self.config.get("layer_norm_eps", 1e-12))
        self.dim = int(self.config["hidden_size"])

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Return ``(len(texts), dim)`` sentence vectors (unit length when the model normalizes)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sort by length so each batch pads little; restore the order on the way out.
        encodings = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self._forward([encodings[i] for i in rows])
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _forward(self, encodings) -> np.ndarray:
        w = self.w
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), length), dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.float32)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1.0
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length][None]
             + w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = self._norm(x, "embeddings.LayerNorm")
        bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e9)
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            x = self._norm(x + self._attention(x, bias, p), p + "attention.output.LayerNorm")
            hidden = _gelu(self._dense(x, p + "intermediate.dense"))
            x = self._norm(x + self._dense(hidden, p + "output.dense"), p + "output.LayerNorm")
        if self.pooling == "cls":
            return x[:, 0]
        return (x * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)

    def _attention(self, x: np.ndarray, bias: np.ndarray, p: str) -> np.ndarray:
        batch, length, dim = x.shape
        head = dim // self.heads

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

        q = split(self._dense(x, p + "attention.self.query"))
        k = split(self._dense(x, p + "attention.self.key"))
        v = split(self._dense(x, p + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(head)) + bias
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, dim)
        return self._dense(context, p + "attention.output.dense")

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        # One 2-D product: NumPy hands it to BLAS (stacked 3-D products are far slower).
        weight = self.w[name + ".weight"]
        out = x.reshape(-1, x.shape[-1]) @ weight.T + self.w[name + ".bias"]
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[name + ".weight"] + self.w[name + ".bias"]


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU."""
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.float32(math.sqrt(2.0))))
