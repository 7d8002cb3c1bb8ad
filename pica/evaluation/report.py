"""A self-contained HTML report of an evaluation run.

One file with inline CSS, inline SVG charts, inline JPEG thumbnails (``data:`` URIs) and a little
inline JavaScript for filtering: it opens from disk in any browser, with no server and no network.

The page is the Jinja2 template ``pica/templates/report.html.j2`` (its chart macro is in
``report_chart.html.j2``), rendered with autoescape on, so everything that comes from the data
(questions, captions, prompts, config values) is HTML-escaped. The CSS and JavaScript are package
data too (``report.css``, ``report.js``), inlined into every page. This module only prepares the
data: rows, formatted numbers, thumbnails and chart geometry.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2

from pica.choice.trust import choice_line
from pica.config import MIN_SE_N
from pica.errors import InputError
from pica.evaluation.cards import (
    STAGE_LABELS,
    as_float,
    clip,
    fmt,
    make_card,
    present,
    row_category,
)
from pica.evaluation.categories import category_label, category_name
from pica.util.fileio import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

_TEMPLATE = "report.html.j2"
_CHART_TEMPLATE = "report_chart.html.j2"

# SVG bar chart geometry, in pixels.
_LABEL_W = 260
_BAR_W = 360
_ROW_H = 26
_BAR_H = 18
_CHART_W = _LABEL_W + _BAR_W + 150



@dataclass(frozen=True)
class Bar:
    """One row of a :class:`Chart`: a key, its labels and its geometry in pixels."""

    name: str
    label: str  # the key, with its category name when there is one
    short_label: str  # ``label`` clipped to fit left of the bar
    value: str  # "57.50 ± 2.00% (n=4)"
    y: int
    text_y: int
    width: float
    value_x: float


@dataclass(frozen=True)
class Chart:
    """What the ``bar_chart`` macro draws: a titled horizontal bar chart, accuracy 0-100 %."""

    title: str
    bars: list[Bar]
    width: int = _CHART_W
    height: int = 0
    label_x: int = _LABEL_W - 8  # right edge of the key labels
    bar_x: int = _LABEL_W  # where the bars (and the 0 % axis) start
    full_x: int = _LABEL_W + _BAR_W  # the 100 % line
    bar_h: int = _BAR_H
    axis_y: int = 0


@functools.cache
def _asset(name: str) -> str:
    """Text of a packaged report asset (``report.css``, ``report.js``) from ``pica/templates``."""
    return (resources.files("pica") / "templates" / name).read_text(encoding="utf-8")


@functools.cache
def _environment() -> jinja2.Environment:
    """The Jinja2 environment of the report templates (package data, autoescape on)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pica", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["thousands"] = lambda number: f"{number:,}"
    return env


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
    title = "pica report" + (f" — {summary['dataset']}" if present(summary.get("dataset")) else "")
    categories = sorted({row_category(r) for r in rows}, key=natural_key)
    return _environment().get_template(_TEMPLATE).render(
        title=title,
        subtitle=[
            (label, str(summary[key]))
            for key, label in (("dataset", "dataset"), ("created", "created"))
            if present(summary.get(key))
        ],
        stats=_header_stats(summary),
        config=config_rows(summary.get("config") or {}),
        config_json=json.dumps(summary.get("config") or {}, indent=2, default=str, ensure_ascii=False),
        examples=_examples_note(summary),
        chart=bar_chart_data(summary.get("per_category") or {}, "Accuracy per category"),
        category_rows=_stats_rows(summary.get("per_category") or {}, labelled=True),
        question_types=_stats_rows(summary.get("per_question_type") or {}),
        scienceqa_rows=_stats_rows(summary.get("scienceqa") or {}, ordered=True),
        no_annotations=summary.get("annotations") is False,
        choice=choice_line(summary["choice"]) if isinstance(summary.get("choice"), Mapping) else "",
        stages=_stage_rows(summary),
        first_question=fmt(as_float(summary.get("seconds_first_question")), "{:.2f}"),
        categories=[(c, category_label(c, category_name(c))) for c in categories],
        cards=[make_card(row, thumb_px) for row in rows],
        total=len(results),
        left_out=max(0, len(results) - len(rows)),
        css=_asset("report.css"),
        js=_asset("report.js"),
    )


def bar_chart_data(stats: Mapping[str, Mapping[str, Any]], title: str) -> Chart:
    """The bars of a horizontal accuracy chart, one per key, sorted numeric-aware.

    Args:
        stats: ``{name: {"accuracy": percent, "n": count}}``, optionally with a ``"name"`` (an
            OK-VQA category name) shown after the key.
        title: Accessible title of the chart.

    Returns:
        The :class:`Chart` that the template's ``bar_chart`` macro draws.
    """
    bars = []
    for i, key in enumerate(sorted(stats, key=natural_key)):
        acc = as_float(stats[key].get("accuracy"))
        width = 0.0 if acc is None else max(0.0, min(100.0, acc)) / 100 * _BAR_W
        label = category_label(key, stats[key].get("name"))
        y = 6 + i * _ROW_H
        bars.append(Bar(
            name=str(key),
            label=label,
            short_label=clip(label, 36),
            value=f"{_with_se(stats[key])}% (n={fmt(stats[key].get('n'), '{}')})",
            y=y,
            text_y=y + _BAR_H - 4,
            width=width,
            value_x=_LABEL_W + width + 6,
        ))
    return Chart(title=title, bars=bars, height=_ROW_H * len(bars) + 30, axis_y=6 + len(bars) * _ROW_H)


def bar_chart_svg(stats: Mapping[str, Mapping[str, Any]], title: str) -> str:
    """An inline SVG horizontal bar chart: one ``rect.bar`` per key, sorted numeric-aware.

    Args:
        stats: ``{name: {"accuracy": percent, "n": count}}``.
        title: Accessible title of the chart.

    Returns:
        The ``<svg>`` element as a string (a short note when ``stats`` is empty).
    """
    macro = _environment().get_template(_CHART_TEMPLATE).module.bar_chart
    return str(macro(bar_chart_data(stats, title)))


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that orders embedded numbers numerically: ``"2" < "10"``, ``"cat2" < "cat10"``."""
    parts = re.split(r"(\d+)", str(text))
    return [(0, int(part)) if part.isdigit() else (1, part.lower()) for part in parts if part]


def se_text(stats: Mapping[str, Any]) -> str:
    """One standard error, 2 decimals; "–" when missing or when n < :data:`MIN_SE_N`."""
    se, n = as_float(stats.get("se")), as_float(stats.get("n"))
    return "–" if se is None or n is None or n < MIN_SE_N else f"{se:.2f}"


def _with_se(stats: Mapping[str, Any]) -> str:
    """``24.26 ± 1.10``: an accuracy (percent) and one standard error, 2 decimals; a dash when
    missing, and ``± –`` below n = 10."""
    acc = as_float(stats.get("accuracy"))
    return fmt(acc, "{:.2f}") + ("" if acc is None or stats.get("se") is None else f" ± {se_text(stats)}")


def _header_stats(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The headline numbers as ``(value, label)`` pairs: the accuracy ± 1 SE with its n (for
    A-OKVQA the direct-answer and multiple-choice accuracies side by side instead), or "none"
    when the questions have no annotations; then speed."""
    tasks = [(f"{_with_se(summary[key])}%", f"{label} ± 1 SE (n={fmt(summary[key].get('n'), '{:,}')})")
             for key, label in (("da", "direct answer (A-OKVQA)"), ("mc", "multiple choice"))
             if isinstance(summary.get(key), Mapping) and summary[key].get("n")]
    if isinstance(summary.get("da"), Mapping) and summary["da"].get("n"):
        tasks.append((fmt(summary["da"].get("difficult_left_out"), "{:,}"), "difficult, left out of DA"))
    if summary.get("annotations") is False:
        headline = [("none", "accuracy: no annotations")]
    elif tasks:
        headline = tasks
    else:
        headline = [(f"{_with_se(summary)}%", f"accuracy ± 1 SE (n={fmt(summary.get('n'), '{:,}')})")]
    return [
        *headline,
        (of_total(summary), "questions" + (f" of {summary['dataset']}" if summary.get("dataset") else "")),
        (fmt(as_float(summary.get("seconds_per_question")), "{:.2f}"), "seconds / question"),
        (fmt(as_float(summary.get("prompt_tokens_per_second")), "{:,.0f}"), "prompt tokens / s"),
    ]


def _stage_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Mean seconds per question of each stage that took time, the total and the first question
    (which pays for loading the models)."""
    stages = summary.get("seconds_per_stage")
    if not isinstance(stages, Mapping):
        return []
    rows = [(label, f"{as_float(stages.get(stage)):.2f}") for stage, label in STAGE_LABELS.items()
            if as_float(stages.get(stage))]
    total = fmt(as_float(summary.get("seconds_per_question")), "{:.2f}")
    rows.append(("total (mean of all questions)", total))
    return rows


def of_total(summary: Mapping[str, Any]) -> str:
    """``10 of 1,285``: the questions answered and, when known, the dataset's total (before
    ``--limit``); just the count when they are all of them or the total is unknown."""
    answered = summary.get("questions", summary.get("n"))
    total = summary.get("questions_total")
    if not isinstance(total, int) or total == answered:
        return fmt(answered, "{:,}")
    return f"{fmt(answered, '{:,}')} of {total:,}"


def _examples_note(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The example pool line of the report (``starter``: shown as a warning)."""
    examples = summary.get("examples")
    if not isinstance(examples, Mapping):
        return {"line": "", "starter": False}
    return {"line": str(examples.get("line") or ""), "starter": bool(examples.get("starter"))}


def config_rows(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run configuration as ``(setting, value)`` rows: one per setting (``settings``,
    ``dataset`` and ``choice`` flattened to ``dataset.captions`` and the like), values as plain
    text (lists joined, ``None`` as "–", mappings as ``key=value`` pairs)."""
    rows: list[tuple[str, str]] = []
    for key, value in config.items():
        if isinstance(value, Mapping) and key in ("settings", "dataset", "choice"):
            prefix = "" if key == "settings" else f"{key}."
            for inner, item in value.items():
                if key == "dataset" and inner == "content" and isinstance(item, Mapping):
                    rows += [(f"dataset.{k} sha256", str(v).split(":")[-1][:12]) for k, v in item.items()]
                    continue
                rows.append((f"{prefix}{inner}", _plain(item)))
        else:
            rows.append((str(key), _plain(value)))
    return rows


def _plain(value: Any) -> str:
    """A configuration value as readable text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items()) or "–"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "–"
    return str(value)


def _stats_rows(stats: Mapping[str, Mapping[str, Any]], labelled: bool = False,
                ordered: bool = False) -> list[dict[str, Any]]:
    """Rows of the per-question-type (or, ``labelled`` with category names, per-category; or,
    ``ordered``, ScienceQA's columns as given) table: name, accuracy, one SE and n as text (2
    decimals), bar width in percent."""
    rows = []
    for name in (stats if ordered else sorted(stats, key=natural_key)):
        acc = as_float(stats[name].get("accuracy"))
        rows.append({
            "name": category_label(name, stats[name].get("name")) if labelled else str(name),
            "accuracy": fmt(acc, "{:.2f}"),
            "se": se_text(stats[name]),
            "n": fmt(stats[name].get("n"), "{}"),
            "width": 0.0 if acc is None else max(0.0, min(100.0, acc)),
        })
    return rows


