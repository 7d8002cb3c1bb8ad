"""A self-contained HTML report of an evaluation run.

One file with inline CSS, inline SVG charts, inline JPEG thumbnails (``data:`` URIs) and a little
inline JavaScript for filtering: it opens from disk in any browser, with no server and no network.
Everything that comes from the data (questions, captions, prompts, config values) is HTML-escaped.
The CSS and JavaScript are package data (``pica/templates/report.css``, ``report.js``), inlined
into every page.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pica.errors import InputError
from pica.evaluation import category_name
from pica.fileio import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

# SVG bar chart geometry, in pixels.
_LABEL_W = 260
_BAR_W = 360
_ROW_H = 26
_BAR_H = 18
_CHART_W = _LABEL_W + _BAR_W + 150

_NO_CATEGORY = "(none)"


@functools.cache
def _asset(name: str) -> str:
    """Text of a packaged report asset (``report.css``, ``report.js``) from ``pica/templates``."""
    return (resources.files("pica") / "templates" / name).read_text(encoding="utf-8")


def write_report(
    results: pd.DataFrame,
    summary: Mapping[str, Any],
    out: Path,
    *,
    max_gallery: int = 2000,
    thumb_px: int = 160,
) -> Path:
    """Write a self-contained HTML report of an evaluation run.

    The page shows overall accuracy and speed, the run configuration, per-category (and
    per-question-type) accuracy charts, and a filterable gallery of question cards with
    thumbnails, predictions, gold answers, scores and the prompt. The file is written through a
    temp file and a rename, so it is never half-written.

    Args:
        results: One row per evaluated question (columns ``question_id``, ``question``,
            ``image_path``, ``caption``, ``prompt``, ``raw``, ``logprob``, ``answer``, ``score``,
            ``gold``, ``category``, ``question_type``, ``example_ids``, ``seconds``,
            ``prompt_tokens``, ...); missing columns and values are shown as blanks.
        summary: Run summary: ``accuracy`` (percent), ``n``, ``per_category``,
            ``per_question_type``, ``seconds_per_question``, ``prompt_tokens_per_second``,
            ``config``, ``dataset``, ``created``.
        out: Path of the HTML file to write; its parent folder is created if needed.
        max_gallery: Show at most this many question cards (the first ones); the page says how
            many were left out.
        thumb_px: Longest side of the inline thumbnails, in pixels.

    Returns:
        ``out``.

    Raises:
        InputError: ``out`` is an existing folder, ``max_gallery`` is negative, or ``thumb_px`` is
            less than 1.
    """
    out = Path(out)
    if out.is_dir():
        raise InputError(f"report path is a folder: {out}; give a file name such as {out / 'report.html'}")
    if max_gallery < 0:
        raise InputError(f"max_gallery must be >= 0, got {max_gallery}")
    if thumb_px < 1:
        raise InputError(f"thumb_px must be >= 1, got {thumb_px}")
    page = render_report(results, summary, max_gallery=max_gallery, thumb_px=thumb_px)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out


def render_report(
    results: pd.DataFrame, summary: Mapping[str, Any], *, max_gallery: int = 2000, thumb_px: int = 160
) -> str:
    """Return the report page of :func:`write_report` as an HTML string (nothing is written)."""
    rows = results.head(max_gallery).to_dict("records") if max_gallery > 0 else []
    left_out = max(0, len(results) - len(rows))
    title = "pica report" + (f" — {summary['dataset']}" if _present(summary.get("dataset")) else "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_esc(title)}</title><style>\n{_asset('report.css')}</style></head><body><main>",
        _header(summary, title),
        _config_table(summary.get("config") or {}),
        "<h2>Accuracy per category</h2>",
        bar_chart_svg(summary.get("per_category") or {}, "Accuracy per category"),
    ]
    per_type = summary.get("per_question_type") or {}
    if per_type:
        parts += ["<h2>Accuracy per question type</h2>", _stats_table(per_type, "question type")]
    parts.append(_gallery(rows, left_out, len(results), thumb_px))
    parts.append(f"<script>\n{_asset('report.js')}</script></main></body></html>\n")
    return "\n".join(parts)


def bar_chart_svg(stats: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """An inline SVG horizontal bar chart: one ``rect.bar`` per key, sorted numeric-aware.

    Args:
        stats: ``{name: {"accuracy": percent, "n": count}}``.
        title: Accessible title of the chart.

    Returns:
        The ``<svg>`` element as a string (a short note when ``stats`` is empty).
    """
    if not stats:
        return '<p class="sub">No categories in these results.</p>'
    names = sorted(stats, key=natural_key)
    height = _ROW_H * len(names) + 30
    out = [
        f'<svg class="chart" width="{_CHART_W}" height="{height}"'
        f' viewBox="0 0 {_CHART_W} {height}" role="img" aria-label="{_esc(title)}">',
        f"<title>{_esc(title)}</title>",
    ]
    for i, name in enumerate(names):
        acc = _float(stats[name].get("accuracy"))
        n = stats[name].get("n")
        y = 6 + i * _ROW_H
        width = 0.0 if acc is None else max(0.0, min(100.0, acc)) / 100 * _BAR_W
        label = f"{_fmt(acc, '{:.1f}')}% (n={_fmt(n, '{}')})"
        shown = f"{name} {stats[name]['name']}" if stats[name].get("name") else name
        out.append(
            f'<g class="row" data-name="{_esc(name)}">'
            f'<text x="{_LABEL_W - 8}" y="{y + _BAR_H - 4}" text-anchor="end">{_esc(_clip(shown, 36))}</text>'
            f'<rect class="bar" x="{_LABEL_W}" y="{y}" width="{width:.1f}" height="{_BAR_H}" rx="3">'
            f"<title>{_esc(shown)}: {_esc(label)}</title></rect>"
            f'<text class="value" x="{_LABEL_W + width + 6:.1f}" y="{y + _BAR_H - 4}">{_esc(label)}</text>'
            "</g>"
        )
    axis_y = 6 + len(names) * _ROW_H
    out.append(
        f'<line x1="{_LABEL_W}" y1="2" x2="{_LABEL_W}" y2="{axis_y}" stroke="#8c959f"/>'
        f'<text x="{_LABEL_W}" y="{axis_y + 16}" text-anchor="middle">0</text>'
        f'<text x="{_LABEL_W + _BAR_W}" y="{axis_y + 16}" text-anchor="middle">100</text>'
        f'<line x1="{_LABEL_W + _BAR_W}" y1="2" x2="{_LABEL_W + _BAR_W}" y2="{axis_y}"'
        ' stroke="#d0d7de" stroke-dasharray="3,3"/>'
    )
    out.append("</svg>")
    return "".join(out)


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that orders embedded numbers numerically: ``"2" < "10"``, ``"cat2" < "cat10"``."""
    parts = re.split(r"(\d+)", str(text))
    return [(0, int(part)) if part.isdigit() else (1, part.lower()) for part in parts if part]


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
        scored = [(str(a), _float(s)) for a, s in gold.items()]
        scored.sort(key=lambda item: (-(item[1] or 0.0), item[0]))
        return [(a, _fmt(s, "{:.2f}")) for a, s in scored]
    if isinstance(gold, list | tuple):
        counts = Counter(str(a) for a in gold if _present(a))
        return [(a, f"×{c}") for a, c in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    return []


def thumbnail_data_uri(path: Any, thumb_px: int) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail of the image at ``path``, or ``None``.

    Missing, unreadable or corrupt images give ``None`` (the report simply shows no picture).
    """
    if not _present(path) or not str(path).strip():
        return None
    from pica.images import load_image

    try:
        img = load_image(path)
        img.thumbnail((thumb_px, thumb_px))
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=80)
    except (InputError, OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _header(summary: Mapping[str, Any], title: str) -> str:
    stats = [
        (_fmt(_float(summary.get("accuracy")), "{:.1f}%"), "accuracy"),
        (_fmt(summary.get("n"), "{:,}"), "questions"),
        (_fmt(_float(summary.get("seconds_per_question")), "{:.2f}"), "seconds / question"),
        (_fmt(_float(summary.get("prompt_tokens_per_second")), "{:,.0f}"), "prompt tokens / s"),
    ]
    sub = " · ".join(
        f"{label}: {_esc(summary[key])}"
        for key, label in (("dataset", "dataset"), ("created", "created"))
        if _present(summary.get(key))
    )
    cards = "".join(f'<div class="stat"><b>{_esc(v)}</b><span>{_esc(k)}</span></div>' for v, k in stats)
    return f'<h1>{_esc(title)}</h1><p class="sub">{sub}</p><div class="stats" id="summary">{cards}</div>'


def _config_table(config: Mapping[str, Any]) -> str:
    if not config:
        return "<h2>Configuration</h2><p class=\"sub\">No configuration recorded.</p>"
    rows = "".join(
        f"<tr><td>{_esc(key)}</td><td>{_esc(_config_value(value))}</td></tr>" for key, value in config.items()
    )
    return f'<h2>Configuration</h2><table class="config"><tbody>{rows}</tbody></table>'


def _config_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _stats_table(stats: Mapping[str, Mapping[str, Any]], label: str) -> str:
    rows = []
    for name in sorted(stats, key=natural_key):
        acc = _float(stats[name].get("accuracy"))
        width = 0.0 if acc is None else max(0.0, min(100.0, acc))
        rows.append(
            f"<tr><td>{_esc(name)}</td><td class=\"num\">{_fmt(acc, '{:.1f}')}</td>"
            f"<td class=\"num\">{_esc(_fmt(stats[name].get('n'), '{}'))}</td>"
            f'<td><div class="hbar"><div style="width:{width:.1f}%"></div></div></td></tr>'
        )
    return (
        f'<table class="qtypes"><thead><tr><th>{_esc(label)}</th><th class="num">accuracy %</th>'
        f'<th class="num">n</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _gallery(rows: list[dict[str, Any]], left_out: int, total: int, thumb_px: int) -> str:
    categories = sorted({_category(r) for r in rows}, key=natural_key)
    options = "".join(f'<option value="{_esc(c)}">{_esc(_category_label(c))}</option>' for c in categories)
    note = (
        f'<p class="note" id="truncated">Showing the first {len(rows):,} of {total:,} questions;'
        f" {left_out:,} left out.</p>"
        if left_out
        else ""
    )
    controls = (
        '<div class="controls"><label>Category <select id="f-cat"><option value="">all</option>'
        f'{options}</select></label><label><input type="checkbox" id="f-wrong"> only wrong answers</label>'
        '<label>Search <input type="search" id="f-text" placeholder="question, caption, answer"></label>'
        '<span id="f-count"></span></div>'
    )
    cards = "".join(_card(row, thumb_px) for row in rows)
    return f'<h2>Questions</h2>{note}{controls}<div class="gallery">{cards}</div>'


def _card(row: Mapping[str, Any], thumb_px: int) -> str:
    score = _float(row.get("score"))
    if score is None:
        kind = "na"
    elif score >= 1 - 1e-9:
        kind = "ok"
    elif score <= 1e-9:
        kind = "bad"
    else:
        kind = "part"
    category = _category(row)
    thumb = thumbnail_data_uri(row.get("image_path"), thumb_px)
    img = f'<img src="{thumb}" alt="{_esc(_text(row.get("image_id")))}">' if thumb else ""
    gold = "".join(
        f"<li>{_esc(answer)}{f' <small>{_esc(note)}</small>' if note else ''}</li>"
        for answer, note in gold_items(row.get("gold"))
    )
    meta = [
        f"id {_esc(_text(row.get('question_id')))}",
        f"category {_esc(_category_label(category))}",
    ]
    if _present(row.get("question_type")):
        meta.append(f"type {_esc(row.get('question_type'))}")
    meta.append(f"{_fmt(_float(row.get('seconds')), '{:.2f}')} s")
    if _present(row.get("prompt_tokens")):
        meta.append(f"{_esc(_fmt(row.get('prompt_tokens'), '{}'))} prompt tokens")
    logprob = _float(row.get("logprob"))
    if logprob is not None:
        meta.append(f"log-prob {logprob:.3f}")
    prompt = _text(row.get("prompt")) or "(no prompt recorded)"
    extra = ""
    if _text(row.get("raw")):
        extra += f"<p>raw completion: <code>{_esc(_text(row.get('raw')))}</code></p>"
    if _text(row.get("example_ids")):
        extra += f"<p>example ids: <code>{_esc(_text(row.get('example_ids')))}</code></p>"
    data_score = "" if score is None else f"{score:g}"
    return (
        f'<div class="card {kind}" data-category="{_esc(category)}" data-score="{data_score}">'
        f"{img}"
        f'<p class="q">{_esc(_text(row.get("question")))}</p>'
        f'<p class="cap">{_esc(_text(row.get("caption")))}</p>'
        f'<p class="pred">predicted <b>{_esc(_text(row.get("answer")))}</b>'
        f' <span class="score">{_fmt(score, "{:.2f}")}</span></p>'
        f'<ul class="gold" title="gold answers">{gold}</ul>'
        f'<div class="meta">{" · ".join(meta)}</div>'
        f"<details><summary>prompt</summary>{extra}<pre>{_esc(prompt)}</pre></details>"
        "</div>"
    )


def _category(row: Mapping[str, Any]) -> str:
    return _text(row.get("category")) or _NO_CATEGORY


def _category_label(code: str) -> str:
    name = category_name(code)
    return f"{code} {name}" if name else code


def _present(value: Any) -> bool:
    """False for ``None`` and NaN-like missing values (pandas fills absent cells with NaN/NA)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return False
    if isinstance(value, str | list | tuple | dict):
        return True
    try:
        return bool(value == value)  # NaN (float or numpy) is the only value not equal to itself
    except (TypeError, ValueError):
        return True


def _text(value: Any) -> str:
    return str(value) if _present(value) else ""


def _float(value: Any) -> float | None:
    if not _present(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _fmt(value: Any, spec: str) -> str:
    if not _present(value):
        return "–"
    try:
        return spec.format(value)
    except (TypeError, ValueError):
        return str(value)


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
