"""Where indexes live: the index root (``./indexes`` or ``$PICA_INDEX_DIR``), names, the starter.

The starter index is built on first use from ``pica/data/starter_examples.jsonl`` (examples written by
this project) with the packaged all-MiniLM-L6-v2 text embedder, into the cache folder
(``$PICA_CACHE`` or ``~/.cache/pica``), keyed by the file's hash so edits rebuild it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pica.config import STARTER_INDEX, cache_dir, index_root
from pica.errors import IndexFormatError
from pica.index import MANIFEST, read_manifest

# Package data, so a wheel carries it; the repository's data/ folder points here.
STARTER_FILE = Path(__file__).resolve().parent / "data" / "starter_examples.jsonl"


def resolve_index(name: str | None) -> Path | None:
    """Turn an ``--index`` value into an index folder.

    ``None``/``"none"`` -> no index (zero-shot); ``"starter"`` -> the starter index (built on first
    use); an existing folder; or a name under :func:`index_root`.

    Raises:
        IndexFormatError: nothing found under that name.
    """
    if name is None or name.lower() == "none":
        return None
    if name == STARTER_INDEX:
        return starter_index()
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    under_root = index_root() / name
    if under_root.is_dir():
        return under_root
    raise IndexFormatError(
        f"index not found: {name} (looked for the folder and {under_root});"
        " build one with `pica index build` or see `pica index list`"
    )


def starter_index() -> Path:
    """The starter index folder, building it on first use."""
    from pica.fileio import sha256_file

    if not STARTER_FILE.is_file():
        raise IndexFormatError(f"starter examples missing: {STARTER_FILE}; reinstall pica")
    path = cache_dir() / "indexes" / f"starter-{sha256_file(STARTER_FILE)[:12]}"
    if not (path / MANIFEST).is_file():
        from pica.index_build import build_from_examples_file

        build_from_examples_file(STARTER_FILE, path, overwrite=True, progress=False)
    return path


def list_indexes(root: Path | None = None) -> list[dict[str, Any]]:
    """Manifest summaries of the index folders under ``root`` (bad folders reported as such)."""
    root = root or index_root()
    rows = []
    if not root.is_dir():
        return rows
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            m = read_manifest(folder)
            rows.append({"name": folder.name, "path": str(folder), "count": m["count"],
                         "embedder": m["embedder"], "kinds": ",".join(m["kinds"]),
                         "search": m.get("search", {}).get("type", "flat"), "error": ""})
        except IndexFormatError as e:
            rows.append({"name": folder.name, "path": str(folder), "count": None,
                         "embedder": "", "kinds": "", "search": "", "error": str(e)})
    return rows
