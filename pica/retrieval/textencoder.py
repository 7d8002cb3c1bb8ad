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
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pica.util.threads import bound, bound_threads

FILES = ("config.json", "model.safetensors", "tokenizer.json")
# Texts whose vectors an encoder keeps (LRU; 4096 x 384 float32 = 6 MB): a run's repeated
# questions and captions (several questions per image) are encoded once.
CACHE_TEXTS = 4096


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
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._fuse()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Return ``(len(texts), dim)`` sentence vectors (unit length when the model normalizes).

        A text is encoded once per encoder: repeated texts (within the call, or seen by one of
        the last :data:`CACHE_TEXTS` calls' texts) come from an LRU cache keyed by the text.
        ``batch_size`` texts (sorted by length) share one forward pass.
        """
        if bound() is None:  # never unbounded: one thread unless a command chose (pica.util.threads)
            bound_threads(1)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, text in enumerate(texts):
                vector = self._cache.get(text)
                if vector is None:
                    todo.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = vector
        if not todo:
            return out
        new = list(todo)
        encodings = self.tokenizer.encode_batch(new)
        # Sort by length so each batch pads little in attention; the order is restored on the way out.
        order = sorted(range(len(new)), key=lambda i: len(encodings[i].ids))
        vectors = np.empty((len(new), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            vectors[rows] = self._forward([encodings[i].ids for i in rows])
        if self.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        with self._lock:
            for text, vector in zip(new, vectors):
                out[todo[text]] = vector
                self._cache[text] = vector
            while len(self._cache) > CACHE_TEXTS:
                self._cache.popitem(last=False)
        return out

    def _fuse(self) -> None:
        """Per layer, the weights as the forward pass uses them: one fused, pre-transposed QKV
        matrix (the query's 1/sqrt(head) folded in), and every other matrix pre-transposed,
        contiguous, so each dense layer is one plain ``(tokens, in) @ (in, out)`` product."""
        w, head = self.w, self.dim // self.heads
        scale = np.float32(1.0 / math.sqrt(head))

        def t(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[name + ".weight"].T)

        self._layers = []
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            a = p + "attention.self."
            qkv = np.concatenate([w[a + "query.weight"] * scale, w[a + "key.weight"], w[a + "value.weight"]])
            qkv_bias = np.concatenate([w[a + "query.bias"] * scale, w[a + "key.bias"], w[a + "value.bias"]])
            self._layers.append((
                np.ascontiguousarray(qkv.T), qkv_bias,
                t(p + "attention.output.dense"), w[p + "attention.output.dense.bias"],
                w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                t(p + "intermediate.dense"), w[p + "intermediate.dense.bias"],
                t(p + "output.dense"), w[p + "output.dense.bias"],
                w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]))

    def _forward(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Pooled vectors of one batch of token id lists.

        The dense layers (all but a few percent of the FLOPs) run on the batch's tokens packed
        together (no padding); only attention pads each text to the batch's longest.
        """
        w, eps = self.w, self.eps
        lengths = np.array([len(i) for i in ids])
        batch, length, dim = len(ids), int(lengths.max()), self.dim
        heads, head = self.heads, dim // self.heads
        tokens = np.concatenate([np.asarray(i, dtype=np.int64) for i in ids])
        positions = np.concatenate([np.arange(n) for n in lengths])
        # Row of each packed token in the padded (batch * length) layout.
        padded_rows = np.repeat(np.arange(batch) * length, lengths) + positions
        x = w["embeddings.word_embeddings.weight"][tokens]
        x += w["embeddings.position_embeddings.weight"][positions]
        x += w["embeddings.token_type_embeddings.weight"][0]
        _norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        mask = np.arange(length)[None, :] < lengths[:, None]
        bias = np.where(mask, np.float32(0), np.float32(-1e9)).astype(np.float32)[:, None, None, :]
        padded = np.zeros((batch * length, 3 * dim), dtype=np.float32)
        for (qkv_w, qkv_b, o_w, o_b, ln1_g, ln1_b, i_w, i_b, f_w, f_b, ln2_g, ln2_b) in self._layers:
            qkv = x @ qkv_w
            qkv += qkv_b
            padded[padded_rows] = qkv
            split = padded.reshape(batch, length, 3, heads, head)
            q = split[:, :, 0].transpose(0, 2, 1, 3)
            k = split[:, :, 1].transpose(0, 2, 3, 1)
            v = split[:, :, 2].transpose(0, 2, 1, 3)
            scores = q @ k
            scores += bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * length, dim)[padded_rows]
            h = context @ o_w
            h += o_b
            h += x
            x = _norm(h, ln1_g, ln1_b, eps)
            hidden = x @ i_w
            hidden += i_b
            _gelu(hidden)
            h = hidden @ f_w
            h += f_b
            h += x
            x = _norm(h, ln2_g, ln2_b, eps)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        if self.pooling == "cls":
            return x[starts]
        return np.add.reduceat(x, starts, axis=0) / lengths[:, None].astype(np.float32)


def _norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis of a 2-D ``x``, in place; returns ``x``."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)
    var /= np.float32(x.shape[-1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var[:, None]
    x *= weight
    x += bias
    return x


# erf(z) = z P(z^2) / Q(z^2) on [-4, 4] (erf(+-4) is +-1 in float32): the float32 rational
# approximation of Eigen and XLA, within 5e-7 of the exact erf. scipy.special.erf takes ~30 ns per
# float32 element (a scalar double routine) and was a quarter of the encoder's time; these
# vectorized passes take ~3. GELU(x) = x (1/2 + 1/2 erf(x / sqrt 2)), so with u = x^2 the
# coefficients below fold in the 1/sqrt 2 and the 1/2: 1/2 erf(x / sqrt 2) = x P'(u) / Q'(u).
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)
_GELU_P = tuple(np.float32(c * 0.5 / math.sqrt(2.0) / 2.0 ** (len(_ERF_P) - 1 - i))
                for i, c in enumerate(_ERF_P))
_GELU_Q = tuple(np.float32(c / 2.0 ** (len(_ERF_Q) - 1 - i)) for i, c in enumerate(_ERF_Q))
_GELU_CLIP = np.float32(4.0 * math.sqrt(2.0))
_GELU_ROWS = 32  # rows per block: the passes over a block stay in the core's L2 cache


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU of a 2-D ``x``, in place, in blocks of rows; returns ``x``."""
    rows = min(_GELU_ROWS, x.shape[0])
    c, u, p, q = (np.empty((rows, x.shape[1]), dtype=np.float32) for _ in range(4))
    for start in range(0, x.shape[0], rows):
        block = x[start:start + rows]
        n = block.shape[0]
        cb, ub, pb, qb = c[:n], u[:n], p[:n], q[:n]
        np.clip(block, -_GELU_CLIP, _GELU_CLIP, out=cb)
        np.multiply(cb, cb, out=ub)
        np.multiply(ub, _GELU_P[0], out=pb)  # Horner: ((P0 u + P1) u + P2) ...
        pb += _GELU_P[1]
        for coefficient in _GELU_P[2:]:
            pb *= ub
            pb += coefficient
        pb *= cb
        np.multiply(ub, _GELU_Q[0], out=qb)
        qb += _GELU_Q[1]
        for coefficient in _GELU_Q[2:]:
            qb *= ub
            qb += coefficient
        pb /= qb
        pb += np.float32(0.5)
        block *= pb
    return x
