"""ExampleIndex: solved examples plus FAISS vectors, saved as a self-describing folder.

Folder layout (``FORMAT_VERSION`` 1)::

    manifest.json      format version, embedder id (and embedder_digest: sha256 over its model
                       files, when known), vector kinds and dims, count, search type,
                       sources, build time, sha256 of every file
    examples.parquet   id, question, answer, caption, image_id, answers (JSON {answer: weight}),
                       choices, correct_choice_idx, rationales (A-OKVQA; JSON list, int or null,
                       JSON list; absent in indexes built before they existed), meta (JSON
                       object of dataset-specific fields: ScienceQA's hint, lecture, solution...)
    <kind>.faiss       one exact IndexFlatIP per vector kind (question, image or caption)
    search.faiss       optional approximate index (HNSW or IVF) over the concatenated kinds

Scores are sums of cosines over kinds (PICa: question similarity + image similarity), each kind
optionally weighted. Because every stored vector is unit length, the weighted sum is one inner
product between ``concat(w_k * q_k)`` and ``concat(x_k)``, so a single FAISS search is exact.
Folders are written under a temporary name and renamed into place; nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pica.errors import IndexFormatError
from pica.types import Example, normalize_image_id
from pica.util.fileio import sha256_file

FORMAT = "pica-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EXAMPLES = "examples.parquet"
SEARCH_FILE = "search.faiss"
APPROXIMATE = ("hnsw", "ivf")


@dataclass(frozen=True)
class Hit:
    """One retrieved example: its row in the index and its similarity score."""

    row: int
    score: float


def load_faiss():
    import faiss

    return faiss


class ExampleIndex:
    """Examples with their vectors; answers nearest-neighbour queries.

    Build with :class:`IndexWriter`, open with :meth:`load`.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], examples, vectors: dict[str, Any],
                 search=None) -> None:
        self.path = path
        self.manifest = manifest
        self.examples = examples  # pandas DataFrame, one row per example
        self.vectors = vectors  # kind -> faiss.IndexFlatIP
        self.search_index = search
        self._combined: dict[tuple[str, ...], Any] = {}
        self._cache: dict[int, Example] = {}
        self._blocks: dict[int, dict[str, list]] = {}
        self._rows_by_image: dict[str, list[int]] | None = None
        self._rows_by_id: dict[str, int] | None = None

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> ExampleIndex:
        """Open an index folder and check it against its manifest.

        Args:
            path: The index folder.
            verify: Check the sha256 of every file (slower for big indexes).

        Raises:
            IndexFormatError: missing folder or files, unknown format version, corrupt files.
        """
        import pandas as pd

        path = Path(path)
        if not path.is_dir():
            raise IndexFormatError(f"index folder not found: {path}")
        manifest = read_manifest(path)
        files = manifest.get("files", {})
        for name, digest in files.items():
            file = path / name
            if not file.is_file():
                raise IndexFormatError(f"index {path} is incomplete: {name} is missing")
            if verify and sha256_file(file) != digest:
                raise IndexFormatError(f"index {path} is corrupt: {name} does not match its sha256")
        faiss = load_faiss()
        try:
            examples = pd.read_parquet(path / EXAMPLES)
            vectors = {kind: faiss.read_index(str(path / spec["file"]))
                       for kind, spec in manifest["kinds"].items()}
            search = None
            if manifest.get("search", {}).get("type", "flat") != "flat":
                search = faiss.read_index(str(path / SEARCH_FILE))
                if "ef_search" in manifest["search"]:
                    search.hnsw.efSearch = int(manifest["search"]["ef_search"])
                if "nprobe" in manifest["search"]:
                    search.nprobe = int(manifest["search"]["nprobe"])
        except (OSError, RuntimeError, KeyError, ValueError) as e:
            raise IndexFormatError(f"index {path} cannot be read: {type(e).__name__}: {e}") from e
        count = manifest["count"]
        if len(examples) != count or any(v.ntotal != count for v in vectors.values()):
            raise IndexFormatError(f"index {path} is inconsistent: manifest says {count} examples")
        return cls(path, manifest, examples, vectors, search)

    # -- facts ---------------------------------------------------------------------------------
    @property
    def embedder_id(self) -> str:
        """The embedder spec the vectors were made with."""
        return self.manifest["embedder"]

    @property
    def embedder_digest(self) -> str | None:
        """Content digest of the embedder's model files (``None`` for indexes built before pica
        recorded it, or by an embedder loaded by hub id)."""
        return self.manifest.get("embedder_digest")

    @property
    def kinds(self) -> list[str]:
        """Vector kinds in this index, e.g. ``["question", "image"]``."""
        return list(self.manifest["kinds"])

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def check_embedder(self, embedder_id: str, digest: Callable[[], str | None] | None = None) -> None:
        """Raise ``IndexFormatError`` naming both embedders when they differ.

        Args:
            embedder_id: The spec of the embedder in use.
            digest: Returns its content digest (called only when the specs differ): the same
                model files under another name (a folder, the packaged copy, the hub cache) match.
        """
        if embedder_id == self.embedder_id:
            return
        if not (self.embedder_digest and digest and digest() == self.embedder_digest):
            raise IndexFormatError(
                f"index {self.path} was built with embedder '{self.embedder_id}' but"
                f" '{embedder_id}' is in use; rebuild the index or use the matching embedder"
            )

    def example(self, row: int) -> Example:
        """The example stored at ``row``."""
        if row not in self._cache:
            block, offset = divmod(row, 1024)  # read 1024 rows a column at a time: iloc[row] is ~0.5 ms
            if block not in self._blocks:
                part = self.examples.iloc[block * 1024:(block + 1) * 1024]
                self._blocks[block] = {c: part[c].tolist() for c in part.columns}
            r = {c: values[offset] for c, values in self._blocks[block].items()}
            self._cache[row] = Example(
                id=str(r["id"]), question=r["question"], answer=r["answer"], caption=r["caption"],
                image_id=None if r["image_id"] is None else str(r["image_id"]),
                answers=json.loads(r["answers"]) if r["answers"] else {},
                choices=tuple(json.loads(r.get("choices") or "[]")),
                correct_choice_idx=_optional_int(r.get("correct_choice_idx")),
                rationales=tuple(json.loads(r.get("rationales") or "[]")),
                meta=json.loads(r.get("meta") or "{}"),
            )
        return self._cache[row]

    def row_vectors(self, kind: str, rows: Sequence[int]) -> np.ndarray:
        """Stored vectors of ``kind`` for ``rows``."""
        index = self.vectors[kind]
        return np.stack([index.reconstruct(int(r)) for r in rows]) if len(rows) else \
            np.zeros((0, index.d), dtype=np.float32)

    # -- search --------------------------------------------------------------------------------
    def nearest(
        self,
        queries: Mapping[str, np.ndarray],
        k: int,
        weights: Mapping[str, float] | None = None,
        exclude: Sequence[Iterable[int]] | None = None,
        exclude_images: Sequence[str | None] | None = None,
    ) -> list[list[Hit]]:
        """The ``k`` most similar examples for each query.

        Args:
            queries: kind -> ``(n, dim)`` unit vectors; every kind must exist in the index.
            k: Number of neighbours per query.
            weights: kind -> weight of its cosine in the summed score (default 1 each).
            exclude: Per query, rows never to return.
            exclude_images: Per query, an image id whose examples are never returned (the query's
                own picture, so a photo that is also in the index cannot leak its answer).

        Returns:
            Per query, up to ``k`` hits, most similar first.
        """
        kinds = tuple(kind for kind in self.kinds if kind in queries)
        missing = set(queries) - set(self.kinds)
        if missing or not kinds:
            raise IndexFormatError(
                f"index {self.path} has vector kinds {self.kinds}; cannot search by"
                f" {sorted(missing) or 'nothing'}"
            )
        weights = weights or {}
        n = len(next(iter(queries.values())))
        exclude = [list(rows) for rows in exclude] if exclude else [[] for _ in range(n)]
        if exclude_images:
            for rows, image_id in zip(exclude, exclude_images):
                rows.extend(self.rows_of_image(image_id))
        query = np.concatenate(
            [np.asarray(queries[kind], dtype=np.float32) * float(weights.get(kind, 1.0))
             for kind in kinds], axis=1)
        extra = max((len(e) for e in exclude), default=0)
        want = min(k + extra, len(self))
        if want <= 0:
            return [[] for _ in range(n)]
        index = self.search_index if (self.search_index is not None and kinds == tuple(self.kinds)) \
            else self.flat_index(kinds)
        scores, rows = index.search(np.ascontiguousarray(query), want)
        results = []
        for i in range(n):
            banned = set(exclude[i])
            hits = [Hit(int(r), float(s)) for r, s in zip(rows[i], scores[i])
                    if r >= 0 and int(r) not in banned]
            results.append(hits[:k])
        return results

    def rows_of_image(self, image_id: str | None) -> list[int]:
        """Rows of the examples made from image ``image_id`` (none for ``None``)."""
        if image_id is None:
            return []
        if self._rows_by_image is None:
            rows: dict[str, list[int]] = {}
            for row, value in enumerate(self.examples["image_id"]):
                if value is not None:  # normalized again: indexes built before "a.jpg" -> "a"
                    rows.setdefault(normalize_image_id(value), []).append(row)
            self._rows_by_image = rows
        return self._rows_by_image.get(normalize_image_id(image_id), [])

    def row_of_id(self, example_id: str) -> int | None:
        """Row of the example with id ``example_id`` (a question id), ``None`` if absent."""
        if self._rows_by_id is None:
            self._rows_by_id = {str(v): row for row, v in enumerate(self.examples["id"])}
        return self._rows_by_id.get(str(example_id))

    def flat_index(self, kinds: tuple[str, ...]):
        """The exact FAISS inner-product index over the concatenated vectors of ``kinds``."""
        if len(kinds) == 1:
            return self.vectors[kinds[0]]
        if kinds not in self._combined:
            faiss = load_faiss()
            parts = [self.vectors[k].reconstruct_n(0, len(self)) for k in kinds]
            combined = faiss.IndexFlatIP(sum(p.shape[1] for p in parts))
            combined.add(np.ascontiguousarray(np.concatenate(parts, axis=1)))
            self._combined[kinds] = combined
        return self._combined[kinds]

    def random(self, k: int, seed: int) -> list[Hit]:
        """``k`` examples drawn uniformly without replacement (reproducible per ``seed``)."""
        rng = np.random.default_rng(seed)
        rows = rng.choice(len(self), size=min(k, len(self)), replace=False)
        return [Hit(int(r), 0.0) for r in rows]


def _optional_int(value: Any) -> int | None:
    """An integer cell that may be missing (``None``, NaN or pandas' NA)."""
    if value is None or type(value).__name__ == "NAType" or value != value:
        return None
    return int(value)


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and validate ``manifest.json`` of an index folder.

    Raises:
        IndexFormatError: missing, not JSON, or not a pica index of a known version.
    """
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise IndexFormatError(f"{path} is not a pica index: {MANIFEST} is missing")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"index {path} has a corrupt {MANIFEST}: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{path} is not a pica index ({MANIFEST} lacks format '{FORMAT}')")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(
            f"index {path} has format version {manifest.get('format_version')}; this pica reads"
            f" version {FORMAT_VERSION}; rebuild it with `pica index build`"
        )
    for key in ("embedder", "kinds", "count"):
        if key not in manifest:
            raise IndexFormatError(f"index {path} has an incomplete {MANIFEST}: no '{key}'")
    return manifest
