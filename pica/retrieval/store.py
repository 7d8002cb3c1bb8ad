"""Where indexes live: the index root (``./indexes`` or ``$PICA_INDEX_DIR``), names, the starter.

The starter index lives in the cache folder (``$PICA_CACHE`` or ``~/.cache/pica``), keyed by the
hash of ``pica/data/starter_examples.jsonl`` (examples written by this project) so edits rebuild
it. This module only finds indexes; whoever resolves ``starter`` passes the function that builds
it on first use (the pipeline passes :func:`pica.retrieval.build.build_from_examples_file`), so a
look-up never reaches into the build code by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pica.config import STARTER_INDEX, cache_dir, index_root
from pica.errors import IndexFormatError
from pica.retrieval.index import MANIFEST, read_manifest

# Package data, so a wheel carries it; the repository's data/ folder points here.
STARTER_FILE = Path(__file__).resolve().parents[1] / "data" / "starter_examples.jsonl"


def resolve_index(name: str | None,
                  build_starter: Callable[[Path, Path], None] | None = None) -> Path | None:
    """Turn an ``--index`` value into an index folder.

    ``None``/``"none"`` -> no index (zero-shot); ``"starter"`` -> the starter index (built with
    ``build_starter(examples_file, folder)`` when it is not there yet); an existing folder; or a
    name under :func:`index_root`.

    Raises:
        IndexFormatError: nothing found under that name; the starter index is not built and no
            ``build_starter`` was given.
    """
    if name is None or name.lower() == "none":
        return None
    if name == STARTER_INDEX:
        return starter_index(build_starter)
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


def starter_path() -> Path:
    """Where the starter index of the installed starter examples lives (built or not)."""
    from pica.util.fileio import sha256_file

    if not STARTER_FILE.is_file():
        raise IndexFormatError(f"starter examples missing: {STARTER_FILE}; reinstall pica")
    return cache_dir() / "indexes" / f"starter-{sha256_file(STARTER_FILE)[:12]}"


def starter_index(build: Callable[[Path, Path], None] | None = None) -> Path:
    """The starter index folder, built with ``build(examples_file, folder)`` when missing.

    Raises:
        IndexFormatError: it is missing and there is no ``build``.
    """
    path = starter_path()
    if not (path / MANIFEST).is_file():
        if build is None:
            raise IndexFormatError(f"the starter index is not built yet ({path}); answer a question"
                                   " with --index starter once to build it")
        build(STARTER_FILE, path)
    return path


def index_summary(folder: Path, name: str | None = None) -> dict[str, Any]:
    """The manifest summary of one index folder (``name``, ``path``, ``count``, ``embedder``,
    ``kinds``, ``search``, ``error``); a bad folder gets its error instead of raising."""
    row = {"name": name or folder.name, "path": str(folder)}
    try:
        m = read_manifest(folder)
        return {**row, "count": m["count"], "embedder": m["embedder"], "kinds": ",".join(m["kinds"]),
                "search": m.get("search", {}).get("type", "flat"), "error": ""}
    except IndexFormatError as e:
        return {**row, "count": None, "embedder": "", "kinds": "", "search": "", "error": str(e)}


def list_indexes(root: Path | None = None) -> list[dict[str, Any]]:
    """Manifest summaries of the index folders under ``root`` (bad folders reported as such)."""
    root = root or index_root()
    if not root.is_dir():
        return []
    return [index_summary(folder)
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))]


# What eval's first lines, summary.json and the report say when the examples are the starter set.
STARTER_WARNING = ("starter examples ({count}, hand-written): not comparable to published numbers;"
                   " build an index from the training split (pica index build)")


def describe_examples(setting: str | None, folder: Path | None, count: int | None) -> dict[str, Any]:
    """The example pool of a run, as ``summary.json``'s ``examples`` and eval's first line say it.

    Args:
        setting: The ``--index`` value (``starter``, a folder, a name, ``none``).
        folder: The index folder it resolved to (``None``: zero-shot).
        count: The examples it holds.

    Returns:
        ``{"index", "path", "count", "starter", "line"}``: ``index`` the folder's name (``starter``
        for the starter set, ``None`` zero-shot), ``starter`` whether it is the 96 hand-written
        examples, ``line`` one sentence naming it (with the warning for the starter set).
    """
    if folder is None:
        return {"index": None, "path": None, "count": 0, "starter": False,
                "line": "examples: none (zero-shot: --index none)"}
    starter = setting == STARTER_INDEX or folder.resolve() == starter_path().resolve()
    name = STARTER_INDEX if starter else folder.name
    line = (STARTER_WARNING.format(count=count) if starter
            else f"examples: index {name} ({count:,} examples, {folder})")
    return {"index": name, "path": str(folder), "count": count, "starter": starter,
            "line": ("examples: " + line) if starter else line}
