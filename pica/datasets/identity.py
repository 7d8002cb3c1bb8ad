"""What identifies a question source in run folders and index manifests: its content.

:func:`dataset_identity` records each given source's path (for display) and, under ``content``,
a digest of what it reads: ``sha256:<hex>`` of a file (dataset, questions, annotations, A-OKVQA,
captions, a local HF data file), ``tree:<hex>`` of a folder (an HF ``save_to_disk`` folder: the
names and sizes of its files and the text of its small JSON files, which hold the dataset's
fingerprint; an images folder: the names and sizes of its files). A hub dataset name has no local
content; its name and split identify it.

:func:`identity_key` is what two identities are compared by: the digests where there are digests,
never the path text, so the same file under another path matches and other content under the same
path does not. An identity without ``content`` (run folders of older pica versions) compares by
its path text, as those versions did.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from pica.util.fileio import sha256_file

CONTENT = "content"
# Files of a dataset folder whose text is part of its digest (HF's state.json holds the fingerprint).
_SMALL_JSON = 64 * 1024


def dataset_identity(*, split: str | None = None, images_dir: str | Path | None = None,
                     captions: str | Path | None = None, **sources: str | Path | None) -> dict[str, Any]:
    """The identity of a question source: given paths as text plus their content digests.

    Args:
        sources: The registered sources' keywords as given (``dataset``, ``questions``,
            ``annotations``, ``aokvqa``, ``hf_dataset`` ...; :data:`pica.registry.datasets`).
        split: The split, recorded by the sources that read one (an HF dataset).
        images_dir: Folder of the dataset's images.
        captions: The captions file.

    Returns:
        ``{"dataset": "runs/q.json", ..., "content": {"dataset": "sha256:...", ...}}``; a
        source that is not a local file or folder (a hub name) has no ``content`` entry.
    """
    from pica.registry import datasets

    kinds = [datasets.get(name) for name in datasets.names()]
    fields = list(dict.fromkeys(f for cls in kinds for f in cls.fields))
    unknown = set(sources) - set(fields)
    if unknown:
        raise TypeError(f"dataset_identity() got unknown source keywords: {', '.join(sorted(unknown))}")
    given = {**{f: sources.get(f) for f in fields}, "captions": captions, "images": images_dir}
    identity: dict[str, Any] = {k: str(v) for k, v in given.items() if v}
    for cls in kinds:
        if sources.get(cls.fields[0]):
            identity.update(cls.identity(sources, split))
    content = {}
    for key, value in given.items():
        digest = content_digest(Path(value).expanduser(), images=key == "images") if value else None
        if digest:
            content[key] = digest
    identity[CONTENT] = content
    return identity


def content_digest(path: Path, images: bool = False) -> str | None:
    """``sha256:<hex>`` of a file, ``tree:<hex>`` of a folder, ``None`` when ``path`` is neither.

    A folder's digest covers the relative names and sizes of its files (and, unless ``images``,
    the bytes of its JSON files up to 64 kB): cheap for a folder of photos or of Arrow shards.
    """
    if path.is_file():
        return "sha256:" + sha256_file(path)
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            file = Path(root) / name
            size = file.stat().st_size
            digest.update(f"{file.relative_to(path).as_posix()}\0{size}\0".encode())
            if not images and name.endswith(".json") and size <= _SMALL_JSON:
                digest.update(file.read_bytes())
    return "tree:" + digest.hexdigest()


def identity_key(identity: dict[str, Any]) -> dict[str, Any]:
    """What two identities are compared by: each source's digest where it has one, else its text."""
    content = identity.get(CONTENT)
    if not isinstance(content, dict):
        return dict(identity)
    return {k: content.get(k, v) for k, v in identity.items() if k != CONTENT}


def describe(identity: dict[str, Any]) -> str:
    """``dataset q.json (sha256 1a2b3c4d5e6f)``: each source's path and a short digest."""
    content = identity.get(CONTENT) if isinstance(identity.get(CONTENT), dict) else {}
    parts = []
    for key, value in identity.items():
        if key == CONTENT:
            continue
        digest = content.get(key)
        short = f" ({digest.split(':')[0]} {digest.split(':')[-1][:12]})" if digest else ""
        parts.append(f"{key} {value}{short}")
    return ", ".join(parts) or "no source"
