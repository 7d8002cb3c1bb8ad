"""Build example indexes from datasets (``pica index build``) and from example files (starter).

Questions stream through in batches: images are loaded, captioned (when no captions file is
given) and embedded one batch at a time, so memory holds only the vectors, never all images.
Loader threads decode and preprocess the next batches while the models work on the current one
(:func:`pica.util.loading.prefetch_map`); ``workers=0`` loads each batch in turn, with the same result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pica.config import DEFAULT_BUILD_BATCH, DEFAULT_LOAD_WORKERS, IMAGE_EMBEDDER, TEXT_EMBEDDER
from pica.errors import InputError
from pica.retrieval.writer import IndexWriter
from pica.types import Example, Question
from pica.util.loading import prefetch_map
from pica.util.progress import progress_bar


def default_embedder(have_images: bool) -> str:
    """open_clip (image + question vectors) with images; the packaged text embedder without."""
    return IMAGE_EMBEDDER if have_images else TEXT_EMBEDDER


def vector_kinds(embedder) -> tuple[str, ...]:
    """Kinds an index gets: PICa's question + image with an image model, else question + caption."""
    return ("question", "image") if embedder.can_embed_images else ("question", "caption")


def build_index(
    out: str | Path,
    questions: Sequence[Question],
    *,
    captions: Mapping[str, str] | None = None,
    captioner: str | None = None,
    embedder: str | None = None,
    approximate: str | None = None,
    overwrite: bool = False,
    skip_missing: bool = False,
    batch_size: int = DEFAULT_BUILD_BATCH,
    workers: int = DEFAULT_LOAD_WORKERS,
    device: str = "auto",
    dtype: str = "auto",
    progress: bool = True,
    sources: Mapping[str, Any] | None = None,
    shard: tuple[int, int] | None = None,
    captioner_settings=None,
) -> Path:
    """Build an index folder from dataset questions (their answers become the examples').

    Args:
        out: Index folder to create.
        questions: Solved questions (with gold answers or labels).
        captions: Image id -> caption (a captions file); else images are captioned.
        captioner: Captioner model when captioning images (default BLIP base).
        embedder: Embedder spec; default open_clip with images, all-MiniLM-L6-v2 without.
        approximate: ``None`` (exact search), ``"hnsw"`` or ``"ivf"``.
        overwrite: Replace an existing folder.
        skip_missing: Leave out examples whose caption is missing instead of failing.
        batch_size: Examples per captioning / embedding batch.
        workers: Image loader threads working ahead of the models (0 = load each batch in turn).
        device: Where the captioner and open_clip run (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
        dtype: Their floating-point type (``auto`` = float16 on a GPU, float32 on the CPU).
        progress: Show a progress bar on stderr.
        sources: Provenance for the manifest.
        shard: ``(K, N)``: index only block K of N of the examples, cut between whole batches
            (:mod:`pica.util.shards`); ``pica index merge`` joins the N shards into the index a
            one-shot build with the same ``batch_size`` makes.
        captioner_settings: :class:`pica.config.Settings` describing the captioner (an API or
            GGUF captioner with its server, projector, image size); else ``captioner`` is built.

    Returns:
        The folder written.

    Raises:
        InputError: empty dataset, missing captions, images needed but absent, folder exists,
            a device torch cannot see.
    """
    from pica.datasets import example_answer
    from pica.datasets.captions import find_caption
    from pica.retrieval.embedders import make_embedder
    from pica.util.threads import bound_threads, cpu_budget

    bound_threads(cpu_budget())  # batch work: the cores this process is given, no more
    if not questions:
        raise InputError("the dataset is empty: no questions to index")
    # Every question has an image, or (ScienceQA) those without one come with their caption.
    have_images = any(q.has_image for q in questions) and all(
        q.has_image or q.caption is not None for q in questions)
    spec = embedder or default_embedder(have_images)
    if spec.startswith("open_clip:") and not have_images:
        raise InputError(f"embedder {spec} needs images; pass --images DIR or use a text embedder")
    if captions is None and not have_images and any(q.caption is None for q in questions):
        raise InputError("examples need captions: pass --captions FILE, or --images DIR to caption them")

    kept: list[tuple[Question, Example]] = []
    missing: list[str] = []
    unanswered = 0
    for q in questions:
        caption = q.caption
        if caption is None and captions is not None:
            caption = find_caption(captions, q.id, q.image_id)
            if caption is None:
                missing.append(q.image_id or q.id)
                continue
        answer, weights = example_answer(q)
        if not answer:
            unanswered += 1
            continue
        # caption None: made by the captioner below.
        kept.append((q, Example(id=q.id, question=q.question, answer=answer, caption=caption,
                                image_id=q.image_id, answers=weights, choices=tuple(q.choices),
                                correct_choice_idx=q.correct_choice_idx,
                                rationales=tuple(q.rationales), meta=dict(q.meta))))
    if missing and not skip_missing:
        first = ", ".join(list(dict.fromkeys(missing))[:3])
        raise InputError(
            f"captions missing for {len(missing)} of {len(questions)} questions (first image ids:"
            f" {first}); pass --skip-missing to leave them out"
        )
    if not kept:
        raise InputError("no examples left to index (no answers, or every caption missing)")

    if batch_size < 1 or workers < 0:
        raise InputError("--batch-size must be at least 1 and --workers at least 0")
    if shard is not None:
        from pica.util.shards import take_shard

        # Whole batches: every vector is computed in the batch a one-shot build computes it in.
        kept = take_shard(kept, shard, unit=batch_size)
        if not kept:
            raise InputError(f"shard {shard[0]}/{shard[1]} is empty: the dataset has fewer batches"
                             f" of {batch_size} than shards; use fewer shards or a smaller --batch-size")
        sources = {**(sources or {}), "shard": f"{shard[0]}/{shard[1]}", "batch_size": batch_size}
    emb = make_embedder(spec, device=device, dtype=dtype)
    kinds = vector_kinds(emb)
    # Refuse an existing folder before any slow work.
    writer = IndexWriter(out, emb.id, {k: emb.dim for k in kinds}, overwrite=overwrite,
                         approximate=approximate, embedder_digest=emb.content_digest(),
                         sources={**(sources or {}), "skipped_missing_captions": len(missing),
                                  "skipped_without_answer": unanswered})
    cap = None
    if any(ex.caption is None for _, ex in kept):
        from pica.caption import captioner_from_settings, make_captioner
        from pica.config import DEFAULT_CAPTIONER

        cap = (captioner_from_settings(captioner_settings) if captioner_settings is not None
               else make_captioner(captioner or DEFAULT_CAPTIONER, device=device, dtype=dtype))
    load = _image_loader(cap, emb if "image" in kinds else None)
    if not have_images or load is None:
        load, workers = (lambda item: (None, None)), 0
    with progress_bar(total=len(kept), desc="indexing", unit="ex", enabled=progress) as bar:
        for batch, loaded in prefetch_map(load, _batches(kept, batch_size), workers):
            qs = [q for q, _ in batch]
            examples = [ex for _, ex in batch]
            todo = [i for i, ex in enumerate(examples) if ex.caption is None]
            if cap is not None and todo:
                texts = cap.caption([qs[i] for i in todo], images=[loaded[i][0] for i in todo])
                for i, t in zip(todo, texts):
                    examples[i] = Example(**{**examples[i].__dict__, "caption": t})
            writer.add(examples, _vectors(emb, kinds, examples, [pixels for _, pixels in loaded],
                                          [q.search_text for q in qs]))
            bar.update(len(batch))
    return writer.finish()


def _image_loader(cap, emb):
    """Work of one loader thread per example: decode its image and preprocess it for the captioner
    and for the image embedder (``None`` where a stage needs no pixels); ``None`` if none does."""
    cap = cap if cap is not None and cap.reads_pixels else None
    if cap is None and emb is None:
        return None

    # Vision-language captioners take the file itself where they can (no decode + re-encode).
    from_file = getattr(cap, "image_url", None)

    def load(item):
        question = item[0]
        if not question.has_image:  # a ScienceQA problem without an image: its vector is zero
            return None, None
        decode = emb is not None or (cap is not None and from_file is None)
        image = question.load_image() if decode else None
        if cap is None:
            for_cap = None
        else:
            for_cap = from_file(question) if from_file is not None else cap.preprocess(image)
        return for_cap, emb.preprocess(image) if emb is not None else None

    return load


def _vectors(emb, kinds: Sequence[str], examples: Sequence[Example], images: Sequence,
             texts: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Vectors of a batch: ``question`` of ``texts`` (question + context) or the questions,
    ``image`` (zero for an example without an image), ``caption``."""
    questions = list(texts) if texts is not None else [ex.question for ex in examples]
    vectors = {"question": emb.embed_texts(questions)}
    if "image" in kinds:
        have = [i for i, pixels in enumerate(images) if pixels is not None]
        vectors["image"] = np.zeros((len(examples), emb.dim), dtype=np.float32)
        if have:
            vectors["image"][have] = emb.embed_images([images[i] for i in have])
    if "caption" in kinds:
        vectors["caption"] = emb.embed_texts([ex.caption for ex in examples])
    return vectors


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def read_examples_file(path: str | Path) -> list[Example]:
    """Read solved examples with inline captions from JSONL.

    Each line: ``{"id", "caption", "question", "answer", "answers"?: {answer: weight}}``.

    Raises:
        InputError: missing file, bad JSON (with line number), missing fields.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"examples file not found: {path}")
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            examples.append(Example(id=str(row["id"]), question=row["question"], answer=row["answer"],
                                    caption=row["caption"], image_id=row.get("image_id"),
                                    answers=row.get("answers") or {row["answer"]: 1.0}))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise InputError(f"{path}:{number}: not a valid example line ({type(e).__name__}: {e})") from e
    if not examples:
        raise InputError(f"examples file is empty: {path}")
    return examples


def build_from_examples_file(path: str | Path, out: str | Path, *, embedder: str | None = None,
                             overwrite: bool = False, approximate: str | None = None,
                             progress: bool = True) -> Path:
    """Build a text-vector index (question + caption) from an examples JSONL file."""
    from pica.retrieval.embedders import make_embedder

    examples = read_examples_file(path)
    emb = make_embedder(embedder or TEXT_EMBEDDER)
    kinds = ("question", "caption")
    writer = IndexWriter(out, emb.id, {k: emb.dim for k in kinds}, overwrite=overwrite,
                         approximate=approximate, sources={"examples": str(path)},
                         embedder_digest=emb.content_digest())
    with progress_bar(total=len(examples), desc="indexing", unit="ex", enabled=progress) as bar:
        for batch in _batches(examples, 256):
            writer.add(batch, _vectors(emb, kinds, batch, []))
            bar.update(len(batch))
    return writer.finish()


def build_starter(examples_file: Path, path: Path) -> None:
    """Build the starter index from ``examples_file`` into ``path`` (its first use)."""
    build_from_examples_file(examples_file, path, overwrite=True, progress=False)
