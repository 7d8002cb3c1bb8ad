"""``pica index calibrate``: fit the learned chooser on an index's own examples.

Each sampled example is asked as a question against its own index, leave-one-image-out: its
prompt examples and its candidate neighbours never come from its own image, and answer
frequencies leave that image's examples out. A held-back share of the sampled images reports
greedy vs chooser accuracy for a chooser fitted without them; the saved chooser is then refitted
on every sampled question, and its verdict (:func:`pica.choice.trust.judge`: is the held-back
paired gain clearly positive?) decides whether ``--choose auto`` uses it. The file is written
atomically to ``INDEX/choosers/<key>.json``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pica.answers import normalize_answer
from pica.choice.chooser import Chooser, check_model, chooser_path, fit
from pica.choice.trust import judge
from pica.config import DEFAULT_CALIBRATION_QUESTIONS
from pica.errors import InputError
from pica.types import Example, Question
from pica.util.fileio import atomic_write_text
from pica.util.progress import progress_bar

DEFAULT_HELDOUT = 0.25


def target(answer: str, weights: Mapping[str, float]) -> float:
    """VQA score of ``answer`` against an example's answer weights: soft labels (all <= 1) are the
    score itself; human answer counts give the official leave-one-out accuracy."""
    norm = {}
    for a, w in weights.items():
        key = normalize_answer(a)
        norm[key] = norm.get(key, 0.0) + float(w)
    if not norm:
        return 0.0
    if max(norm.values()) <= 1.0:
        return min(1.0, norm.get(answer, 0.0))
    n, c = sum(norm.values()), norm.get(answer, 0.0)
    return (c * min(1.0, (c - 1) / 3) + (n - c) * min(1.0, c / 3)) / n


def as_question(ex: Example) -> Question:
    """An index example asked as a question, with its own caption and answers."""
    return Question(id=ex.id, question=ex.question, image_id=ex.image_id, caption=ex.caption,
                    label=dict(ex.answers or {ex.answer: 1.0}))


def sample(pipeline, n: int, seed: int) -> list[int]:
    """Rows of ``n`` examples drawn without replacement (reproducible per seed)."""
    rows = np.random.default_rng(seed).permutation(len(pipeline.index))
    return [int(r) for r in rows[:n]]


def collect(pipeline, rows: list[int], *, progress: bool = True
            ) -> tuple[list[list[dict[str, Any]]], list[str]]:
    """Ask the index examples at ``rows`` as questions, leave-one-image-out, and return each one's
    candidate table (candidates with ``features`` and ``target``) and its image id.

    Only the pipeline's public stages are used: :meth:`~pica.pipeline.Pipeline.prepare` (with the K
    candidate neighbours), :meth:`~pica.pipeline.Pipeline.greedy` (greedy answers, whatever the
    pipeline's answer choice) and :meth:`~pica.pipeline.Pipeline.candidate_table`.
    """
    tables: list[list[dict[str, Any]]] = []
    images: list[str] = []
    with progress_bar(total=len(rows), desc="calibrate", unit="q", enabled=progress) as bar:
        for start in range(0, len(rows), 16):
            chunk = rows[start:start + 16]
            examples = [pipeline.index.example(r) for r in chunk]
            questions = [as_question(ex) for ex in examples]
            own = {q.id: [r] for q, r in zip(questions, chunk)}
            for item in pipeline.prepare(questions, exclude=own, neighbours=True):
                greedy = pipeline.greedy(item)
                table = pipeline.candidate_table(item, greedy.prompts[0].text, greedy.answers,
                                                 greedy.completions)
                for cand in table:
                    cand["target"] = target(cand["answer"], item.question.label)
                tables.append(table)
                images.append(str(item.question.image_id or item.question.id))
                bar.update(1)
    return tables, images


def calibrate(pipeline, *, n: int = DEFAULT_CALIBRATION_QUESTIONS, heldout: float = DEFAULT_HELDOUT,
              seed: int = 0, overwrite: bool = False, progress: bool = True,
              model: str = "auto") -> tuple[Path, Chooser]:
    """Fit and save the chooser for the pipeline's index, LLM, template and shots.

    Args:
        pipeline: A :class:`~pica.pipeline.Pipeline` with an index.
        n: Index examples to ask.
        heldout: Share of the sampled images held back to report accuracy.
        seed: Seed of the sample and the split.
        overwrite: Replace an existing chooser for the same target.
        progress: Show a progress bar.
        model: ``auto`` (cross-validate logistic and trees, keep the better), ``logistic`` or ``trees``.

    Returns:
        The chooser file and the chooser.

    Raises:
        InputError: no index, too few examples, or a chooser exists and ``overwrite`` is unset.
    """
    if pipeline.index is None:
        raise InputError("pica index calibrate needs an example index")
    if pipeline.settings.shots == 0:
        raise InputError("pica index calibrate needs --shots of at least 1")
    check_model(model)  # before the long question loop
    wanted = pipeline.chooser_target()
    path = chooser_path(pipeline.index.path, wanted)
    if path.exists() and not overwrite:
        raise InputError(f"chooser {path} already exists; pass --overwrite to re-fit it")
    rows = sample(pipeline, min(n, len(pipeline.index)), seed)
    if len(rows) < 20:
        raise InputError(f"index {pipeline.index.path} has {len(pipeline.index)} examples;"
                         " calibration needs 20")
    t0 = time.perf_counter()
    tables, images = collect(pipeline, rows, progress=progress)
    seconds = time.perf_counter() - t0
    figures = _heldout_figures(tables, images, heldout, seed, model)
    chooser = fit(tables, seed=seed, model=model)
    chooser.fitted_for = wanted
    chooser.training.update({
        "index": str(pipeline.index.path), "questions": len(tables), "seed": seed,
        "seconds": round(seconds, 1), "seconds_per_question": round(seconds / max(len(tables), 1), 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **figures,
    })
    chooser.verdict = judge(chooser.training)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, chooser.dumps())
    return path, chooser


def _heldout_figures(tables: list[list[dict[str, Any]]], images: list[str], heldout: float,
                     seed: int, kind: str = "auto") -> dict[str, Any]:
    """Greedy, chooser and oracle accuracy (%) on held-back images, the chooser fitted on the rest."""
    unique = sorted(set(images))
    order = np.random.default_rng(seed + 1).permutation(len(unique))
    held = {unique[i] for i in order[: int(round(heldout * len(unique)))]}
    test = [t for t, img in zip(tables, images) if img in held]
    train = [t for t, img in zip(tables, images) if img not in held]
    if not test or not train:
        return {"heldout_questions": len(test)}
    model = fit(train, seed=seed, model=kind)
    greedy = sum(next((c["target"] for c in t if c["greedy"]), 0.0) for t in test) / len(test)
    oracle = sum(max((c["target"] for c in t), default=0.0) for t in test) / len(test)
    diffs, chosen = [], 0.0
    for t in test:
        g = next((c["target"] for c in t if c["greedy"]), 0.0)
        c = t[model.pick([dict(x) for x in t])]["target"] if t else 0.0
        chosen += c
        diffs.append(c - g)
    chosen /= len(test)
    se = float(np.std(diffs, ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
    return {"fit_questions": len(train), "heldout_questions": len(test),
            "heldout_greedy_accuracy": round(100 * greedy, 2),
            "heldout_chooser_accuracy": round(100 * chosen, 2),
            "heldout_gain": round(100 * float(np.mean(diffs)), 4),
            "heldout_difference_se": round(100 * se, 2),
            "heldout_oracle_accuracy": round(100 * oracle, 2)}
