"""The report's question cards: one row of results made ready to show (gold answers, thumbnail,
candidates, choices), and the small formatting helpers the report shares."""

from __future__ import annotations

import base64
import io
import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pica.errors import InputError
from pica.evaluation.categories import category_label, category_name
from pica.tasks.aokvqa import choice_marks

NO_CATEGORY = "(none)"
# The stages of a question's time (``seconds_<stage>`` columns) as the report names them.
STAGE_LABELS = {"caption": "caption", "retrieval": "retrieval", "llm": "LLM", "mc": "MC scoring"}


@dataclass(frozen=True)
class Card:
    """One question of the gallery, every field ready to show (missing values are ``""``)."""

    kind: str  # "ok", "part", "bad" or "na" (no score)
    category: str
    data_score: str
    thumbnail: str | None
    image_id: str
    question: str
    caption: str
    answer: str
    score: str
    gold: list[tuple[str, str]]
    meta: list[str]
    raw: str
    example_ids: str
    prompt: str
    choices: list[tuple[str, str]]  # (choice, "chosen" / "correct" / "chosen correct" / "")
    rationale: str
    # Learned choice: (answer, chooser score, features, won) per candidate, best first.
    candidates: list[tuple[str, str, str, bool]] = field(default_factory=list)
    prompt_label: str = "prompt"  # "multiple-choice prompt" when ``prompt`` is the MC one
    mc_prompt: str = ""  # the multiple-choice prompt when ``prompt`` is the direct answer's


def gold_items(gold: Any) -> list[tuple[str, str]]:
    """Gold answers as ``(answer, annotation)`` pairs for display.

    Args:
        gold: A JSON string (or already-parsed value): a list of human answers, shown as each
            distinct answer with ``×count`` (most frequent first); or ``{answer: score}``, shown
            with the score (highest first). Anything else gives ``[]``.

    Returns:
        The pairs, e.g. ``[("surfing", "×7"), ("surf", "×3")]`` or ``[("surfing", "1.00")]``.
    """
    if isinstance(gold, str):
        try:
            gold = json.loads(gold)
        except ValueError:
            return [(gold, "")] if gold.strip() else []
    if isinstance(gold, Mapping):
        scored = [(str(a), as_float(s)) for a, s in gold.items()]
        scored.sort(key=lambda item: (-(item[1] or 0.0), item[0]))
        return [(a, fmt(s, "{:.2f}")) for a, s in scored]
    if isinstance(gold, list | tuple):
        counts = Counter(str(a) for a in gold if present(a))
        return [(a, f"×{c}") for a, c in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    return []


def thumbnail_data_uri(path: Any, thumb_px: int) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail of the image at ``path``, or ``None``.

    Missing, unreadable or corrupt images give ``None`` (the report simply shows no picture).
    """
    if not present(path) or not str(path).strip():
        return None
    from pica.util.images import load_image

    try:
        img = load_image(path)
        img.thumbnail((thumb_px, thumb_px))
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=80)
    except (InputError, OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def make_card(row: Mapping[str, Any], thumb_px: int) -> Card:
    score = as_float(row.get("score"))
    if score is None:
        kind = "na"
    elif score >= 1 - 1e-9:
        kind = "ok"
    elif score <= 1e-9:
        kind = "bad"
    else:
        kind = "part"
    category = row_category(row)
    meta = [
        f"id {text(row.get('question_id'))}",
        f"category {category_label(category, category_name(category))}",
    ]
    if present(row.get("question_type")):
        meta.append(f"type {row.get('question_type')}")
    meta.append(_seconds(row))
    if present(row.get("prompt_tokens")):
        meta.append(f"{fmt(row.get('prompt_tokens'), '{}')} prompt tokens")
    logprob = as_float(row.get("logprob"))
    if logprob is not None:
        meta.append(f"log-prob {logprob:.3f}")
    return Card(
        kind=kind,
        category=category,
        data_score="" if score is None else f"{score:g}",
        thumbnail=thumbnail_data_uri(row.get("image_path"), thumb_px),
        image_id=text(row.get("image_id")),
        question=text(row.get("question")),
        caption=text(row.get("caption")),
        answer=text(row.get("answer")),
        score=fmt(score, "{:.2f}"),
        gold=gold_items(row.get("gold")),
        meta=meta,
        raw=text(row.get("raw")),
        example_ids=text(row.get("example_ids")),
        prompt=text(row.get("prompt")) or "(no prompt recorded)",
        choices=choice_marks(row),
        rationale=text(row.get("rationale")),
        candidates=_choices(row.get("candidates")),
        prompt_label="multiple-choice prompt" if row.get("task") == "mc" else "prompt",
        mc_prompt=_mc_prompt(row) if row.get("task") == "both" else "",
    )


def parsed(value: Any) -> Any:
    """A cell of ``results.parquet`` as its value: lists and objects are stored there as JSON
    text (``None`` when that text is not JSON)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _seconds(row: Mapping[str, Any]) -> str:
    """``1.23 s (caption 0.10, retrieval 0.01, LLM 1.02, MC 0.10)``: the total and its stages."""
    parts = [f"{label} {as_float(row.get(f'seconds_{stage}')):.2f}"
             for stage, label in STAGE_LABELS.items() if as_float(row.get(f"seconds_{stage}"))]
    total = f"{fmt(as_float(row.get('seconds')), '{:.2f}')} s"
    return f"{total} ({', '.join(parts)})" if parts else total


def _mc_prompt(row: Mapping[str, Any]) -> str:
    """The first multiple-choice prompt of a row that also has a direct answer."""
    mc = parsed(row.get("mc"))
    prompts = mc.get("prompts") if isinstance(mc, Mapping) else None
    return text(prompts[0]) if isinstance(prompts, list) and prompts else ""


def _choices(cands: Any) -> list[tuple[str, str, str, bool]]:
    """The learned chooser's candidates with their scores and features, best first."""
    cands = parsed(cands)  # results.parquet holds them as JSON text
    if not isinstance(cands, list) or not cands or not all(
            isinstance(c, dict) and isinstance(c.get("features"), dict) for c in cands):
        return []
    ranked = sorted(cands, key=lambda c: -(as_float(c.get("score")) or 0.0))
    return [(text(c.get("answer")), fmt(as_float(c.get("score")), "{:.3f}"),
             ", ".join(f"{k} {fmt(as_float(v), '{:.3g}')}" for k, v in c["features"].items()),
             bool(c.get("chosen"))) for c in ranked]


def row_category(row: Mapping[str, Any]) -> str:
    return text(row.get("category")) or NO_CATEGORY


def present(value: Any) -> bool:
    """False for ``None`` and NaN-like missing values (pandas fills absent cells with NaN/NA)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return False
    if isinstance(value, str | list | tuple | dict):
        return True
    try:
        return bool(value == value)  # NaN (float or numpy) is the only value not equal to itself
    except (TypeError, ValueError):
        return True


def text(value: Any) -> str:
    """``value`` as text, ``""`` when missing."""
    return str(value) if present(value) else ""


def as_float(value: Any) -> float | None:
    """``value`` as a number, ``None`` when missing, NaN or not a number."""
    if not present(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def fmt(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``, a dash when missing."""
    if not present(value):
        return "–"
    try:
        return spec.format(value)
    except (TypeError, ValueError):
        return str(value)


def clip(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters, with an ellipsis when cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"
