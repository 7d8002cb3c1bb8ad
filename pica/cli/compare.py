"""``pica compare RUN_A RUN_B [RUN_C ...]``: paired comparison of run folders (the first is the
baseline); a table, ``--json``, or a page with ``--html OUT``. The work is
:func:`pica.evaluation.compare.compare_runs`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from pica.cli.options import handle_errors, output_options


@handle_errors
@output_options
def compare(
    runs: Annotated[list[Path], typer.Argument(
        metavar="RUN",
        help="Two or more run folders of `pica eval` (or their results.jsonl); the first is the"
        " baseline.")],
    as_json: Annotated[bool, typer.Option(
        "--json/--no-json", help="Print JSON (runs, pairs with categories, speed and flips) instead"
        " of the table.")] = False,
    html: Annotated[Path | None, typer.Option(
        "--html", metavar="OUT", help="Also write one self-contained HTML page: table, forest plot,"
        " flipped questions side by side.")] = None,
    max_flips: Annotated[int, typer.Option(
        min=0, metavar="N", help="Flipped questions shown per pair on the --html page.")] = 200,
) -> None:
    """Compare runs on their shared questions: accuracy ± SE per run; per run against the first,
    the paired difference ± paired SE, its 95% interval and wins/losses/ties, overall, per
    category and per question type; speed per stage."""
    from pica.evaluation.compare import compare_runs
    from pica.evaluation.compare_view import check_page_path, format_comparison, write_compare_page

    if html is not None:
        check_page_path(html)  # before the work: a bad path is refused at once
    comparison = compare_runs(runs)
    if as_json:
        indent = 2 if sys.stdout.isatty() else None
        typer.echo(json.dumps(comparison.to_dict(), ensure_ascii=False, indent=indent))
    else:
        typer.echo(format_comparison(comparison))
    if html is not None:
        write_compare_page(comparison, html, max_flips=max_flips)
        typer.echo(f"page: {html}", err=as_json)
