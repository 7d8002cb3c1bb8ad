"""How a :class:`~pica.evaluation.compare.Comparison` is shown: a plain table for the terminal
(:func:`format_comparison`) and one self-contained HTML page (:func:`write_compare_page`).

The page is the Jinja2 template ``pica/templates/compare.html.j2`` in the report's environment
(autoescape on) with the report's CSS and its question cards (``report_card.html.j2``): the runs'
table, a forest plot of the paired differences with their 95% intervals (overall and per group,
inline SVG) and, for every question that flips, the two runs' cards side by side (caption, answer,
gold, example ids, prompt).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pica.errors import InputError
from pica.evaluation.cards import STAGE_LABELS, clip, make_card
from pica.evaluation.compare import Comparison
from pica.evaluation.report import _asset, _environment
from pica.util.fileio import atomic_write_text

_TEMPLATE = "compare.html.j2"
# A page this module wrote carries this tag near its top; only such a page is ever overwritten.
GENERATOR = '<meta name="generator" content="pica compare">'

# Forest plot geometry, in pixels.
_LABEL_W = 270
_PLOT_W = 420
_VALUE_W = 240
_ROW_H = 24


@dataclass(frozen=True)
class ForestRow:
    """One line of a forest plot: a label, the difference and its interval in pixels."""

    name: str
    label: str
    value: str  # "+5.00 ± 3.00 (n=10)"
    y: int
    x: float  # the difference
    low: float  # the 95% interval
    high: float
    overall: bool


@dataclass(frozen=True)
class Forest:
    """What the ``forest_plot`` macro draws: differences (points) with 95% intervals (lines)."""

    title: str
    rows: list[ForestRow]
    width: int
    height: int
    label_x: int
    plot_x: int
    plot_w: int
    value_x: int
    zero_x: float
    axis_y: int
    ticks: list[tuple[float, str]]


def signed(value: float | None, spec: str = "{:+.2f}") -> str:
    """``+5.00``; a dash when missing."""
    return "–" if value is None else spec.format(value)


def difference_text(stats: Mapping[str, Any]) -> str:
    """``+5.00 ± 3.00``: a paired difference in points with its SE."""
    se = stats.get("se")
    return signed(stats.get("difference")) + ("" if se is None else f" ± {se:.2f}")


def interval_text(stats: Mapping[str, Any]) -> str:
    """``[-0.88, +10.88]``, or a dash without an SE."""
    ci = stats.get("ci95")
    return "–" if not ci else f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def accuracy_text(stats: Mapping[str, Any]) -> str:
    """``45.00 ± 10.00 (n=10)``."""
    if stats.get("accuracy") is None:
        return f"– (n={stats.get('n', 0)})"
    se = "" if stats.get("se") is None else f" ± {stats['se']:.2f}"
    return f"{stats['accuracy']:.2f}{se} (n={stats['n']})"


def status_text(stats: Mapping[str, Any]) -> str:
    """``finished; 10 of 1,285 questions (--limit 10); 2 left out``."""
    parts = [str(stats["status"])]
    if stats.get("questions_total"):
        of = f"{stats['questions']:,} of {stats['questions_total']:,} questions"
        parts.append(of + (f" (--limit {stats['limit']})" if stats.get("limit") else ""))
    else:
        parts.append(f"{stats['questions']:,} questions")
    if stats.get("left_out"):
        parts.append(f"{stats['left_out']:,} left out")
    return "; ".join(parts)


def _ratio_text(speed: Mapping[str, Any]) -> str:
    if speed.get("ratio") is None:
        return "–"
    return f"{speed['ratio']:.2f}" + ("" if speed.get("se") is None else f" ± {speed['se']:.2f}")


def _stage_label(stage: str) -> str:
    return "total" if stage == "total" else STAGE_LABELS.get(stage, stage)


def format_comparison(comparison: Comparison) -> str:
    """The comparison as plain text for the terminal: runs, differing settings, notes, and per run
    against the baseline the paired differences (overall and per group) and the speed."""
    data = comparison.to_dict()
    lines = [f"{data['questions']:,} questions shared by {len(data['runs'])} runs"
             f" (A is the baseline; scores in points, ± 1 SE)", ""]
    width = max(len(r["run"]) for r in data["runs"])
    lines.append(f"{'run':<4}{'folder':<{width + 2}}{'accuracy':<24}{'s/question':>10}  status")
    for r in data["runs"]:
        seconds = "–" if r["seconds"] is None else f"{r['seconds']:.2f}"
        lines.append(f"{r['label']:<4}{r['run']:<{width + 2}}{accuracy_text(r):<24}{seconds:>10}"
                     f"  {status_text(r)}")
    if data["differences"]:
        lines += ["", "settings that differ:"]
        for key, values in data["differences"].items():
            shown = (f"{r['label']} {_value(v)}" for r, v in zip(data["runs"], values, strict=True))
            lines.append(f"  {key}: " + ", ".join(shown))
    if data["notes"]:
        lines += ["", *(f"note: {note}" for note in data["notes"])]
    for pair in data["pairs"]:
        lines += ["", *_pair_lines(pair)]
    return "\n".join(lines)


def _value(value: Any) -> str:
    return "–" if value is None else str(value)


def _pair_lines(pair: Mapping[str, Any]) -> list[str]:
    a, b = pair["a_label"], pair["b_label"]
    lines = [f"{b} - {a}: {difference_text(pair)} points, 95% interval {interval_text(pair)}"
             f" (paired, n={pair['n']}: SE = sd of the per-question differences, ddof 1, / sqrt(n));"
             f" {b} wins {pair['b_wins']}, {a} wins {pair['a_wins']}, ties {pair['ties']}"]
    header = (f"  {'group':<40}{'n':>6}  {f'{b} - {a} ± SE':<18}{'95% interval':<20}"
              f"{b + ' wins':>7}{a + ' wins':>7}{'ties':>6}")
    rows = [f"  {clip(g['label'], 39):<40}{g['n']:>6}  {difference_text(g):<18}{interval_text(g):<20}"
            f"{g['b_wins']:>7}{g['a_wins']:>7}{g['ties']:>6}" for g in pair["categories"]]
    if rows:
        lines += [header, *rows]
    if pair["speed"]:
        lines.append(f"  speed (mean s/question; ratio {b}/{a} ± paired SE)")
        lines.append(f"  {'stage':<14}{a:>9}{b:>9}  {b}/{a}")
        lines += [f"  {_stage_label(s['stage']):<14}{_secs(s['a']):>9}{_secs(s['b']):>9}  {_ratio_text(s)}"
                  for s in pair["speed"]]
    return lines


def _secs(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def forest_data(pair: Mapping[str, Any], title: str) -> Forest:
    """The geometry of a forest plot of ``pair``: the overall difference, then each group's."""
    b, a = pair["b_label"], pair["a_label"]
    entries = [("all", f"all questions ({b} - {a})", pair, True)]
    entries += [(f"{g['kind']}:{g['key']}", g["label"], g, False) for g in pair["categories"]]
    values = [0.0]
    for _, _, stats, _ in entries:
        if stats.get("difference") is not None:
            values.append(stats["difference"])
        values += list(stats.get("ci95") or [])
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        return round(_LABEL_W + (v - lo) / (hi - lo) * _PLOT_W, 1)

    rows = []
    for i, (name, label, stats, overall) in enumerate(entries):
        diff = stats.get("difference")
        if diff is None:
            continue
        ci = stats.get("ci95") or [diff, diff]
        rows.append(ForestRow(name=name, label=clip(label, 38), y=14 + i * _ROW_H, x=x(diff), low=x(ci[0]),
                              high=x(ci[1]), overall=overall,
                              value=f"{difference_text(stats)} (n={stats['n']})"))
    axis_y = 14 + len(entries) * _ROW_H
    return Forest(title=title, rows=rows, width=_LABEL_W + _PLOT_W + _VALUE_W, height=axis_y + 24,
                  label_x=_LABEL_W - 10, plot_x=_LABEL_W, plot_w=_PLOT_W, value_x=_LABEL_W + _PLOT_W + 10,
                  zero_x=x(0.0), axis_y=axis_y,
                  ticks=[(x(lo + pad), f"{lo + pad:+.1f}"), (x(0.0), "0"), (x(hi - pad), f"{hi - pad:+.1f}")])


def render_compare_page(comparison: Comparison, *, max_flips: int = 200, thumb_px: int = 120) -> str:
    """The comparison page of :func:`write_compare_page` as an HTML string (nothing is written)."""
    data = comparison.to_dict()
    runs = {r.label: r for r in comparison.runs}
    pairs = []
    for pair in data["pairs"]:
        a, b = runs[pair["a_label"]], runs[pair["b_label"]]
        flips = [_flip(a.rows[f["question_id"]], b.rows[f["question_id"]], thumb_px)
                 for f in pair["flipped"][:max_flips]]
        pairs.append({
            "stats": pair, "difference": difference_text(pair), "interval": interval_text(pair),
            "forest": forest_data(pair, f"Paired difference {pair['b_label']} - {pair['a_label']}"
                                        " with 95% intervals"),
            "groups": [{**g, "difference_text": difference_text(g), "interval_text": interval_text(g)}
                       for g in pair["categories"]],
            "speed": [{"stage": _stage_label(s["stage"]), "a": _secs(s["a"]), "b": _secs(s["b"]),
                       "ratio": _ratio_text(s)} for s in pair["speed"]],
            "flips": flips, "flips_left_out": max(0, len(pair["flipped"]) - len(flips)),
        })
    return _environment().get_template(_TEMPLATE).render(
        title="pica compare — " + " vs ".join(f"{r.label} {r.path.name}" for r in comparison.runs),
        generator=GENERATOR,
        questions=data["questions"],
        runs=[{**r, "accuracy_text": accuracy_text(r), "status_text": status_text(r),
               "seconds_text": _secs(r["seconds"])} for r in data["runs"]],
        differences=[(k, [_value(v) for v in values]) for k, values in data["differences"].items()],
        notes=data["notes"],
        pairs=pairs,
        css=_asset("report.css") + _asset("compare.css"),
    )


def _flip(row_a: Mapping[str, Any], row_b: Mapping[str, Any], thumb_px: int) -> dict[str, Any]:
    """One flipped question: the question id and the two runs' cards (the image on A's only)."""
    card_b = make_card({**row_b, "image_path": None}, thumb_px)
    return {"question_id": str(row_a["question_id"]), "a": make_card(row_a, thumb_px), "b": card_b,
            "b_better": float(row_b["score"]) > float(row_a["score"])}


def check_page_path(out: str | Path) -> Path:
    """Refuse an output path that is a folder, or an existing file that is not a comparison page
    (one that carries :data:`GENERATOR`): nothing else, a run's report included, is overwritten.

    Raises:
        InputError: with the reason and what to pass instead.
    """
    out = Path(out)
    if out.is_dir():
        raise InputError(f"--html {out} is a folder; give a file name such as {out / 'compare.html'}")
    if out.exists():
        try:
            with open(out, "rb") as f:
                head = f.read(4096).decode("utf-8", "replace")
        except OSError as e:
            raise InputError(f"--html {out} cannot be read ({e.strerror}); choose another path") from e
        if GENERATOR not in head:
            raise InputError(f"--html {out} exists and is not a page pica compare wrote; remove it or choose"
                             " another path")
    return out


def write_compare_page(comparison: Comparison, out: str | Path, *, max_flips: int = 200,
                       thumb_px: int = 120) -> Path:
    """Write the comparison as one self-contained HTML page (atomically: never half-written).

    Args:
        comparison: From :func:`~pica.evaluation.compare.compare_runs`.
        out: The page to write; its parent folder is created if needed.
        max_flips: Show at most this many flipped questions per pair (the page says how many
            more there are).
        thumb_px: Longest side of the inline thumbnails, in pixels.

    Returns:
        ``out``.

    Raises:
        InputError: ``out`` is a folder or a file pica did not write (see :func:`check_page_path`),
            or ``max_flips`` is negative.
        StorageError: the page could not be written.
    """
    out = check_page_path(out)
    if max_flips < 0:
        raise InputError(f"max_flips must be >= 0, got {max_flips}")
    page = render_compare_page(comparison, max_flips=max_flips, thumb_px=thumb_px)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out

