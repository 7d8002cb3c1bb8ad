"""IndexWriter: builds an index folder in batches and moves it into place atomically."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pica.errors import InputError
from pica.retrieval.index import (
    APPROXIMATE,
    EXAMPLES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SEARCH_FILE,
    load_faiss,
)
from pica.types import Example
from pica.util.fileio import atomic_write_text, fsync_dir, sha256_file


def check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse to write an index at ``out`` unless nothing is there, or ``overwrite`` is given and
    ``out`` is a pica index (its manifest says so) or an empty folder: a folder pica did not make
    is never replaced.

    Raises:
        InputError: ``out`` exists (without ``overwrite``), is a file, or is a folder that is not
            a pica index.
    """
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise InputError(f"{out} exists and is not a folder; choose another index folder")
    if not overwrite:
        raise InputError(f"index folder {out} already exists; pass --overwrite to replace it")
    if out.is_symlink() or not (_is_index(out) or not any(out.iterdir())):
        raise InputError(f"{out} is not a pica index (no {MANIFEST} of format '{FORMAT}'); it is"
                         " left as it is: --overwrite replaces only an index folder")


def _is_index(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


class IndexWriter:
    """Builds an index folder incrementally, so big datasets stream through in batches.

    Usage::

        with IndexWriter(out, embedder_id, {"question": 512, "image": 512}) as w:
            w.add(examples, {"question": q_vecs, "image": i_vecs})
        # the folder appears at `out` only when the block exits without error

    Args:
        out: Final folder path.
        embedder_id: Spec of the embedder that made the vectors.
        dims: kind -> vector dimension.
        overwrite: Replace an existing folder (else refuse).
        approximate: ``None`` (exact only), ``"hnsw"`` or ``"ivf"``.
        sources: Free-form provenance recorded in the manifest.
        embedder_digest: Content digest of the embedder's model files (``embedder_digest`` in the
            manifest), when known: another copy of the same files may then use the index.
    """

    def __init__(self, out: str | Path, embedder_id: str, dims: Mapping[str, int], *,
                 overwrite: bool = False, approximate: str | None = None,
                 sources: Mapping[str, Any] | None = None, embedder_digest: str | None = None) -> None:
        self.out = Path(out)
        check_replaceable(self.out, overwrite)
        self.overwrite = overwrite
        if approximate not in (None, *APPROXIMATE):
            raise InputError(f"--approximate must be one of {', '.join(APPROXIMATE)}")
        self.embedder_id = embedder_id
        self.embedder_digest = embedder_digest
        self.dims = dict(dims)
        self.approximate = approximate
        self.sources = dict(sources or {})
        faiss = load_faiss()
        self.vectors = {kind: faiss.IndexFlatIP(dim) for kind, dim in self.dims.items()}
        self.rows: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.started = time.time()

    def add(self, examples: Sequence[Example], vectors: Mapping[str, np.ndarray]) -> None:
        """Append a batch of examples and their vectors (one array per kind, same order).

        Raises:
            InputError: duplicate example ids, or vectors not matching the batch.
        """
        for kind, index in self.vectors.items():
            v = np.ascontiguousarray(vectors[kind], dtype=np.float32)
            if v.shape != (len(examples), index.d):
                raise InputError(
                    f"{kind} vectors have shape {v.shape}, expected ({len(examples)}, {index.d})")
            index.add(v)
        for ex in examples:
            if ex.id in self.ids:
                raise InputError(f"duplicate example id {ex.id}; example ids must be unique")
            self.ids.add(ex.id)
            self.rows.append({"id": ex.id, "question": ex.question, "answer": ex.answer,
                              "caption": ex.caption, "image_id": ex.image_id,
                              "answers": json.dumps(ex.answers, ensure_ascii=False),
                              "choices": json.dumps(list(ex.choices), ensure_ascii=False),
                              "correct_choice_idx": ex.correct_choice_idx,
                              "rationales": json.dumps(list(ex.rationales), ensure_ascii=False),
                              "meta": json.dumps(ex.meta, ensure_ascii=False)})

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()

    def finish(self) -> Path:
        """Write everything to a temp folder beside ``out`` and rename it into place."""
        import pandas as pd

        if not self.rows:
            raise InputError("no examples to index: the dataset is empty")
        faiss = load_faiss()
        check_replaceable(self.out, self.overwrite)  # again: the folder may have appeared meanwhile
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            frame = pd.DataFrame(self.rows, columns=["id", "question", "answer", "caption", "image_id",
                                                     "answers", "choices", "correct_choice_idx",
                                                     "rationales", "meta"])
            frame["correct_choice_idx"] = frame["correct_choice_idx"].astype("Int64")
            frame.to_parquet(tmp / EXAMPLES, index=False)
            kinds = {}
            for kind, index in self.vectors.items():
                faiss.write_index(index, str(tmp / f"{kind}.faiss"))
                kinds[kind] = {"dim": index.d, "file": f"{kind}.faiss"}
            search = {"type": "flat"}
            if self.approximate:
                search = self._write_approximate(tmp)
            files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "embedder": self.embedder_id,
                "kinds": kinds, "count": len(self.rows), "search": search,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "build_seconds": round(time.time() - self.started, 2),
                "sources": self.sources, "files": files,
            }
            if self.embedder_digest:
                manifest["embedder_digest"] = self.embedder_digest
            atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2) + "\n")
            fsync_dir(tmp)
            _swap_into_place(tmp, self.out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.out

    def _write_approximate(self, folder: Path) -> dict[str, Any]:
        faiss = load_faiss()
        parts = [index.reconstruct_n(0, index.ntotal) for index in self.vectors.values()]
        data = np.ascontiguousarray(np.concatenate(parts, axis=1))
        del parts
        dim = data.shape[1]
        if self.approximate == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.add(data)
            spec = {"type": "hnsw", "M": 32, "ef_construction": 80, "ef_search": 128}
        else:
            nlist = max(1, min(4096, int(np.sqrt(len(data)))))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = data[rng.choice(len(data), size=min(len(data), nlist * 64), replace=False)]
            index.train(sample)
            index.add(data)
            spec = {"type": "ivf", "nlist": nlist, "nprobe": max(1, nlist // 4)}
        faiss.write_index(index, str(folder / SEARCH_FILE))
        return spec


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed after."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
